/**
 * The disk tier's file layout and file format (docs/disk-tier.md).
 *
 * Layout: `ROOT/CLUSTER/aa/bb/<sha256(key) hex>-v<version>`, where `aa` and `bb` are the first two
 * bytes of the hash. Nothing derived from the key text reaches the path, so any key (4 KiB, `/`,
 * `..`, NUL, unicode) stays inside ROOT/CLUSTER. The object version in the name makes every
 * written value its own file: a late delete of an old version never touches a newer one.
 * Temporary files are `.<name>.<random>.tmp` in the same directory.
 *
 * File: a header, then the value. All integers little-endian.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0  | 8 | magic `MCKDISK\0` |
 * | 8  | 4 | format version (1) |
 * | 12 | 4 | header length H (bytes before the value: 48 + key length) |
 * | 16 | 8 | value size |
 * | 24 | 8 | object version |
 * | 32 | 4 | CRC32C of the value |
 * | 36 | 4 | key length in UTF-8 bytes |
 * | 40 | 4 | CRC32C of the header (bytes 0..H with this field zeroed) |
 * | 44 | 4 | reserved (0) |
 * | 48 | K | key (UTF-8) |
 * | H  | size | value |
 */
import {createHash} from 'node:crypto'
import type {FileHandle} from 'node:fs/promises'
import path from 'node:path'

import {MooncakeError} from '../errors.js'

export const DISK_MAGIC = Buffer.from('MCKDISK\0', 'latin1')
export const DISK_FORMAT_VERSION = 1
export const DISK_FIXED_HEADER = 48
/** Largest header: keys hold at most 4096 UTF-8 bytes. */
export const DISK_MAX_HEADER = DISK_FIXED_HEADER + 4096
const FILE_RE = /^([0-9a-f]{64})-v(\d{1,16})$/

export interface DiskHeader {
  key: string
  size: number
  version: number
  checksum: number
  headerLength: number
}

export function keyHash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

/** File name of (key, version) inside its two-level directory. */
export function diskFileName(key: string, version: number, hash = keyHash(key)): string {
  return `${hash}-v${version}`
}

/** The directory of a cluster's disk tier. */
export function clusterDir(root: string, clusterId: string): string {
  return path.join(root.replace(/\/+$/, '') || '/', sanitizeClusterId(clusterId))
}

/** Full path of (key, version). */
export function diskPath(root: string, clusterId: string, key: string, version: number): string {
  const h = keyHash(key)
  return path.join(clusterDir(root, clusterId), h.slice(0, 2), h.slice(2, 4), diskFileName(key, version, h))
}

/** A cluster id is an operator's name, but it must not lead outside the root either. */
function sanitizeClusterId(id: string): string {
  const s = id.replace(/[^A-Za-z0-9._-]/g, '_')
  return s === '.' || s === '..' || s === '' ? `_${s}` : s
}

/** Parses a data file name; undefined for anything else (temporary files, strays). */
export function parseDiskFileName(name: string): {hash: string; version: number} | undefined {
  const m = FILE_RE.exec(name)
  if (m === null) return undefined
  const version = Number(m[2])
  return Number.isSafeInteger(version) ? {hash: m[1], version} : undefined
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp')
}

/** Header bytes for a value; `crc32c` is the native (or JS) CRC32C. */
export function encodeHeader(h: Omit<DiskHeader, 'headerLength'>, crc32c: (data: Uint8Array, seed?: number) => number): Buffer {
  const key = Buffer.from(h.key, 'utf8')
  const len = DISK_FIXED_HEADER + key.length
  const b = Buffer.alloc(len)
  DISK_MAGIC.copy(b, 0)
  b.writeUInt32LE(DISK_FORMAT_VERSION, 8)
  b.writeUInt32LE(len, 12)
  b.writeBigUInt64LE(BigInt(h.size), 16)
  b.writeBigUInt64LE(BigInt(h.version), 24)
  b.writeUInt32LE(h.checksum >>> 0, 32)
  b.writeUInt32LE(key.length, 36)
  b.writeUInt32LE(0, 40)
  b.writeUInt32LE(0, 44)
  key.copy(b, DISK_FIXED_HEADER)
  b.writeUInt32LE(crc32c(b) >>> 0, 40)
  return b
}

/**
 * Decodes and verifies a header from the first bytes of a file (at least the whole header).
 * A damaged header is CHECKSUM_MISMATCH; a short buffer FILE_READ_FAIL.
 */
export function decodeHeader(buf: Uint8Array, crc32c: (data: Uint8Array, seed?: number) => number, what = 'disk replica'): DiskHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length < DISK_FIXED_HEADER) throw new MooncakeError('FILE_READ_FAIL', `${what}: the file is shorter than its header`)
  if (!b.subarray(0, 8).equals(DISK_MAGIC)) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: not a mooncake disk replica (bad magic)`)
  const format = b.readUInt32LE(8)
  if (format !== DISK_FORMAT_VERSION) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: unknown format version ${format}`)
  const headerLength = b.readUInt32LE(12)
  const keyLength = b.readUInt32LE(36)
  if (keyLength < 1 || keyLength > 4096 || headerLength !== DISK_FIXED_HEADER + keyLength) {
    throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: bad header length`)
  }
  if (b.length < headerLength) throw new MooncakeError('FILE_READ_FAIL', `${what}: the file is shorter than its header`)
  const copy = Buffer.from(b.subarray(0, headerLength))
  const stored = copy.readUInt32LE(40)
  copy.writeUInt32LE(0, 40)
  if (crc32c(copy) >>> 0 !== stored) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: the header is damaged (header checksum)`)
  const size = Number(b.readBigUInt64LE(16))
  const version = Number(b.readBigUInt64LE(24))
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(version)) throw new MooncakeError('CHECKSUM_MISMATCH', `${what}: bad size or version`)
  return {
    key: b.toString('utf8', DISK_FIXED_HEADER, headerLength),
    size,
    version,
    checksum: b.readUInt32LE(32),
    headerLength,
  }
}

/** Reads and decodes the header at the start of an open disk replica (a read error is FILE_READ_FAIL). */
export async function readHeader(fh: FileHandle, crc32c: (data: Uint8Array, seed?: number) => number, what: string): Promise<DiskHeader> {
  const head = Buffer.allocUnsafe(DISK_MAX_HEADER)
  let got = 0
  try {
    while (got < head.length) {
      const {bytesRead} = await fh.read(head, got, head.length - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
  } catch (err) {
    throw diskError(err, what, 'FILE_READ_FAIL')
  }
  return decodeHeader(head.subarray(0, got), crc32c, what)
}

/** Bytes a value of `size` under `key` takes on disk (header included). */
export function diskFileBytes(key: string, size: number): number {
  return DISK_FIXED_HEADER + Buffer.byteLength(key, 'utf8') + size
}

/** Maps a file system error to a MooncakeError. */
export function diskError(err: unknown, what: string, fallback: 'FILE_READ_FAIL' | 'FILE_WRITE_FAIL'): MooncakeError {
  if (err instanceof MooncakeError) return err
  const code = (err as NodeJS.ErrnoException)?.code
  const msg = err instanceof Error ? err.message : String(err)
  if (code === 'ENOENT') return new MooncakeError('FILE_NOT_FOUND', `${what}: ${msg}`, {cause: err})
  if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'ENOTDIR' || code === 'EROFS') {
    return new MooncakeError(fallback === 'FILE_READ_FAIL' ? 'FILE_OPEN_FAIL' : 'FILE_WRITE_FAIL', `${what}: ${msg}`, {cause: err})
  }
  return new MooncakeError(fallback, `${what}: ${msg}`, {cause: err})
}
