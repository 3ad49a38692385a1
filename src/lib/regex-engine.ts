import v8 from 'node:v8'

import {MooncakeError} from './errors.js'

let enabled = false

/**
 * Lets V8 fall back to its linear-time engine when a pattern backtracks excessively, so a
 * pathological regex such as `(a+)+$` cannot stall a server. It must run before any regex is
 * compiled (NODE_OPTIONS refuses the flag), so every entry point calls it first.
 */
export function enableLinearRegex(): void {
  if (enabled) return
  v8.setFlagsFromString('--enable-experimental-regexp-engine')
  v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks')
  // V8's default (50 000 backtracks per match before the fallback) lets `(a+)+$` or
  // `[\s\S]*[\s\S]*z` cost ~0.3 ms per key, seconds over a store: fall back much sooner.
  v8.setFlagsFromString('--regexp-backtracks-before-fallback=1000')
  enabled = true
}

/** Longest pattern accepted; the linear engine's cost also grows with the pattern. */
export const MAX_REGEX_LENGTH = 4096

/**
 * Compiles a user pattern with ECMAScript syntax and search semantics (unanchored, like the
 * original's `std::regex_search`). Patterns the linear engine cannot run (backreferences,
 * lookaround) are refused with INVALID_PARAMS; accepted ones run on the fast backtracking engine,
 * which V8 abandons for the linear one when a match backtracks too much.
 */
export function compileSearchRegex(pattern: string): RegExp {
  enableLinearRegex()
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new MooncakeError('INVALID_PARAMS', 'regex must be a non-empty string')
  }
  if (pattern.length > MAX_REGEX_LENGTH) {
    throw new MooncakeError('INVALID_PARAMS', `regex is longer than ${MAX_REGEX_LENGTH} characters`)
  }
  try {
    new RegExp(pattern, 'l')
    return new RegExp(pattern)
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new MooncakeError('INVALID_PARAMS', `bad regex ${JSON.stringify(pattern)}: ${reason}`)
  }
}
