import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {DATA_FLAGS} from '../cli/flags.js'
import {formatBytes} from '../cli/render.js'
import {MooncakeError} from '../lib/errors.js'
import {parseSize} from '../lib/units.js'

export interface PutJson {
  key: string
  size: number
  replicas: number
  requestedReplicas: number
  checksum: number
}

export default class Put extends BaseCommand<typeof Put> {
  static override summary = 'store a file or stdin under a key'
  static override description = `Stores the bytes of FILE, or of stdin (FILE "-", or no FILE with stdin a pipe), under KEY. Bytes are moved unchanged (binary-safe).
Stdin of unknown length is first spooled to a temporary file (in TMPDIR) to learn its size; with --size it is streamed as it comes and must deliver exactly SIZE bytes, or the put fails with INVALID_PARAMS and stores nothing.
Replicas are best effort: with less room than asked, as many as fit are placed (at least one, or NO_AVAILABLE_HANDLE); the result says how many.
Prints one line on stderr (none with --quiet); with --json {"key","size","replicas","requestedReplicas","checksum"} on stdout (checksum: the CRC32C of the value, a number).
Exit codes: 0 stored; 1 OBJECT_ALREADY_EXISTS (without --upsert), NO_AVAILABLE_HANDLE, TRANSFER_FAIL; 2 usage or an empty value (INVALID_PARAMS); 3 FILE does not exist (FILE_NOT_FOUND); 5 master unreachable.`
  static override examples = [
    {description: 'Store a file', command: '<%= config.bin %> <%= command.id %> model/layer0 ./layer0.bin'},
    {description: 'Store stdin', command: 'echo hello | <%= config.bin %> <%= command.id %> greeting -'},
    {
      description: 'Stream a large pipe without spooling it (its exact size must be known)',
      command: 'tar c ./ckpt | <%= config.bin %> <%= command.id %> ckpt.tar - --size "$(tar c ./ckpt | wc -c)"',
    },
    {description: 'Two replicas, soft-pinned, replacing any old value', command: '<%= config.bin %> <%= command.id %> prefix/abc ./kv.bin --replicas 2 --soft-pin --upsert'},
    {description: 'Machine-readable result', command: '<%= config.bin %> <%= command.id %> k ./v.bin --json'},
  ]
  static override args = {
    key: Args.string({description: 'object key (1 to 4096 UTF-8 bytes)', required: true, ignoreStdin: true}),
    file: Args.string({description: 'file to store; "-" or none (with stdin a pipe) reads stdin', ignoreStdin: true}),
  }
  static override flags = {
    ...DATA_FLAGS,
    replicas: Flags.integer({summary: 'memory replicas wanted, on distinct segments (best effort)', min: 1, default: 1}),
    'soft-pin': Flags.boolean({summary: 'evict only after all other objects (for the master\'s --soft-pin-ttl)'}),
    'preferred-segment': Flags.string({
      summary: 'segment to place a replica on first (repeatable, in order)',
      multiple: true,
      helpValue: 'SEGMENT',
    }),
    upsert: Flags.boolean({summary: 'replace the value if KEY exists (readers see the old or the new value, never a mix)'}),
    size: Flags.string({summary: 'exact byte count of stdin: stream it without spooling', helpValue: 'SIZE'}),
  }

  async run(): Promise<PutJson> {
    const {key, file} = this.args
    const {flags} = this
    const fromStdin = file === '-' || file === undefined
    if (file === undefined && process.stdin.isTTY) {
      throw new MooncakeError('USAGE', 'no FILE given and stdin is a terminal: give FILE, or pipe the value (... | mooncake put KEY -)')
    }
    const size = flags.size === undefined ? undefined : parseSize(flags.size)
    if (size !== undefined && !fromStdin) throw new MooncakeError('USAGE', '--size applies to stdin only (a file has its own size)')
    if (size === 0) throw new MooncakeError('INVALID_PARAMS', 'a value must hold at least 1 byte (--size 0)')

    const options = {
      replicaNum: flags.replicas,
      withSoftPin: flags['soft-pin'],
      preferredSegments: flags['preferred-segment'] ?? [],
      upsert: flags.upsert,
      size,
    }
    const {readHead, transferTuning} = await import('../lib/cli-io/index.js')
    // A small stdin of unknown length is read into memory (no spooling, a small staging pool).
    const head = fromStdin && size === undefined ? await this.deadline.race(readHead(process.stdin, 16 * 2 ** 20 - 1)) : undefined
    if (head?.ended && head.value.length === 0) throw new MooncakeError('INVALID_PARAMS', 'stdin was empty: a value must hold at least 1 byte')
    const total = head ? (head.ended ? head.value.length : undefined) : fromStdin ? size : await fileSizeOrUndefined(file)
    const client = await this.connectClient({transport: flags.transport, ...transferTuning(total)})
    const stopProgress = this.trackTransfer(key, total === undefined ? 0 : total * flags.replicas, () => client.stats.transferredBytes)
    let result: PutJson
    try {
      const put = head
        ? head.ended
          ? client.put(key, head.value, options)
          : client.putStream(key, head.rest, options)
        : fromStdin
          ? client.putStream(key, process.stdin, options)
          : client.putFile(key, file, options)
      result = await this.deadline.race(put)
    } finally {
      stopProgress()
    }
    const {replicas, requestedReplicas} = result
    const fewer = replicas < requestedReplicas ? ` (only ${replicas} of ${requestedReplicas} fit)` : ''
    this.notice(`stored ${key}: ${formatBytes(result.size)}, ${replicas}/${requestedReplicas} replica${requestedReplicas === 1 ? '' : 's'}${fewer}`)
    return {key: result.key, size: result.size, replicas, requestedReplicas, checksum: result.checksum}
  }
}

async function fileSizeOrUndefined(file: string): Promise<number | undefined> {
  const {stat} = await import('node:fs/promises')
  return stat(file).then(
    (s) => s.size,
    () => undefined, // the put itself reports a missing file
  )
}
