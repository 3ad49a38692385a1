import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../lib/errors.js'

export default class Exists extends BaseCommand<typeof Exists> {
  static override summary = 'check whether keys exist'
  static override description = `Prints, per KEY, "KEY<TAB>true" or "KEY<TAB>false" on stdout. A key exists when its object has a complete replica (one still being written does not). Like a read, the check grants a read lease (as the original's ExistKey).
With --json: {"KEY":true,...}, one member per distinct KEY.
Exit codes: 0 every KEY exists; 3 at least one is missing (the output still lists them all); 5 master unreachable. In a script: if mooncake exists KEY >/dev/null; then ...`
  static override examples = [
    '<%= config.bin %> <%= command.id %> greeting',
    {description: 'In a script', command: 'if <%= config.bin %> <%= command.id %> model/layer0 >/dev/null; then echo cached; fi'},
    {description: 'Several keys, machine-readable', command: '<%= config.bin %> <%= command.id %> k1 k2 k3 --json'},
  ]
  static override args = {
    keys: Args.string({description: 'keys to check', multiple: true, required: true, ignoreStdin: true}),
  }

  async run(): Promise<Record<string, boolean>> {
    const keys = [...new Set(this.args.keys)]
    const client = await this.connectClient()
    const found = await this.deadline.race(client.batchIsExist(keys))
    // A null prototype: a key named "__proto__" is a key like any other.
    const json: Record<string, boolean> = Object.create(null)
    keys.forEach((key, i) => (json[key] = found[i] === true))
    if (!this.jsonEnabled()) process.stdout.write(keys.map((key) => `${key}\t${json[key]}\n`).join(''))
    if (keys.some((key) => !json[key])) this.setExitCode(ExitCode.NOT_FOUND)
    return json
  }
}
