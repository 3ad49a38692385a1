import {formatBytes} from '../lib/units.js'

/** Transfers below this finish before a bar would be worth drawing. */
export const PROGRESS_THRESHOLD = 64 * 2 ** 20

export interface ProgressOptions {
  /** Total bytes; a bar is drawn only above PROGRESS_THRESHOLD. */
  total: number
  /** Text before the bar, e.g. the key. */
  label: string
  /** False with --json or --quiet. @default true */
  enabled?: boolean
  /** @default process.stderr */
  stream?: NodeJS.WriteStream
  /** Redraws per second at most. @default 10 */
  fps?: number
}

export interface Progress {
  /** Bytes done so far (absolute, not a delta). */
  update(done: number): void
  /** Clears the bar. */
  done(): void
}

const NONE: Progress = {update() {}, done() {}}

/**
 * A one-line progress bar on stderr, only where someone watches it: stderr a terminal, no
 * --json/--quiet, and a transfer large enough to take a while.
 */
export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr
  if (options.enabled === false || !stream.isTTY || options.total <= PROGRESS_THRESHOLD) return NONE
  const started = Date.now()
  const interval = 1000 / (options.fps ?? 10)
  let last = 0
  let drawn = false
  const draw = (done: number): void => {
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - options.label.length - 50))
    const ratio = Math.min(1, done / options.total)
    const filled = Math.round(ratio * width)
    const seconds = (Date.now() - started) / 1000
    const rate = seconds > 0 ? done / seconds : 0
    const eta = rate > 0 ? Math.ceil((options.total - done) / rate) : undefined
    const bar = `${'='.repeat(filled)}${filled < width ? '>' : ''}`.padEnd(width).slice(0, width)
    const text =
      `${options.label} [${bar}] ${(ratio * 100).toFixed(0).padStart(3)}% ` +
      `${formatBytes(done)}/${formatBytes(options.total)} ${formatBytes(rate)}/s` +
      (eta === undefined ? '' : ` ETA ${eta}s`)
    stream.write(`\r\x1b[2K${text}`)
    drawn = true
  }
  return {
    update(done) {
      const now = Date.now()
      if (now - last < interval && done < options.total) return
      last = now
      draw(done)
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K')
    },
  }
}
