/**
 * Shell completion scripts for `mooncake completion`, generated from the command table oclif
 * reads from oclif.manifest.json (ids, flags, flag values): no command module is imported, and a
 * new command or flag is completed without touching this file.
 */

/** What the generator needs of a command (a subset of oclif's Command.Loadable). */
export interface CompletionCommand {
  id: string
  hidden?: boolean
  flags: Record<string, {name: string; char?: string; type: 'boolean' | 'option'; options?: readonly string[]; helpValue?: string | string[]; hidden?: boolean; allowNo?: boolean}>
  args?: Record<string, {name: string; options?: readonly string[]}>
}

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const
export type CompletionShell = (typeof COMPLETION_SHELLS)[number]

const WORD = /^[\w.:@%+=,/-]+$/
const quote = (words: string[]) => words.filter((w) => WORD.test(w)).join(' ')

/** Values a flag takes: its declared options, or a `a|b|c` help value. */
function flagValues(flag: CompletionCommand['flags'][string]): string[] | undefined {
  if (flag.options && flag.options.length > 0) return [...flag.options]
  const help = Array.isArray(flag.helpValue) ? flag.helpValue.join('|') : flag.helpValue
  if (help && /^[\w-]+(\|[\w-]+)+$/.test(help)) return help.split('|')
  return undefined
}

/** The bash completion function (also what zsh runs through bashcompinit). */
function bashFunction(bin: string, commands: CompletionCommand[]): string {
  const visible = commands.filter((c) => !c.hidden).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const fn = `_${bin.replace(/\W/g, '_')}_completion`
  // Every node of the command tree: topics (`segment`) and commands (`segment:ls`).
  const nodes = new Set<string>()
  const children = new Map<string, Set<string>>()
  for (const c of visible) {
    const parts = c.id.split(':')
    for (let i = 0; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(':')
      nodes.add(parts.slice(0, i + 1).join(':'))
      if (!children.has(parent)) children.set(parent, new Set())
      children.get(parent)!.add(parts[i]!)
    }
  }
  const subcommandCases = [...children]
    .map(([parent, names]) => `    ${JSON.stringify(parent)}) list=${JSON.stringify(quote([...names].sort()))} ;;`)
    .join('\n')
  const flagCases: string[] = []
  const valueCases: string[] = []
  const argCases: string[] = []
  for (const c of visible) {
    const flags = Object.values(c.flags).filter((f) => !f.hidden)
    const words: string[] = []
    for (const f of flags) {
      words.push(`--${f.name}`)
      if (f.allowNo) words.push(`--no-${f.name}`)
      if (f.char) words.push(`-${f.char}`)
      const values = f.type === 'option' ? flagValues(f) : undefined
      if (values) {
        valueCases.push(`    ${JSON.stringify(`${c.id} --${f.name}`)}${f.char ? `|${JSON.stringify(`${c.id} -${f.char}`)}` : ''}) list=${JSON.stringify(quote(values))} ;;`)
      }
    }
    flagCases.push(`    ${JSON.stringify(c.id)}) list=${JSON.stringify(quote(words.sort()))} ;;`)
    const argValues = Object.values(c.args ?? {}).flatMap((a) => a.options ?? [])
    if (argValues.length > 0) argCases.push(`    ${JSON.stringify(c.id)}) list=${JSON.stringify(quote(argValues))} ;;`)
  }
  return `${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" w i list=""
  (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command: the longest run of leading words that names a topic or a command.
  for (( i = 1; i < COMP_CWORD; i++ )); do
    w="\${COMP_WORDS[i]}"
    case " ${quote([...nodes])} " in
      *" \${cmd:+\$cmd:}\$w "*) cmd="\${cmd:+\$cmd:}\$w" ;;
      *) break ;;
    esac
  done
  # A flag's value.
  case "\$cmd \$prev" in
${valueCases.join('\n')}
    *) list="" ;;
  esac
  if [[ -n "\$list" ]]; then
    COMPREPLY=( \$(compgen -W "\$list" -- "\$cur") )
    return 0
  fi
  case "\$cmd" in
${flagCases.join('\n')}
    *) list="" ;;
  esac
  if [[ -n "\$list" ]]; then
    # A command: its flags after "-", else the values of its arguments, or file names (KEY, FILE, ...).
    if [[ "\$cur" == -* ]]; then
      COMPREPLY=( \$(compgen -W "\$list" -- "\$cur") )
      return 0
    fi
    case "\$cmd" in
${argCases.join('\n')}
      *) list="" ;;
    esac
    if [[ -n "\$list" ]]; then
      COMPREPLY=( \$(compgen -W "\$list" -- "\$cur") )
    else
      COMPREPLY=( \$(compgen -f -- "\$cur") )
    fi
    return 0
  fi
  # A topic (or nothing yet): its commands.
  case "\$cmd" in
${subcommandCases}
    *) list="" ;;
  esac
  COMPREPLY=( \$(compgen -W "\$list" -- "\$cur") )
  return 0
}`
}

/** The completion script of `shell` for `bin` over `commands`. */
export function completionScript(shell: CompletionShell, bin: string, commands: CompletionCommand[]): string {
  const fn = `_${bin.replace(/\W/g, '_')}_completion`
  const body = bashFunction(bin, commands)
  if (shell === 'zsh') {
    return `# ${bin} completion for zsh. Load it with:  eval "$(${bin} completion zsh)"  (e.g. in ~/.zshrc)
autoload -U +X compinit && { (( \${+_comps} )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${body}
complete -o default -F ${fn} ${bin}
`
  }
  return `# ${bin} completion for bash. Load it with:  eval "$(${bin} completion bash)"  (e.g. in ~/.bashrc)
${body}
complete -o default -F ${fn} ${bin}
`
}
