import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {formatBytes, formatDuration} from '../cli/render.js'
import {ExitCode, MooncakeError} from '../lib/errors.js'
import type {ObjectInfo} from '../lib/master/api.js'

export interface QueryReplicaJson {
  type: 'memory' | 'disk'
  segment: string | null
  endpoint: string | null
  status: string
}

export interface QueryObjectJson {
  key: string
  size: number
  version: number
  checksum: number | null
  replicas: QueryReplicaJson[]
  leaseExpiresAt: number
  softPinExpiresAt: number | null
}

export interface QueryJson {
  objects: QueryObjectJson[]
  missing: string[]
}

export default class Query extends BaseCommand<typeof Query> {
  static override summary = 'show the metadata of objects'
  static override description = `Shows, per KEY, the size, version, checksum (CRC32C), replicas (type, segment, endpoint, status) and lease and soft-pin expiry, without reading the value and without granting a lease.
With --json: {"objects":[{"key","size","version","checksum","replicas":[{"type":"memory"|"disk","segment","endpoint","status"}],"leaseExpiresAt","softPinExpiresAt"}],"missing":[...]}; times are Unix ms (leaseExpiresAt 0: no lease was ever granted; softPinExpiresAt null: not soft-pinned); a disk replica has segment and endpoint null.
Missing keys are listed in "missing" and each gets a line on stderr; the document is printed all the same.
Exit codes: 0 all found; 3 every KEY missing; 4 some KEYs missing; 5 master unreachable.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> greeting',
    {description: 'Where are the replicas?', command: "<%= config.bin %> <%= command.id %> k1 k2 --json | jq '.objects[].replicas[].segment'"},
  ]
  static override args = {
    keys: Args.string({description: 'keys to describe', multiple: true, required: true, ignoreStdin: true}),
  }

  async run(): Promise<QueryJson> {
    const keys = [...new Set(this.args.keys)]
    const client = await this.connectClient()
    const results = await this.deadline.race(client.batchQuery(keys))
    const objects: QueryObjectJson[] = []
    const missing: string[] = []
    results.forEach((r, i) => {
      if (r.ok) objects.push(toJson(r.value))
      else if (r.code === 'OBJECT_NOT_FOUND') missing.push(keys[i])
      else throw new MooncakeError(r.code, `${keys[i]}: ${r.message}`)
    })
    for (const key of missing) this.itemError('OBJECT_NOT_FOUND', `${key}: no such object`)
    if (missing.length > 0) this.setExitCode(objects.length === 0 ? ExitCode.NOT_FOUND : ExitCode.PARTIAL)
    if (!this.jsonEnabled() && objects.length > 0) process.stdout.write(`${objects.map(render).join('\n\n')}\n`)
    return {objects, missing}
  }
}

function toJson(info: ObjectInfo): QueryObjectJson {
  return {
    key: info.key,
    size: info.size,
    version: info.version,
    checksum: info.checksum ?? null,
    replicas: info.replicas.map((r) => ({
      type: r.type === 'disk' ? 'disk' : 'memory',
      segment: r.segment ?? null,
      endpoint: r.endpoint ?? null,
      status: r.status,
    })),
    leaseExpiresAt: info.leaseExpiresAt,
    softPinExpiresAt: info.softPinExpiresAt ?? null,
  }
}

function render(o: QueryObjectJson): string {
  const now = Date.now()
  const when = (at: number | null, none: string): string => {
    if (at === null || at === 0) return none
    const iso = new Date(at).toISOString()
    return at > now ? `${iso} (in ${formatDuration(at - now)})` : `${iso} (expired)`
  }
  const lines = [
    o.key,
    `  size      ${formatBytes(o.size)}${o.size >= 1024 ? ` (${o.size} bytes)` : ''}`,
    `  version   ${o.version}`,
    `  checksum  ${o.checksum === null ? '-' : `crc32c ${(o.checksum >>> 0).toString(16).padStart(8, '0')}`}`,
    `  lease     ${when(o.leaseExpiresAt, 'none')}`,
    `  soft pin  ${when(o.softPinExpiresAt, 'no')}`,
    `  replicas  ${o.replicas.length}`,
  ]
  for (const r of o.replicas) {
    lines.push(`    ${[r.type.padEnd(6), r.status.padEnd(10), r.segment ?? '-', r.endpoint ?? ''].join(' ').trimEnd()}`)
  }
  return lines.join('\n')
}
