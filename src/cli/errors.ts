import {isErrorCodeName, MooncakeError, type ErrorCodeName} from '../lib/errors.js'

const ANSI = /\x1b\[[0-9;]*m/g

const SYSTEM_ERRORS: Record<string, ErrorCodeName> = {
  ENOENT: 'FILE_NOT_FOUND',
  EACCES: 'FILE_OPEN_FAIL',
  EPERM: 'FILE_OPEN_FAIL',
  EISDIR: 'FILE_OPEN_FAIL',
  ENOTDIR: 'FILE_OPEN_FAIL',
  ENOSPC: 'FILE_WRITE_FAIL',
  ECONNREFUSED: 'UNAVAILABLE',
  EADDRINUSE: 'INVALID_PARAMS',
}

/** Errors that oclif's parser raises (unknown flag, missing argument, ...) carry exit 2. */
function isOclifUsageError(err: unknown): err is Error & {oclif: {exit: number}} {
  return err instanceof Error && (err as {oclif?: {exit?: number}}).oclif?.exit === 2
}

/** oclif's multi-line parse messages as one line, without its "--help" trailer. */
function oneLine(message: string): string {
  return message
    .replace(ANSI, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !/^See more help with/.test(line))
    // oclif lists missing args as "name  description" lines: the name is enough on one line.
    .map((line, i) => (i > 0 ? line.replace(/^(\S+)\s{2,}.*$/, '$1') : line))
    .join(' ')
    .replaceAll(/\s{2,}/g, ' ')
}

/** Anything thrown in a command, as the MooncakeError the CLI reports (one code, one line). */
export function toCliError(err: unknown, commandId?: string): MooncakeError {
  if (err instanceof MooncakeError) return err
  if (isOclifUsageError(err)) {
    const hint = commandId ? ` (see: mooncake ${commandId.replaceAll(':', ' ')} --help)` : ''
    return new MooncakeError('USAGE', `${oneLine(err.message)}${hint}`, {cause: err})
  }
  const code = (err as {code?: unknown} | undefined)?.code
  if (typeof code === 'string') {
    if (isErrorCodeName(code)) return new MooncakeError(code, oneLine((err as Error).message ?? String(err)), {cause: err})
    const mapped = SYSTEM_ERRORS[code]
    if (mapped) return new MooncakeError(mapped, (err as Error).message, {cause: err})
  }
  const message = err instanceof Error ? err.message : String(err)
  return new MooncakeError('INTERNAL_ERROR', oneLine(message) || 'unknown error', {cause: err})
}

/** The contract's error line: `mooncake: CODE: message`. */
export function errorLine(err: MooncakeError): string {
  return `mooncake: ${err.code}: ${oneLine(err.message)}`
}
