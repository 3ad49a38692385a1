import {LOG_LEVELS, type LogLevel} from '../lib/config/settings.js'

export interface Logger {
  readonly level: LogLevel
  error(message: string): void
  warn(message: string): void
  info(message: string): void
  debug(message: string): void
  enabled(level: LogLevel): boolean
}

export interface LoggerOptions {
  /** @default 'warn' */
  level?: LogLevel
  /** Servers stamp each line with the time; one-shot commands do not. @default false */
  timestamps?: boolean
  /** @default process.stderr */
  stream?: {write(chunk: string): unknown}
}

/**
 * Logs go to stderr, one line each, so stdout carries only data (and a server's ready line).
 * No oclif and no colour here: library adapters may be handed this logger too.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'warn'
  const stream = options.stream ?? process.stderr
  const threshold = LOG_LEVELS.indexOf(level)
  const enabled = (at: LogLevel): boolean => LOG_LEVELS.indexOf(at) <= threshold
  const write = (at: LogLevel, message: string): void => {
    if (!enabled(at)) return
    const prefix = options.timestamps ? `${new Date().toISOString()} ${at.toUpperCase().padEnd(5)} ` : `mooncake: ${at}: `
    stream.write(`${prefix}${message}\n`)
  }
  return {
    level,
    enabled,
    error: (m) => write('error', m),
    warn: (m) => write('warn', m),
    info: (m) => write('info', m),
    debug: (m) => write('debug', m),
  }
}
