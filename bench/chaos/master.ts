/**
 * Chaos/load master: a master in its own process (like test/integration/fixtures/client-master.ts)
 * that also records why each object left the table, for the chaos checker:
 *   evict   - MasterService.evictObject (watermark or PutStart without space)
 *   segment - purge() after the object's segments were unmounted (owner dead or unmounted)
 *   other   - remove, revoke, zombie take-over
 * argv[2] = JSON of MasterServiceOptions + server options ({port}; for the HA chaos run also {etcd,
 * clusterId, haLeaseTtlMs, advertise, metricsPort} and erasureLog: a file each erasure is appended
 * to at once, so the record of a master that is SIGKILLed survives it). A restored segment whose
 * owner did not re-mount in time (HA failover, pending restore expired) counts its keys as
 * `restore` erasures, with the segment name: the checker decides whether its owner was down.
 * Prints {"ready":"master",address,httpAddress,pid}.
 * stdin commands (one JSON per line, one JSON reply line each):
 *   {"cmd":"mem"}                 process memory (rss, heapUsed) and stats()
 *   {"cmd":"audit"}               atomic snapshot: stats, metrics, sum of live memory replica sizes
 *   {"cmd":"erasures","file":F}   writes the erase log {key: [[t, reason], ...]} to F
 * Env MOONCAKE_CHAOS_ERASURES=0: no erase log (and no hooks), for the load test.
 */
import {appendFileSync, writeFileSync} from 'node:fs'
import {createInterface} from 'node:readline'

import {grantMinter} from '../../src/lib/client/engine-data-path.js'
import {startMasterServer} from '../../src/lib/master/server.js'
import {MasterService} from '../../src/lib/master/service.js'
import type {Mutation} from '../../src/lib/master/mutations.js'
import {PendingRestore} from '../../src/lib/master/restore.js'

const opts = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>
const erasureLog = typeof opts.erasureLog === 'string' ? opts.erasureLog : undefined
delete opts.erasureLog
const service = new MasterService(opts, {mintGrant: grantMinter})

type Reason = 'evict' | 'segment' | 'other' | 'restore'
const erasures = new Map<string, Array<[number, Reason]>>()
function record(key: string, reason: Reason, detail?: string): void {
  const t = Date.now()
  let list = erasures.get(key)
  if (list === undefined) erasures.set(key, (list = []))
  list.push([t, reason])
  if (erasureLog !== undefined) appendFileSync(erasureLog, `${JSON.stringify(detail === undefined ? [key, t, reason] : [key, t, reason, detail])}\n`)
}
const reasons: Reason[] = []
const proto = service as unknown as Record<string, (...args: unknown[]) => unknown>
const wrap = (name: string, reason: Reason | null, after?: (args: unknown[], result: unknown) => void) => {
  const orig = proto[name]
  if (typeof orig !== 'function') throw new Error(`MasterService.${name} not found (chaos hooks out of date)`)
  proto[name] = function (this: unknown, ...args: unknown[]) {
    if (reason !== null) reasons.push(reason)
    try {
      const result = orig.apply(this, args)
      after?.(args, result)
      return result
    } finally {
      if (reason !== null) reasons.pop()
    }
  }
}
// The load test turns the log off (MOONCAKE_CHAOS_ERASURES=0): it grows with every erasure.
const recording = process.env.MOONCAKE_CHAOS_ERASURES !== '0'
if (recording) {
  wrap('evictObject', 'evict')
  wrap('purge', 'segment')
  wrap('eraseObject', null, (args) => {
    const o = args[0] as {key: string}
    record(o.key, reasons.length > 0 ? reasons[reasons.length - 1] : 'other')
  })
  // After a failover, a restored segment is taken out of the pending set either because its owner
  // re-mounted it (objects restored) or because it expired / was refused: then a segmentUnmounted
  // mutation for it follows at once, and its keys are lost with it.
  const take = PendingRestore.prototype.take
  PendingRestore.prototype.take = function (this: PendingRestore, name: string) {
    const seg = take.call(this, name)
    lastTaken = seg === undefined ? undefined : {name, keys: seg.items.map((it) => it.key)}
    return seg
  }
}
let lastTaken: {name: string; keys: string[]} | undefined

const master = await startMasterServer({
  host: '127.0.0.1',
  port: 0,
  metricsPort: -1,
  ...opts,
  service,
  onError: (e) => process.stderr.write(`[master error] ${String((e as Error)?.stack ?? e)}\n`),
  onNotice: (m) => process.stderr.write(`[master notice] ${m}\n`),
})
if (recording) {
  // Installed after the server: the replication layer set its own onMutation (the log) first.
  const next = service.onMutation
  service.onMutation = (m: Mutation) => {
    const taken = lastTaken
    lastTaken = undefined
    if (taken !== undefined && m.type === 'segmentUnmounted' && m.name === taken.name) for (const key of taken.keys) record(key, 'restore', `${m.name}:${m.reason}`)
    // Every unmount (owner declared dead after clientTtl, or it unmounted), for the checker to
    // tell a dead owner's segment from a live one's.
    if (m.type === 'segmentUnmounted' && erasureLog !== undefined) appendFileSync(erasureLog, `${JSON.stringify(['#unmount', Date.now(), m.name, m.reason])}\n`)
    next?.(m)
  }
}
process.stdout.write(`${JSON.stringify({ready: 'master', address: master.address, httpAddress: master.httpAddress, pid: process.pid})}\n`)

function audit(): Record<string, unknown> {
  const stats = service.stats()
  const metrics = service.metrics()
  let liveBytes = 0
  let liveBytesAligned = 0
  let memReplicas = 0
  let processing = 0
  let objects = 0
  let after: string | undefined
  for (;;) {
    const page = service.listKeys({after, limit: 10_000})
    const infos = service.batchQuery(page.keys)
    for (const r of infos) {
      if (!r.ok || r.value === undefined) continue
      objects += 1
      for (const rep of r.value.replicas) {
        if (rep.type !== 'memory') continue
        if (rep.status !== 'COMPLETE') processing += 1
        memReplicas += 1
        liveBytes += r.value.size
        liveBytesAligned += Math.ceil(r.value.size / 8) * 8
      }
    }
    if (page.next === undefined) break
    after = page.next
  }
  return {ok: true, stats, metrics, objects, memReplicas, processing, liveBytes, liveBytesAligned}
}

const rl = createInterface({input: process.stdin})
rl.on('line', (line) => {
  let reply: Record<string, unknown>
  try {
    const cmd = JSON.parse(line) as {cmd: string; file?: string}
    if (cmd.cmd === 'mem') {
      const m = process.memoryUsage()
      reply = {ok: true, t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, stats: service.stats(), metrics: service.metrics()}
    } else if (cmd.cmd === 'audit') reply = audit()
    else if (cmd.cmd === 'erasures') {
      writeFileSync(cmd.file!, JSON.stringify(Object.fromEntries(erasures)))
      reply = {ok: true, keys: erasures.size}
    } else reply = {ok: false, error: `unknown command ${cmd.cmd}`}
  } catch (err) {
    reply = {ok: false, error: String(err)}
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`)
})
const stop = async () => {
  await master.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
