/**
 * Encodings of the metadata journal (a local file) and of the replication log (etcd values).
 *
 * Journal record: `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`, payload =
 * UTF-8 JSON `{"s": last seq, "m": [Mutation...]}`. A record that is cut short or whose CRC does
 * not match ends the journal (a torn tail from a crash: it was never acknowledged).
 *
 * Log entry (value of `mooncake/<cluster>/log/<seq>`): UTF-8 JSON `{"v":1,"seq":N,"term":REV,"m":[...]}`;
 * `term` is the create revision of the leader key of the master that wrote it (its fencing token).
 */
import {crc32} from 'node:zlib'

import {MooncakeError} from '../../errors.js'
import type {Mutation} from '../mutations.js'
import type {ImageSnapshot} from '../restore.js'

export const RECORD_HEADER_BYTES = 8
/** Upper bound of one record (refuse garbage lengths when reading). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024

export interface JournalRecord {
  /** Sequence number of the last mutation of the record (mutations are numbered from 1). */
  s: number
  m: Mutation[]
}

export function encodeRecord(record: JournalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8')
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length)
  out.writeUInt32LE(payload.length, 0)
  out.writeUInt32LE(crc32(payload) >>> 0, 4)
  payload.copy(out, RECORD_HEADER_BYTES)
  return out
}

export interface DecodedRecords {
  records: JournalRecord[]
  /** Bytes of valid records from the start; anything after it is a torn or corrupt tail. */
  validBytes: number
  /** Whether bytes after the valid records were ignored. */
  tornTail: boolean
}

/** Reads records from a journal file's bytes, stopping at the first incomplete or corrupt one. */
export function decodeRecords(buf: Buffer): DecodedRecords {
  const records: JournalRecord[] = []
  let pos = 0
  while (pos + RECORD_HEADER_BYTES <= buf.length) {
    const len = buf.readUInt32LE(pos)
    const crc = buf.readUInt32LE(pos + 4)
    if (len > MAX_RECORD_BYTES || pos + RECORD_HEADER_BYTES + len > buf.length) break
    const payload = buf.subarray(pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + len)
    if ((crc32(payload) >>> 0) !== crc) break
    let rec: JournalRecord
    try {
      rec = JSON.parse(payload.toString('utf8')) as JournalRecord
    } catch {
      break
    }
    if (rec === null || typeof rec !== 'object' || !Number.isSafeInteger(rec.s) || !Array.isArray(rec.m)) break
    records.push(rec)
    pos += RECORD_HEADER_BYTES + len
  }
  return {records, validBytes: pos, tornTail: pos !== buf.length}
}

export interface LogEntry {
  v: 1
  seq: number
  term: number
  m: Mutation[]
}

export function encodeEntry(entry: LogEntry): Buffer {
  return Buffer.from(JSON.stringify(entry), 'utf8')
}

export function decodeEntry(value: Buffer | string): LogEntry {
  const e = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as LogEntry
  if (e === null || typeof e !== 'object' || e.v !== 1 || !Number.isSafeInteger(e.seq) || !Array.isArray(e.m)) {
    throw new Error('not a mooncake replication log entry')
  }
  return e
}

/** Zero-padded sequence numbers keep etcd's byte order equal to numeric order. */
export function padSeq(seq: number): string {
  return String(seq).padStart(16, '0')
}

/** A snapshot split into chunks below etcd's request size limit (1.5 MiB by default). */
export function encodeSnapshotChunks(snapshot: ImageSnapshot, chunkBytes: number): Buffer[] {
  const whole = Buffer.from(JSON.stringify(snapshot), 'utf8')
  const chunks: Buffer[] = []
  for (let pos = 0; pos < whole.length; pos += chunkBytes) chunks.push(whole.subarray(pos, Math.min(whole.length, pos + chunkBytes)))
  if (chunks.length === 0) chunks.push(Buffer.alloc(0))
  return chunks
}

/** Objects serialised per turn of the event loop by the incremental encoders below. */
export const SNAPSHOT_SLICE_OBJECTS = 10_000

/**
 * The JSON of a snapshot as parts, a slice of objects at a time with a turn of the event loop
 * between slices: in one JSON.stringify a million objects stall the master for about a second.
 * The arrays of `snapshot` are taken by the caller at the snapshot's position and the image
 * replaces a record rather than change it, so the parts describe that point in time however
 * long they take. The bytes parse to what JSON.stringify(snapshot) would.
 */
export async function snapshotJsonParts(snapshot: ImageSnapshot, sliceObjects = SNAPSHOT_SLICE_OBJECTS): Promise<Buffer[]> {
  const parts: Buffer[] = []
  let sep = '{'
  // Field by field in the object's own order, so the bytes equal JSON.stringify's.
  for (const [field, value] of Object.entries(snapshot)) {
    if (value === undefined) continue
    if (field !== 'objects') {
      parts.push(Buffer.from(`${sep}${JSON.stringify(field)}:${JSON.stringify(value)}`))
      sep = ','
      continue
    }
    const objects = value as ImageSnapshot['objects']
    parts.push(Buffer.from(`${sep}"objects":[`))
    sep = ','
    for (let i = 0; i < objects.length; i += sliceObjects) {
      if (i > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        parts.push(Buffer.from(','))
      }
      const json = Buffer.from(JSON.stringify(objects.slice(i, i + sliceObjects)))
      parts.push(json.subarray(1, json.length - 1))
    }
    parts.push(Buffer.from(']'))
  }
  parts.push(Buffer.from(sep === '{' ? '{}' : '}'))
  return parts
}

/** encodeSnapshotChunks without the stall (see snapshotJsonParts): the same bytes. */
export async function encodeSnapshotChunksAsync(snapshot: ImageSnapshot, chunkBytes: number): Promise<Buffer[]> {
  const parts = await snapshotJsonParts(snapshot)
  const chunks: Buffer[] = []
  let pending: Buffer[] = []
  let pendingBytes = 0
  for (let part of parts) {
    while (part.length > 0) {
      const take = Math.min(part.length, chunkBytes - pendingBytes)
      pending.push(part.subarray(0, take))
      pendingBytes += take
      part = part.subarray(take)
      if (pendingBytes === chunkBytes) {
        chunks.push(Buffer.concat(pending, pendingBytes))
        pending = []
        pendingBytes = 0
      }
    }
  }
  if (pendingBytes > 0 || chunks.length === 0) chunks.push(Buffer.concat(pending, pendingBytes))
  return chunks
}

export function decodeSnapshotChunks(chunks: Buffer[]): ImageSnapshot {
  const s = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageSnapshot
  if (s === null || typeof s !== 'object' || s.format !== 1) throw new MooncakeError('INTERNAL_ERROR', 'not a mooncake metadata snapshot')
  return s
}

/** Pointer to the current snapshot (value of `mooncake/<cluster>/snapshot-meta`). */
export interface SnapshotMeta {
  v: 1
  /** Last log entry the snapshot includes. */
  seq: number
  /** Last mutation sequence number it includes. */
  mseq: number
  chunks: number
  bytes: number
  crc: number
  term: number
  at: number
}

export function snapshotCrc(chunks: Buffer[]): number {
  let c = 0
  for (const ch of chunks) c = crc32(ch, c)
  return c >>> 0
}
