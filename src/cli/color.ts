import type {ChalkInstance} from 'chalk'

/**
 * Colour for a stream only when a person reads it: a terminal, no NO_COLOR (set and not
 * empty, per no-color.org; chalk 5 ignores it), FORCE_COLOR=0 respected. chalk is imported
 * only then, so pipes and scripts never pay for it.
 */
export function colorAllowed(stream: {isTTY?: boolean} = process.stderr, env = process.env): boolean {
  if (env.NO_COLOR) return false
  if (env.FORCE_COLOR === '0' || env.FORCE_COLOR === 'false') return false
  return stream.isTTY === true && env.TERM !== 'dumb'
}

export async function colors(stream: {isTTY?: boolean} = process.stderr): Promise<ChalkInstance | undefined> {
  if (!colorAllowed(stream)) return undefined
  const {Chalk} = await import('chalk')
  return new Chalk({level: 1})
}
