import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'

export default class Ls extends BaseCommand<typeof Ls> {
  static override summary = 'list keys (streamed)'
  static override description = `Lists the keys of readable objects, one per line, in a stable order, streamed page by page from the master: works with millions of keys in constant memory, and stops quietly (exit 0) when the reader goes away (| head).
--prefix and --regex (ECMAScript syntax, unanchored search, run in a linear-time engine) filter, both together allowed; --limit stops after N keys.
With --json: a JSON array of keys, streamed as it comes ([, then the keys, then ]); with --count --json: {"count":N}. --count alone prints the number.
Keys holding a newline are ambiguous one per line: use --json for them. Listing grants no lease. --timeout bounds the whole listing (--timeout 0: no limit).
Exit codes: 0 listed (also when nothing matched); 2 usage or a bad regex; 5 master unreachable.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    {description: 'Keys under a prefix, at most 10', command: '<%= config.bin %> <%= command.id %> --prefix model/ --limit 10'},
    {description: 'Count keys matching a regex', command: "<%= config.bin %> <%= command.id %> --regex '/layer[0-9]+$' --count"},
    {description: 'Machine-readable, streamed', command: "<%= config.bin %> <%= command.id %> --json | jq -r '.[]'"},
  ]
  static override flags = {
    prefix: Flags.string({summary: 'only keys starting with P', helpValue: 'P'}),
    regex: Flags.string({summary: 'only keys matching RE (ECMAScript, unanchored)', helpValue: 'RE'}),
    limit: Flags.integer({summary: 'stop after N keys', min: 1, helpValue: 'N'}),
    count: Flags.boolean({summary: 'print how many keys match instead of the keys'}),
  }

  async run(): Promise<{count: number} | undefined> {
    const {prefix, regex, limit, count} = this.flags
    const client = await this.connectClient()
    const keys = client.getAllKeys({prefix, regex, limit})
    if (count) {
      let n = 0
      await this.deadline.race(
        (async () => {
          for await (const _ of keys) n++
        })(),
      )
      if (!this.jsonEnabled()) process.stdout.write(`${n}\n`)
      return {count: n}
    }
    const {PipeWriter} = await import('../lib/cli-io/index.js')
    const out = new PipeWriter(process.stdout)
    this.onCleanup(() => out.release())
    const json = this.jsonEnabled()
    if (json) await out.write('[')
    let first = true
    let batch = ''
    for await (const key of keys) {
      // Small writes are batched: one write per key would cost a syscall each.
      batch += json ? `${first ? '' : ','}${JSON.stringify(key)}` : `${key}\n`
      first = false
      if (batch.length >= 16_384) {
        await out.write(batch)
        batch = ''
        if (out.closed) break
      }
    }
    if (!out.closed) {
      await out.write(json ? `${batch}]\n` : batch)
      await out.flush()
    }
    return undefined
  }
}
