/**
 * Sources a put reads slices from, and sinks a get writes slices to. Each slice travels through
 * a registered view: the caller's memory when it is registered (zero copy), else a staging lease.
 */
import {randomUUID} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {open, rename, rm, stat, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {MooncakeError, toMooncakeError} from '../errors.js'
import {crc32cFold} from './crc32c.js'
import type {DataPath} from './data-path.js'
import type {StagingLease, StagingPool} from './staging.js'

export interface SliceView {
  view: Uint8Array
  lease?: StagingLease
}

/** Where a put's bytes come from; `read` is called in value order. */
export interface WriteSource {
  readonly size: number
  read(offset: number, length: number): Promise<SliceView> | SliceView
  close(): Promise<void>
}

export class BufferSource implements WriteSource {
  private readonly direct: boolean
  constructor(
    private readonly value: Uint8Array,
    private readonly staging: StagingPool,
    dataPath: DataPath,
  ) {
    this.direct = dataPath.isRegistered(value)
  }

  get size(): number {
    return this.value.length
  }

  read(offset: number, length: number): Promise<SliceView> | SliceView {
    const src = this.value.subarray(offset, offset + length)
    if (this.direct) return {view: src}
    const got = this.staging.acquire(length)
    if (got instanceof Promise) {
      return got.then((lease) => {
        lease.view.set(src)
        return {view: lease.view, lease}
      })
    }
    got.view.set(src)
    return {view: got.view, lease: got}
  }

  async close(): Promise<void> {}
}

export class FileSource implements WriteSource {
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly staging: StagingPool,
    private readonly file: string,
  ) {}

  static async open(file: string, staging: StagingPool): Promise<FileSource> {
    let handle: FileHandle
    try {
      handle = await open(file, 'r')
    } catch (err) {
      throw fileError(err, file)
    }
    const st = await handle.stat()
    if (!st.isFile()) {
      await handle.close()
      throw new MooncakeError('INVALID_PARAMS', `${file} is not a regular file`)
    }
    return new FileSource(handle, st.size, staging, file)
  }

  async read(offset: number, length: number): Promise<SliceView> {
    const lease = await this.staging.acquire(length)
    try {
      let done = 0
      while (done < length) {
        const {bytesRead} = await this.handle.read(lease.view, done, length - done, offset + done)
        if (bytesRead === 0) throw new MooncakeError('FILE_READ_FAIL', `${this.file} shrank while it was being read`)
        done += bytesRead
      }
    } catch (err) {
      this.staging.release(lease)
      throw toMooncakeError(err, 'FILE_READ_FAIL')
    }
    return {view: lease.view, lease}
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => {})
  }
}

/** A stream of known size, consumed in order. Fewer or more bytes than `size` is INVALID_PARAMS. */
export class StreamSource implements WriteSource {
  private readonly iterator: AsyncIterator<unknown>
  private pending: Buffer | undefined
  private consumed = 0

  constructor(
    stream: Readable | AsyncIterable<Uint8Array>,
    readonly size: number,
    private readonly staging: StagingPool,
  ) {
    this.iterator = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]()
  }

  private async nextChunk(): Promise<Buffer | undefined> {
    const r = await this.iterator.next()
    if (r.done) return undefined
    const v = r.value
    if (typeof v === 'string') return Buffer.from(v)
    if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    throw new MooncakeError('INVALID_PARAMS', 'a put stream must yield bytes')
  }

  async read(offset: number, length: number): Promise<SliceView> {
    if (offset !== this.consumed) throw new MooncakeError('INTERNAL_ERROR', 'stream slices must be read in order')
    const lease = await this.staging.acquire(length)
    try {
      let filled = 0
      while (filled < length) {
        const chunk = this.pending ?? (await this.nextChunk())
        this.pending = undefined
        if (!chunk) throw new MooncakeError('INVALID_PARAMS', `the stream ended after ${offset + filled} bytes, but its size was given as ${this.size}`)
        const take = Math.min(chunk.length, length - filled)
        lease.view.set(chunk.subarray(0, take), filled)
        filled += take
        if (take < chunk.length) this.pending = chunk.subarray(take)
      }
      this.consumed += length
      if (this.consumed === this.size) {
        const extra = this.pending?.length ? this.pending : await this.nextChunk()
        if (extra && extra.length > 0) throw new MooncakeError('INVALID_PARAMS', `the stream holds more than the ${this.size} bytes given as its size`)
      }
    } catch (err) {
      this.staging.release(lease)
      throw toMooncakeError(err)
    }
    return {view: lease.view, lease}
  }

  async close(): Promise<void> {
    await this.iterator.return?.().catch(() => {})
  }
}

/** Spools a stream of unknown length to a temporary file; returns its path (the caller deletes it). */
export async function spoolToTempFile(stream: Readable | AsyncIterable<Uint8Array>, dir: string): Promise<string> {
  const file = path.join(dir, `mooncake-spool-${process.pid}-${randomUUID()}.tmp`)
  try {
    await pipeline(stream instanceof Readable ? stream : Readable.from(stream), createWriteStream(file, {mode: 0o600}))
  } catch (err) {
    await rm(file, {force: true})
    throw toMooncakeError(err, 'FILE_WRITE_FAIL')
  }
  return file
}

/** Where a get's bytes go. `target` gives a registered view for a slice; `commit` is called when it holds the bytes. */
export interface ReadSink {
  /** False once bytes have left irrevocably (a stream): the read can then not restart on another replica. */
  readonly restartable: boolean
  target(offset: number, length: number): Promise<SliceView> | SliceView
  /** Takes the slice's bytes and releases the lease (always, even on failure). */
  commit(offset: number, slice: SliceView): Promise<void> | void
  /** Drops a slice whose transfer failed. */
  discard(slice: SliceView): void
}

export interface FillSinkOptions {
  sliceSize: number
  /** Slices filled at once. */
  parallel: number
  crc32c: (data: Uint8Array) => number
  /** Called before each slice (the lease check). */
  check?: () => void
}

/**
 * Fills `sink` with `size` bytes, `parallel` slices at a time: `fill` puts slice `index`'s bytes
 * (at `offset`) into `view` and may return their CRC32C (computed by the engine; else it is computed
 * here). The first failure stops the workers and is thrown. Resolves with the value's CRC32C,
 * folded from the slices' CRCs as they land.
 */
export async function fillSink(
  sink: ReadSink,
  size: number,
  options: FillSinkOptions,
  fill: (index: number, offset: number, view: Uint8Array) => Promise<number | undefined | void>,
): Promise<number> {
  const {sliceSize} = options
  const count = Math.ceil(size / sliceSize)
  const parts: Array<{crc: number; length: number}> = new Array(count)
  let next = 0
  let failure: unknown
  const worker = async (): Promise<void> => {
    while (next < count && failure === undefined) {
      options.check?.()
      const i = next++
      const offset = i * sliceSize
      const length = Math.min(sliceSize, size - offset)
      const got = sink.target(offset, length)
      const slice = got instanceof Promise ? await got : got
      let committed = false
      try {
        const view = slice.view.subarray(0, length)
        const crc = await fill(i, offset, view)
        parts[i] = {crc: crc ?? options.crc32c(view), length}
        committed = true
        await sink.commit(offset, slice)
      } catch (err) {
        if (!committed) sink.discard(slice)
        if (failure === undefined) failure = err
      }
    }
  }
  const workers: Promise<void>[] = []
  for (let w = 0; w < Math.min(options.parallel, count); w++) workers.push(worker())
  await Promise.all(workers)
  if (failure !== undefined) throw failure
  return crc32cFold(parts)
}

/** Reads into a caller's buffer: in place when it is registered, else through staging. */
export class BufferSink implements ReadSink {
  readonly restartable = true
  private readonly direct: boolean
  constructor(
    private readonly dest: Uint8Array,
    private readonly staging: StagingPool,
    dataPath: DataPath,
  ) {
    this.direct = dataPath.isRegistered(dest)
  }

  /** The caller's buffer (a disk read fills it directly: no staging needed). */
  get destination(): Uint8Array {
    return this.dest
  }

  target(offset: number, length: number): Promise<SliceView> | SliceView {
    if (this.direct) return {view: this.dest.subarray(offset, offset + length)}
    const got = this.staging.acquire(length)
    return got instanceof Promise ? got.then((lease) => ({view: lease.view, lease})) : {view: got.view, lease: got}
  }

  commit(offset: number, slice: SliceView): void {
    if (slice.lease) {
      this.dest.set(slice.view, offset)
      this.staging.release(slice.lease)
    }
  }

  discard(slice: SliceView): void {
    if (slice.lease) this.staging.release(slice.lease)
  }
}

/** Writes slices at their positions in an open file. */
export class FileSink implements ReadSink {
  readonly restartable = true
  constructor(
    private readonly handle: FileHandle,
    private readonly staging: StagingPool,
  ) {}

  async target(offset: number, length: number): Promise<SliceView> {
    const lease = await this.staging.acquire(length)
    return {view: lease.view, lease}
  }

  async commit(offset: number, slice: SliceView): Promise<void> {
    try {
      let done = 0
      while (done < slice.view.length) {
        const {bytesWritten} = await this.handle.write(slice.view, done, slice.view.length - done, offset + done)
        done += bytesWritten
      }
    } catch (err) {
      throw toMooncakeError(err, 'FILE_WRITE_FAIL')
    } finally {
      if (slice.lease) this.staging.release(slice.lease)
    }
  }

  discard(slice: SliceView): void {
    if (slice.lease) this.staging.release(slice.lease)
  }
}

/**
 * Feeds a Readable in value order. Each slice is copied out of staging at once (so no lease is
 * held while waiting for order or for the consumer), then pushed when its turn comes.
 */
export class StreamSink implements ReadSink {
  private emitted = 0
  private readonly ready = new Map<number, Buffer>()
  private waiters: Array<() => void> = []
  private drainWaiter: (() => void) | undefined
  private started = false

  constructor(
    private readonly out: Readable,
    private readonly staging: StagingPool,
  ) {}

  get restartable(): boolean {
    return !this.started
  }

  /** Called by the Readable's read(): the consumer wants more. */
  onRead(): void {
    const w = this.drainWaiter
    this.drainWaiter = undefined
    w?.()
  }

  async target(offset: number, length: number): Promise<SliceView> {
    const lease = await this.staging.acquire(length)
    return {view: lease.view, lease}
  }

  async commit(offset: number, slice: SliceView): Promise<void> {
    const copy = Buffer.allocUnsafe(slice.view.length)
    copy.set(slice.view)
    if (slice.lease) this.staging.release(slice.lease)
    this.ready.set(offset, copy)
    await this.pump()
    // Backpressure: wait until this slice has been pushed and the consumer has room.
    while (this.ready.has(offset)) {
      if (this.out.destroyed) throw new MooncakeError('INTERRUPTED', 'the reader closed the stream')
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  private pumping = false

  private async pump(): Promise<void> {
    if (this.pumping) return // the running pump will push this slice in its turn
    this.pumping = true
    try {
      for (;;) {
        const chunk = this.ready.get(this.emitted)
        if (!chunk) return
        this.ready.delete(this.emitted)
        this.emitted += chunk.length
        this.started = true
        const more = this.out.push(chunk)
        const waiters = this.waiters
        this.waiters = []
        for (const w of waiters) w()
        if (!more && !this.out.destroyed) await new Promise<void>((resolve) => (this.drainWaiter = resolve))
        if (this.out.destroyed) throw new MooncakeError('INTERRUPTED', 'the reader closed the stream')
      }
    } finally {
      this.pumping = false
    }
  }

  /** Wakes everything waiting (the stream was destroyed). */
  abort(): void {
    this.onRead()
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  discard(slice: SliceView): void {
    if (slice.lease) this.staging.release(slice.lease)
  }
}

/** A temporary file next to `file`, renamed over it on success (atomic replace). */
export async function openTempBeside(file: string): Promise<{handle: FileHandle; temp: string; commit(): Promise<void>; abort(): Promise<void>}> {
  const dir = path.dirname(path.resolve(file))
  const temp = path.join(dir, `.${path.basename(file)}.mooncake-${randomUUID().slice(0, 8)}.tmp`)
  let handle: FileHandle
  try {
    handle = await open(temp, 'w', 0o644)
  } catch (err) {
    throw fileError(err, temp)
  }
  let closed = false
  return {
    handle,
    temp,
    async commit() {
      // The bytes reach the disk before the rename makes them visible under `file`, and the
      // rename itself is made durable: after a crash, `file` is the old content or the whole new
      // value, never an empty or partial file.
      if (!closed) {
        try {
          await handle.sync()
        } catch (err) {
          throw toMooncakeError(err, 'FILE_WRITE_FAIL')
        }
        closed = true
        await handle.close()
      }
      try {
        await rename(temp, file)
      } catch (err) {
        throw fileError(err, file)
      }
      await syncDir(dir)
    },
    async abort() {
      if (!closed) {
        closed = true
        await handle.close().catch(() => {})
      }
      await rm(temp, {force: true})
    },
  }
}

/** fsync of a directory (makes a rename in it durable); file systems that cannot sync a directory are skipped. */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EBADF') throw toMooncakeError(err, 'FILE_WRITE_FAIL')
  } finally {
    await handle?.close().catch(() => {})
  }
}

export async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size
  } catch (err) {
    throw fileError(err, file)
  }
}

export function fileError(err: unknown, file: string): MooncakeError {
  const code = (err as NodeJS.ErrnoException)?.code
  if (code === 'ENOENT') return new MooncakeError('FILE_NOT_FOUND', `${file}: no such file or directory`, {cause: err})
  if (code === 'EACCES' || code === 'EISDIR' || code === 'EPERM') return new MooncakeError('FILE_OPEN_FAIL', `${file}: ${code}`, {cause: err})
  return toMooncakeError(err, 'FILE_OPEN_FAIL')
}
