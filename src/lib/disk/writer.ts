/**
 * The segment owner's disk writer (docs/disk-tier.md "Who writes"): the master hands the owner of
 * an object's first memory replica a DiskTask through Ping; the owner writes the file from its own
 * segment memory (windows of native memory go straight to write(2); the CRC32C is computed on the
 * same windows by the native code) and reports the outcome on its next Ping.
 *
 * A file is written atomically: a temporary file in the target directory, the value, then the
 * header (it holds the value's CRC32C), fsync, rename, fsync of the directory.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, open, rename, rm, type FileHandle} from 'node:fs/promises'
import path from 'node:path'

import {syncDir} from '../client/io.js'
import {MooncakeError, type ErrorCodeName} from '../errors.js'
import type {DiskTask, DiskTaskResult} from '../master/api.js'
import {DISK_FIXED_HEADER, diskError, encodeHeader} from './format.js'

/** Bytes per write(2) (and per CRC step): large enough for throughput, small enough to keep the event loop responsive. */
export const DISK_WRITE_CHUNK = 8 * 1024 * 1024

export interface DiskWriterSource {
  /** A view of segment memory (length <= 1 GiB). */
  window(offset: number, length: number): Uint8Array
  /** Name of the segment (tasks for another segment are refused). */
  readonly name: string
}

export interface DiskWriterOptions {
  crc32c: (data: Uint8Array, seed?: number) => number
  /** Files written at once. @default 2 */
  concurrency?: number
  /** Called after each task settles (the owner reports soon). */
  onResult?: () => void
}

/** Writes one task's file; resolves with the value's CRC32C. */
export async function writeDiskFile(task: DiskTask, source: DiskWriterSource, crc32c: (data: Uint8Array, seed?: number) => number): Promise<number> {
  const dir = path.dirname(task.path)
  const temp = path.join(dir, `.${path.basename(task.path)}.${randomBytes(6).toString('hex')}.tmp`)
  let fh: FileHandle | undefined
  try {
    await mkdir(dir, {recursive: true, mode: 0o755})
    fh = await open(temp, 'wx', 0o644)
    const headerLength = DISK_FIXED_HEADER + Buffer.byteLength(task.key, 'utf8')
    let crc = 0
    for (let pos = 0; pos < task.length; ) {
      const n = Math.min(DISK_WRITE_CHUNK, task.length - pos)
      const view = source.window(task.offset + pos, n)
      crc = crc32c(view, crc)
      let done = 0
      while (done < n) {
        const {bytesWritten} = await fh.write(view, done, n - done, headerLength + pos + done)
        if (bytesWritten <= 0) throw new MooncakeError('FILE_WRITE_FAIL', `${task.path}: short write`)
        done += bytesWritten
      }
      pos += n
    }
    crc >>>= 0
    if (task.checksum !== undefined && task.checksum >>> 0 !== crc) {
      throw new MooncakeError('CHECKSUM_MISMATCH', `${task.key}: the segment bytes do not match the checksum written by the client (${crc.toString(16)} != ${(task.checksum >>> 0).toString(16)})`)
    }
    const header = encodeHeader({key: task.key, size: task.length, version: task.version, checksum: crc}, crc32c)
    if (header.length !== headerLength) throw new MooncakeError('INTERNAL_ERROR', 'disk header length changed')
    let done = 0
    while (done < header.length) done += (await fh.write(header, done, header.length - done, done)).bytesWritten
    await fh.sync()
    await fh.close()
    fh = undefined
    await rename(temp, task.path)
    await syncDir(dir)
    return crc
  } catch (err) {
    await fh?.close().catch(() => {})
    await rm(temp, {force: true}).catch(() => {})
    throw diskError(err, task.path, 'FILE_WRITE_FAIL')
  }
}

/** Queue of disk tasks with bounded concurrency; results wait until the owner's next Ping takes them. */
export class DiskWriter {
  private readonly queue: DiskTask[] = []
  private readonly known = new Set<string>()
  private results: DiskTaskResult[] = []
  private running = 0
  private readonly idle: Array<() => void> = []
  private closed = false
  private readonly concurrency: number
  /** Tasks written and failed so far. */
  readonly counts = {written: 0, failed: 0, bytes: 0}

  constructor(
    private readonly source: DiskWriterSource,
    private readonly options: DiskWriterOptions,
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 2)
  }

  /** Queues tasks (a task already queued or being written is ignored: the master may resend). */
  submit(tasks: readonly DiskTask[] | undefined): void {
    if (tasks === undefined || this.closed) return
    for (const t of tasks) {
      const id = `${t.version}\0${t.key}`
      if (this.known.has(id)) continue
      this.known.add(id)
      this.queue.push(t)
    }
    this.pump()
  }

  /** Results not yet reported; the caller gives them back with `requeueResults` if its Ping fails. */
  takeResults(): DiskTaskResult[] {
    const r = this.results
    this.results = []
    return r
  }

  requeueResults(r: DiskTaskResult[]): void {
    if (r.length > 0) this.results = [...r, ...this.results]
  }

  get pending(): number {
    return this.queue.length + this.running
  }

  private pump(): void {
    while (!this.closed && this.running < this.concurrency && this.queue.length > 0) {
      const task = this.queue.shift()!
      this.running++
      void this.run(task).finally(() => {
        this.running--
        this.known.delete(`${task.version}\0${task.key}`)
        if (this.running === 0 && this.queue.length === 0) for (const w of this.idle.splice(0)) w()
        this.options.onResult?.()
        this.pump()
      })
    }
  }

  private async run(task: DiskTask): Promise<void> {
    try {
      if (task.segment !== undefined && task.segment !== '' && task.segment !== this.source.name) {
        throw new MooncakeError('SEGMENT_NOT_FOUND', `disk task for segment ${task.segment}, this owner holds ${this.source.name}`)
      }
      const checksum = await writeDiskFile(task, this.source, this.options.crc32c)
      this.counts.written++
      this.counts.bytes += task.length
      this.results.push({key: task.key, version: task.version, ok: true, checksum})
    } catch (err) {
      const e = err instanceof MooncakeError ? err : diskError(err, task.path, 'FILE_WRITE_FAIL')
      this.counts.failed++
      this.results.push({key: task.key, version: task.version, ok: false, code: e.code as ErrorCodeName, message: e.message})
    }
  }

  /** Stops taking tasks and waits for the writes in flight (the segment memory must outlive them). */
  async close(): Promise<void> {
    this.closed = true
    this.queue.length = 0
    if (this.running === 0) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }
}
