/**
 * FILE_READ (S14): a client reads a disk replica straight from the shared rootFsDir, slice by
 * slice into the caller's sink (its buffer, file or stream), verifying the header (magic, header
 * CRC, key, size, object version, the object's checksum) and the value's CRC32C. A mismatch is
 * CHECKSUM_MISMATCH: the caller tries another replica and never returns the bytes.
 */
import {open, type FileHandle} from 'node:fs/promises'

import {MooncakeError} from '../errors.js'
import {fillSink, type ReadSink} from '../client/io.js'
import {diskError, readHeader} from './format.js'

export interface DiskReadRequest {
  path: string
  key: string
  size: number
  /** Object version from GetReplicaList; the file must hold this one. */
  version: number
  /** The object's checksum as the master knows it, if any. */
  checksum?: number
}

export interface DiskReadOptions {
  crc32c: (data: Uint8Array, seed?: number) => number
  sliceSize: number
  /** Slices read at once. @default 4 */
  parallel?: number
  /** Called before each slice (e.g. the lease check). */
  check?: () => void
}

/** Reads and verifies a disk replica into `sink`; resolves with the value's CRC32C (already verified). */
export async function readDiskReplica(req: DiskReadRequest, sink: ReadSink, options: DiskReadOptions): Promise<number> {
  const what = `disk replica of ${JSON.stringify(req.key.length > 80 ? `${req.key.slice(0, 80)}...` : req.key)} (${req.path})`
  let fh: FileHandle
  try {
    fh = await open(req.path, 'r')
  } catch (err) {
    throw diskError(err, what, 'FILE_READ_FAIL')
  }
  try {
    const h = await readHeader(fh, options.crc32c, what)
    if (h.key !== req.key) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file holds another key`)
    if (h.size !== req.size) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file holds ${h.size} bytes, the object ${req.size}`)
    if (h.version !== req.version) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file holds version ${h.version}, the object is version ${req.version}`)
    if (req.checksum !== undefined && req.checksum >>> 0 !== h.checksum) {
      throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file's checksum ${h.checksum.toString(16)} is not the object's ${(req.checksum >>> 0).toString(16)}`)
    }
    const st = await fh.stat()
    if (st.size !== h.headerLength + h.size) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file is ${st.size} bytes, expected ${h.headerLength + h.size}`)

    const crc = await fillSink(sink, req.size, {sliceSize: options.sliceSize, parallel: options.parallel ?? 4, crc32c: options.crc32c, check: options.check}, async (_i, offset, view) => {
      let done = 0
      while (done < view.length) {
        let bytesRead: number
        try {
          ;({bytesRead} = await fh.read(view, done, view.length - done, h.headerLength + offset + done))
        } catch (err) {
          throw diskError(err, what, 'FILE_READ_FAIL')
        }
        if (bytesRead === 0) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the file ended early`)
        done += bytesRead
      }
    })
    if (crc !== h.checksum) {
      throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the value does not match its checksum (${crc.toString(16)} != ${h.checksum.toString(16)})`)
    }
    return crc
  } finally {
    await fh.close().catch(() => {})
  }
}

/** Bytes per read(2) when reading straight into the caller's buffer. */
export const DISK_READ_SLICE = 16 * 1024 * 1024

/** The COMPLETE disk replicas of a GetReplicaList answer. */
export function diskReplicas(info: {replicas: ReadonlyArray<{type: string; status: string; disk?: {path: string; size: number}}>}): Array<{path: string; size: number}> {
  const out: Array<{path: string; size: number}> = []
  for (const r of info.replicas) if (r.type === 'disk' && r.status === 'COMPLETE' && r.disk !== undefined && r.disk.path !== '') out.push(r.disk)
  return out
}

/** A sink over a plain buffer: slices are read into it in place. */
export function directSink(dest: Uint8Array): ReadSink {
  return {
    restartable: true,
    target: (offset, length) => ({view: dest.subarray(offset, offset + length)}),
    commit: () => {},
    discard: () => {},
  }
}
