/**
 * Guards for what arrives on the wire before it reaches MasterService: protobuf garbage,
 * invalid UTF-8, numbers beyond 2^53, oversized strings and batches all become INVALID_PARAMS
 * instead of a crash, a hang, or a silently mangled key.
 */
import {isUtf8} from 'node:buffer'

import {MooncakeError} from '../errors.js'

/** Longest key, in UTF-8 bytes (SPEC S1). */
export const MAX_KEY_BYTES = 4096
/** Longest other string field (ids, names, endpoints, patterns), in UTF-8 bytes. */
export const MAX_FIELD_BYTES = 4096
/** Most items in one batch request: a bigger one would stall the master's event loop. */
export const MAX_BATCH_ITEMS = 100_000

export function invalid(message: string): MooncakeError {
  return new MooncakeError('INVALID_PARAMS', message)
}

/** A non-negative integer that survived the trip through a JavaScript number. */
export function u64(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${field} must be an integer from 0 to 2^53-1 (got ${String(value)})`)
  }
  return value
}

function utf8Length(s: string): number {
  // A UTF-16 unit never takes more than 3 UTF-8 bytes: skip the count for short strings.
  return s.length * 3 <= MAX_FIELD_BYTES ? s.length : Buffer.byteLength(s, 'utf8')
}

export function text(value: unknown, field: string, max = MAX_FIELD_BYTES): string {
  if (typeof value !== 'string') throw invalid(`${field} must be a string`)
  if (value.length > max && utf8Length(value) > max) {
    throw invalid(`${field} is longer than ${max} bytes`)
  }
  return value
}

export function key(value: unknown, field = 'key'): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(`${field} must be 1 to ${MAX_KEY_BYTES} bytes of UTF-8 (got none)`)
  if (value.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) {
    throw invalid(`${field} is longer than ${MAX_KEY_BYTES} bytes`)
  }
  return value
}

export function batch<T>(value: unknown, field: string): T[] {
  if (!Array.isArray(value)) throw invalid(`${field} must be a list`)
  if (value.length > MAX_BATCH_ITEMS) throw invalid(`${field} has ${value.length} items; at most ${MAX_BATCH_ITEMS} per call`)
  return value as T[]
}

export function required<T>(value: T | null | undefined, field: string): T {
  if (value === null || value === undefined) throw invalid(`${field} is required`)
  return value
}

/** Marks a request that could not be decoded; the handler answers INVALID_PARAMS for it. */
export const MALFORMED = Symbol('mooncake.malformed')
export interface Malformed {
  [MALFORMED]: string
}

export function malformedReason(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null ? (request as Partial<Malformed>)[MALFORMED] : undefined
}

class InvalidUtf8 extends Error {}

/**
 * protobufjs reads strings with `buf.utf8Slice`, which turns invalid UTF-8 into U+FFFD without a
 * word. Giving the request buffer a strict utf8Slice catches it during the one decoding pass; only
 * a string that contains U+FFFD pays for a second look at its bytes.
 */
const lenientUtf8Slice = (Buffer.prototype as unknown as {utf8Slice(start: number, end: number): string}).utf8Slice

function strictUtf8Slice(this: Buffer, start: number, end: number): string {
  const s = lenientUtf8Slice.call(this, start, end)
  if (s.includes('\uFFFD') && !isUtf8(this.subarray(start, end))) throw new InvalidUtf8()
  return s
}

/**
 * Wraps a grpc-js request deserializer: garbage and invalid UTF-8 yield a Malformed marker rather
 * than grpc-js's bare INTERNAL status (which carries no ErrorCode).
 */
export function strictDeserializer<T>(inner: (buf: Buffer) => T): (buf: Buffer) => T | Malformed {
  return (buf) => {
    const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
    Object.defineProperty(view, 'utf8Slice', {value: strictUtf8Slice})
    try {
      return inner(view)
    } catch (err) {
      if (err instanceof InvalidUtf8) return {[MALFORMED]: 'a string field is not valid UTF-8'}
      return {[MALFORMED]: `malformed request: ${err instanceof Error ? err.message : String(err)}`}
    }
  }
}
