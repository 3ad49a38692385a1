/**
 * Moving payload parts between files/buffers and segment memory without reading files whole
 * into the JS heap: file bytes are read straight into segment windows in chunks, and shards are
 * written from segment windows to destination files at their offsets.
 */
import {randomBytes} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {MooncakeError} from '../errors.js'
import type {DataSegment} from './engine.js'
import type {P2PDestination, P2PSource} from './types.js'

export async function sourceSizes(sources: readonly P2PSource[]): Promise<number[]> {
  return Promise.all(
    sources.map(async (source, i) => {
      if (Buffer.isBuffer(source)) return source.length
      if (!source || typeof source.file !== 'string') throw new MooncakeError('INVALID_PARAMS', `source ${i} is neither a Buffer nor {file}`)
      try {
        const stat = await fsp.stat(source.file)
        if (!stat.isFile()) throw new MooncakeError('INVALID_PARAMS', `${source.file} is not a regular file`)
        return stat.size
      } catch (err) {
        if (err instanceof MooncakeError) throw err
        throw new MooncakeError('FILE_NOT_FOUND', `cannot read ${source.file}: ${(err as Error).message}`, {cause: err})
      }
    }),
  )
}

/** Copies the parts, in order, into the segment starting at offset 0. */
export async function loadSources(sources: readonly P2PSource[], sizes: readonly number[], segment: DataSegment, chunkSize: number): Promise<void> {
  let base = 0
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i]
    const size = sizes[i]
    if (Buffer.isBuffer(source)) {
      for (let pos = 0; pos < size; pos += chunkSize) {
        const n = Math.min(chunkSize, size - pos)
        source.copy(segment.window(base + pos, n), 0, pos, pos + n)
      }
    } else {
      let handle
      try {
        handle = await fsp.open(source.file, 'r')
      } catch (err) {
        throw new MooncakeError('FILE_OPEN_FAIL', `cannot open ${source.file}: ${(err as Error).message}`, {cause: err})
      }
      try {
        for (let pos = 0; pos < size; ) {
          const n = Math.min(chunkSize, size - pos)
          const {bytesRead} = await handle.read(segment.window(base + pos, n), 0, n, pos)
          if (bytesRead === 0) throw new MooncakeError('FILE_READ_FAIL', `${source.file} shrank while it was being registered (at byte ${pos} of ${size})`)
          pos += bytesRead
        }
      } catch (err) {
        if (err instanceof MooncakeError) throw err
        throw new MooncakeError('FILE_READ_FAIL', `cannot read ${source.file}: ${(err as Error).message}`, {cause: err})
      } finally {
        await handle.close()
      }
    }
    base += size
  }
}

/** Destination parts of a download; files are written to temporaries renamed on commit. */
export class DestinationSet {
  private handles: Array<fsp.FileHandle | undefined> = []
  private temps: Array<string | undefined> = []

  private constructor(private readonly destinations: readonly P2PDestination[]) {}

  static sizesOf(destinations: readonly P2PDestination[], registered: readonly number[]): number[] {
    return destinations.map((d, i) => {
      if (Buffer.isBuffer(d)) return d.length
      if (!d || typeof d.file !== 'string') throw new MooncakeError('INVALID_PARAMS', `destination ${i} is neither a Buffer nor {file}`)
      return d.size ?? registered[i] ?? 0
    })
  }

  static async open(destinations: readonly P2PDestination[], sizes: readonly number[]): Promise<DestinationSet> {
    const set = new DestinationSet(destinations)
    try {
      for (let i = 0; i < destinations.length; i++) {
        const d = destinations[i]
        if (Buffer.isBuffer(d)) {
          set.handles.push(undefined)
          set.temps.push(undefined)
          continue
        }
        const target = path.resolve(d.file)
        const temp = path.join(path.dirname(target), `.${path.basename(target)}.p2p-${process.pid}-${randomBytes(4).toString('hex')}`)
        set.temps.push(temp)
        let handle
        try {
          handle = await fsp.open(temp, 'wx', 0o644)
        } catch (err) {
          set.temps[i] = undefined
          throw new MooncakeError('FILE_OPEN_FAIL', `cannot create ${temp}: ${(err as Error).message}`, {cause: err})
        }
        set.handles.push(handle)
        await handle.truncate(sizes[i])
      }
    } catch (err) {
      await set.abort()
      throw err
    }
    return set
  }

  async write(part: number, partOffset: number, data: Buffer): Promise<void> {
    const d = this.destinations[part]
    if (Buffer.isBuffer(d)) {
      data.copy(d, partOffset)
      return
    }
    const handle = this.handles[part]!
    try {
      for (let done = 0; done < data.length; ) {
        const {bytesWritten} = await handle.write(data, done, data.length - done, partOffset + done)
        done += bytesWritten
      }
    } catch (err) {
      throw new MooncakeError('FILE_WRITE_FAIL', `cannot write ${this.temps[part]}: ${(err as Error).message}`, {cause: err})
    }
  }

  /** fsync, close and rename every file into place. */
  async commit(): Promise<void> {
    try {
      for (let i = 0; i < this.destinations.length; i++) {
        const handle = this.handles[i]
        if (!handle) continue
        await handle.sync()
        await handle.close()
        this.handles[i] = undefined
        const d = this.destinations[i] as {file: string}
        await fsp.rename(this.temps[i]!, path.resolve(d.file))
        this.temps[i] = undefined
      }
    } catch (err) {
      await this.abort()
      throw new MooncakeError('FILE_WRITE_FAIL', `cannot finish the destination files: ${(err as Error).message}`, {cause: err})
    }
  }

  async abort(): Promise<void> {
    for (let i = 0; i < this.handles.length; i++) {
      await this.handles[i]?.close().catch(() => {})
      this.handles[i] = undefined
      const temp = this.temps[i]
      if (temp) await fsp.rm(temp, {force: true}).catch(() => {})
      this.temps[i] = undefined
    }
  }
}
