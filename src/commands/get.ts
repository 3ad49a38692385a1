import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {DATA_FLAGS} from '../cli/flags.js'
import {formatBytes} from '../cli/render.js'
import {MooncakeError} from '../lib/errors.js'

export interface GetJson {
  key: string
  size: number
  file: string
}

export default class Get extends BaseCommand<typeof Get> {
  static override summary = 'read a value into a file or stdout'
  static override description = `Writes the value of KEY to FILE, or to stdout (FILE "-" or none). Bytes are written unchanged (binary-safe).
FILE is written atomically: the bytes go to a temporary file beside it, renamed over FILE once complete and verified, so a failed get leaves no partial file (and an existing FILE untouched).
A value is never written to a terminal: with stdout a terminal, redirect it (> FILE, | ...) or give FILE (exit 2 otherwise).
With FILE, prints one line on stderr (none with --quiet) and, with --json, {"key","size","file"} on stdout. --json with stdout as the destination is a usage error (stdout holds the value).
When the reader of stdout goes away early (| head -c 100), get stops quietly and exits 0.
Exit codes: 0 done; 1 TRANSFER_FAIL, CHECKSUM_MISMATCH, REPLICA_IS_NOT_READY (still being written); 2 usage; 3 OBJECT_NOT_FOUND; 5 master unreachable.`
  static override examples = [
    {description: 'Into a file (atomic)', command: '<%= config.bin %> <%= command.id %> model/layer0 ./layer0.bin'},
    {description: 'To stdout, into a pipe', command: '<%= config.bin %> <%= command.id %> greeting - | cat'},
    {description: 'Compare with the original', command: '<%= config.bin %> <%= command.id %> model/layer0 | sha256sum'},
    {description: 'Machine-readable result', command: '<%= config.bin %> <%= command.id %> k ./v.bin --json'},
  ]
  static override args = {
    key: Args.string({description: 'object key', required: true, ignoreStdin: true}),
    file: Args.string({description: 'destination file; "-" or none writes stdout (not a terminal)', ignoreStdin: true}),
  }
  static override flags = {...DATA_FLAGS}

  async run(): Promise<GetJson | undefined> {
    const {key, file} = this.args
    const toStdout = file === undefined || file === '-'
    if (toStdout && this.jsonEnabled()) {
      throw new MooncakeError('USAGE', '--json needs a FILE: with stdout as the destination, stdout holds the value')
    }
    if (toStdout && process.stdout.isTTY) {
      throw new MooncakeError('USAGE', `stdout is a terminal: redirect it (mooncake get ${shellWord(key)} > FILE, or | ...) or give FILE`)
    }
    // The size first (a Query, no lease): it sizes the client's staging memory, whose
    // pre-faulting would cost a small get more than the transfer, and the progress bar.
    const master = await this.connectMaster()
    const total = (await this.deadline.race(master.query(key))).size
    const {transferTuning} = await import('../lib/cli-io/index.js')
    const client = await this.connectClient({master, transport: this.flags.transport, ...transferTuning(total)})
    const stopProgress = this.trackTransfer(key, total, () => client.stats.transferredBytes)
    try {
      if (toStdout) {
        await this.deadline.race(this.toStdout(client.getStream(key)))
        return undefined
      }
      const result = await this.deadline.race(client.getToFile(key, file))
      this.notice(`got ${key}: ${formatBytes(result.size)} -> ${result.file}`)
      return {key: result.key, size: result.size, file: result.file}
    } finally {
      stopProgress()
    }
  }

  /** Pipes the value to stdout; a reader that goes away early (EPIPE) ends the get quietly. */
  private async toStdout(value: NodeJS.ReadableStream & {destroy(): void}): Promise<void> {
    const {pipeline} = await import('node:stream/promises')
    const {isBrokenPipe} = await import('../lib/cli-io/index.js')
    // A late EPIPE (after pipeline settled) must not crash the process.
    process.stdout.on('error', () => {})
    try {
      await pipeline(value, process.stdout, {end: false})
    } catch (err) {
      if (isBrokenPipe(err)) {
        value.destroy()
        return
      }
      throw err
    }
  }
}

/** KEY as a shell word for the hint. */
function shellWord(text: string): string {
  return /^[\w./:@%+=-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`
}
