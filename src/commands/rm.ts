import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import type {MooncakeClient} from '../lib/client/client.js'
import {ExitCode, exitCodeFor, MooncakeError, type ErrorCodeName} from '../lib/errors.js'

export interface RmJson {
  removed: number
  skipped: number
  keys: string[]
}

export default class Rm extends BaseCommand<typeof Rm> {
  static override summary = 'remove objects by key, by regex, or all'
  static override description = `Removes the given KEYs, or every key matching --regex (ECMAScript syntax, unanchored search, run in a linear-time engine), or every object (--all).
An object under a reader's unexpired lease is not removed (OBJECT_HAS_LEASE) unless --force; an object still being written is never removed. --regex and --all skip such objects and count them as skipped.
--dry-run (with --regex or --all) removes nothing and reports what would go.
Prints the removed keys on stdout, one per line (with --dry-run: the keys that would go), and a summary on stderr (none with --quiet).
With --json {"removed":N,"skipped":N,"keys":[...]} ("keys": the keys removed, or that would be).
Exit codes: 0 all removed (or nothing matched the regex); 1 OBJECT_HAS_LEASE for a single KEY; 2 usage or a bad regex; 3 every KEY was missing (OBJECT_NOT_FOUND); 4 partial: some KEYs were not removed (each failure is a line on stderr, the JSON still lists what was removed), or --regex/--all skipped objects; 5 master unreachable.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> greeting',
    '<%= config.bin %> <%= command.id %> k1 k2 k3 --json',
    {description: 'See what a regex would remove, then remove it', command: "<%= config.bin %> <%= command.id %> --regex '^session/42/' --dry-run"},
    {description: 'Remove everything, leases notwithstanding', command: '<%= config.bin %> <%= command.id %> --all --force'},
    {description: 'A key that starts with a dash', command: '<%= config.bin %> <%= command.id %> -- -odd-key'},
  ]
  static override args = {
    keys: Args.string({description: 'keys to remove', multiple: true, ignoreStdin: true}),
  }
  static override flags = {
    regex: Flags.string({summary: 'remove every key matching RE (ECMAScript, unanchored)', helpValue: 'RE', exclusive: ['all']}),
    all: Flags.boolean({summary: 'remove every object', exclusive: ['regex']}),
    'dry-run': Flags.boolean({summary: 'with --regex or --all: report what would be removed, remove nothing'}),
    force: Flags.boolean({summary: 'remove even objects under a read lease'}),
  }

  async run(): Promise<RmJson> {
    const keys = this.args.keys ?? []
    const {regex, all, force} = this.flags
    const dryRun = this.flags['dry-run']
    const selectors = (keys.length > 0 ? 1 : 0) + (regex === undefined ? 0 : 1) + (all ? 1 : 0)
    if (selectors !== 1) throw new MooncakeError('USAGE', 'give KEYs, or --regex RE, or --all (exactly one of them)')
    if (dryRun && keys.length > 0) throw new MooncakeError('USAGE', '--dry-run goes with --regex or --all')

    const client = await this.connectClient()
    if (keys.length === 1) {
      // One key: its error is the command's error (OBJECT_NOT_FOUND exit 3, OBJECT_HAS_LEASE exit 1).
      await this.deadline.race(client.remove(keys[0], {force}))
      return this.report({removed: 1, skipped: 0, keys}, false)
    }
    if (keys.length > 1) return this.removeKeys(client, [...new Set(keys)], force)

    const result = await this.deadline.race(
      regex === undefined ? client.removeAll({force, dryRun}) : client.removeByRegex(regex, {force, dryRun}),
    )
    const json = {removed: result.removed, skipped: result.skipped, keys: result.keys}
    if (result.skipped > 0 && !dryRun) {
      this.itemError('PARTIAL_FAILURE', `${result.skipped} object${result.skipped === 1 ? ' was' : 's were'} skipped (under a read lease, or still being written); --force removes leased objects`)
      this.setExitCode(ExitCode.PARTIAL)
    }
    return this.report(json, dryRun)
  }

  private async removeKeys(client: MooncakeClient, keys: string[], force: boolean): Promise<RmJson> {
    const results = await this.deadline.race(client.batchRemove(keys, {force}))
    const removed: string[] = []
    const codes = new Set<ErrorCodeName>()
    results.forEach((r, i) => {
      if (r.ok) {
        removed.push(keys[i])
        return
      }
      codes.add(r.code)
      this.itemError(r.code, r.message.includes(keys[i]) ? r.message : `${keys[i]}: ${r.message}`)
    })
    const failed = keys.length - removed.length
    if (failed > 0) {
      // Every key failed the same way: that failure's exit code (all missing: 3); else partial.
      const [only] = codes
      this.setExitCode(removed.length === 0 && codes.size === 1 ? exitCodeFor(only) : ExitCode.PARTIAL)
    }
    return this.report({removed: removed.length, skipped: failed, keys: removed}, false)
  }

  private report(json: RmJson, dryRun: boolean): RmJson {
    if (!this.jsonEnabled()) {
      if (json.keys.length > 0) process.stdout.write(`${json.keys.join('\n')}\n`)
      const skipped = json.skipped > 0 ? `, ${json.skipped} skipped` : ''
      this.notice(dryRun ? `would remove ${json.removed}${skipped} (dry run)` : `removed ${json.removed}${skipped}`)
    }
    return json
  }
}
