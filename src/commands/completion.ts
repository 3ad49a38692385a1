import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {COMPLETION_SHELLS, completionScript, type CompletionCommand, type CompletionShell} from '../cli/completion.js'

export default class Completion extends BaseCommand<typeof Completion> {
  static override summary = 'print a shell completion script (bash or zsh)'
  static override description = `Prints a script that completes commands, flags and flag values of mooncake (file names elsewhere). It is generated from the installed commands, so it follows upgrades: load it from your shell's start-up file rather than saving a copy.
With --json, prints {"shell","script"}.`
  static override examples = [
    {description: 'bash: add to ~/.bashrc', command: 'eval "$(<%= config.bin %> <%= command.id %> bash)"'},
    {description: 'zsh: add to ~/.zshrc', command: 'eval "$(<%= config.bin %> <%= command.id %> zsh)"'},
  ]
  static override args = {
    shell: Args.string({description: 'shell to complete for: bash (default) or zsh', options: [...COMPLETION_SHELLS], default: 'bash'}),
  }

  async run(): Promise<{shell: CompletionShell; script: string}> {
    const shell = this.args.shell as CompletionShell
    // oclif's command table comes from oclif.manifest.json: no command module is loaded.
    const script = completionScript(shell, this.config.bin, this.config.commands as unknown as CompletionCommand[])
    if (!this.jsonEnabled()) process.stdout.write(script)
    return {shell, script}
  }
}
