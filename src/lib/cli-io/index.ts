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

const KiB = 1024
const MiB = 1024 * KiB
/** The client's default slice (4 MiB) and staging pool (64 MiB): what large values get. */
const DEFAULT_SLICE = 4 * MiB

/**
 * Client options sized for one value of `size` bytes. The client pre-faults its staging pool
 * (64 MiB by default) on first use, which costs a short-lived CLI more than a small transfer
 * itself; a value known to be small gets a pool just large enough. Large or unknown sizes keep
 * the library defaults.
 */
export function transferTuning(size: number | undefined): {sliceSize?: number; stagingBytes?: number} {
  if (size === undefined || !Number.isSafeInteger(size) || size <= 0 || size >= 16 * MiB) return {}
  const roundUp = (n: number, unit: number): number => Math.ceil(n / unit) * unit
  const sliceSize = size <= DEFAULT_SLICE ? roundUp(size, 4 * KiB) : DEFAULT_SLICE
  return {sliceSize, stagingBytes: roundUp(size, sliceSize)}
}

/**
 * Reads `stream` until it ends or more than `limit` bytes came. `ended`: the whole stream is in
 * `chunks`; otherwise `rest` yields the chunks read so far and then the remainder of the stream.
 */
export async function readHead(
  stream: NodeJS.ReadableStream,
  limit: number,
): Promise<{ended: true; value: Buffer} | {ended: false; rest: AsyncIterable<Uint8Array>}> {
  const iterator = (stream as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
  const chunks: Buffer[] = []
  let bytes = 0
  while (bytes <= limit) {
    const next = await iterator.next()
    if (next.done) return {ended: true, value: Buffer.concat(chunks, bytes)}
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength)
    chunks.push(chunk)
    bytes += chunk.length
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* chunks
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value
  }
  return {ended: false, rest: rest()}
}
