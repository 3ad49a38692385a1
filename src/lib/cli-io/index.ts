/**
 * oclif-free helpers of the data commands: writing to a stdout that may be a closed pipe
 * (`mooncake ls | head`), and the terminal checks of put/get.
 */
import type {Writable} from 'node:stream'

/** The error a write to a pipe whose reader went away raises. */
export function isBrokenPipe(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END'
}

/**
 * Writes text to a stream with back-pressure (never buffers more than the stream's high-water
 * mark) and notices a reader that went away (EPIPE): then `closed` becomes true and writes are
 * dropped, so `ls | head` ends quietly instead of crashing or listing on for nothing.
 */
export class PipeWriter {
  #closed = false
  #error: Error | undefined
  #waiters: Array<() => void> = []
  readonly #onError = (err: Error): void => {
    if (isBrokenPipe(err)) this.#closed = true
    else this.#error = err
    this.#wake()
  }

  constructor(private readonly out: Writable & {writableNeedDrain?: boolean} = process.stdout) {
    out.on('error', this.#onError)
    out.on('drain', () => this.#wake())
    out.on('close', () => {
      this.#closed = true
      this.#wake()
    })
  }

  /** True once the reader went away: stop producing. */
  get closed(): boolean {
    return this.#closed
  }

  /** Writes `text`; resolves once the stream can take more (or the reader went away). */
  async write(text: string): Promise<void> {
    if (this.#error) throw this.#error
    if (this.#closed) return
    let ok: boolean
    try {
      ok = this.out.write(text)
    } catch (err) {
      this.#onError(err as Error)
      return
    }
    if (!ok && !this.#closed) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    if (this.#error) throw this.#error
  }

  /** Waits until what was written has been handed to the OS (or the reader went away). */
  async flush(): Promise<void> {
    if (this.#closed || this.#error) return
    await new Promise<void>((resolve) => {
      try {
        this.out.write('', () => resolve())
      } catch {
        resolve()
      }
    })
  }

  /** Stops listening; keeps a no-op error listener so a late EPIPE cannot crash the process. */
  release(): void {
    this.out.off('error', this.#onError)
    this.out.on('error', () => {})
    this.#wake()
  }

  #wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve()
  }
}
