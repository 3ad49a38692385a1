/**
 * Protobuf wire primitives for hand-written (de)serializers of hot messages (see
 * src/lib/master/grpc-batch-wire.ts): one shared growable write buffer and one read cursor, as
 * plain module state so that V8 keeps every access monomorphic. Same encoding rules as the
 * compiled codec of fast-codec.ts (and byte-identical output for the same message).
 *
 * Not reentrant: a serializer runs to completion (synchronously) before the next one starts.
 */
import {isUtf8} from 'node:buffer'

// --- writing ---------------------------------------------------------------------------------

let wb = Buffer.allocUnsafe(65_536)
let wp = 0

/** Starts a message. */
export function begin(): void {
  wp = 0
}

/** The message written since begin(), in a Buffer of its own. */
export function finish(): Buffer {
  const out = Buffer.allocUnsafe(wp)
  wb.copy(out, 0, 0, wp)
  // One huge message must not pin a huge buffer forever.
  if (wb.length > 4_194_304) wb = Buffer.allocUnsafe(65_536)
  return out
}

/** Where the next byte goes (for copy). */
export function mark(): number {
  return wp
}

/** A copy of what was written since `from` (a mark()). */
export function copy(from: number): Buffer {
  return Buffer.from(wb.subarray(from, wp))
}

function need(n: number): void {
  if (wp + n <= wb.length) return
  const nb = Buffer.allocUnsafe(Math.max(wb.length * 2, wp + n))
  wb.copy(nb, 0, 0, wp)
  wb = nb
}

/** A uint32 varint (tags, lengths, uint32 and non-negative enum values). */
export function u32(v: number): void {
  need(5)
  while (v > 127) {
    wb[wp++] = (v & 127) | 128
    v >>>= 7
  }
  wb[wp++] = v
}

/** A uint64 varint of a non-negative safe integer. */
export function u64(v: number): void {
  if (v < 4_294_967_296) {
    u32(v >>> 0)
    return
  }
  let lo = v >>> 0
  let hi = Math.floor(v / 4_294_967_296) >>> 0
  need(10)
  while (hi !== 0) {
    wb[wp++] = (lo & 127) | 128
    lo = ((lo >>> 7) | (hi << 25)) >>> 0
    hi >>>= 7
  }
  while (lo > 127) {
    wb[wp++] = (lo & 127) | 128
    lo >>>= 7
  }
  wb[wp++] = lo
}

/** A sint32 (zigzag) varint. */
export function s32(v: number): void {
  u32(((v << 1) ^ (v >> 31)) >>> 0)
}

/** A length-prefixed UTF-8 string. */
export function str(s: string): void {
  const n = s.length
  if (n < 43) {
    // Short ASCII (keys, ids): one pass, length known up front.
    need(1 + 3 * n)
    let p = wp + 1
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 128) break
      wb[p++] = c
    }
    if (i === n) {
      wb[wp] = n
      wp = p
      return
    }
  }
  const len = Buffer.byteLength(s)
  u32(len)
  need(len)
  wp += (wb as unknown as {utf8Write(s: string, at: number, len: number): number}).utf8Write(s, wp, len)
}

/** Length-prefixed bytes. */
export function bytes(v: Uint8Array): void {
  u32(v.length)
  raw(v)
}

/** Bytes as they are (a pre-encoded part of a message). */
export function raw(v: Uint8Array): void {
  need(v.length)
  wb.set(v, wp)
  wp += v.length
}

/** Reserves one byte for the length of an embedded message; returns its position for ldEnd. */
export function ldStart(): number {
  need(1)
  return wp++
}

/** Writes the length of the embedded message begun at `st` (moving it if it needs more than one byte). */
export function ldEnd(st: number): void {
  let len = wp - st - 1
  if (len < 128) {
    wb[st] = len
    return
  }
  let k = 1
  for (let x = len; x > 127; x >>>= 7) k++
  need(k - 1)
  wb.copyWithin(st + k, st + 1, wp)
  wp += k - 1
  let q = st
  while (len > 127) {
    wb[q++] = (len & 127) | 128
    len >>>= 7
  }
  wb[q] = len
}

// --- reading ---------------------------------------------------------------------------------

/** A string field that is not valid UTF-8 (strict reading only). */
export class InvalidUtf8 extends Error {}

const EMPTY = Buffer.alloc(0)
let rb: Buffer = EMPTY
let rp = 0
let rl = 0
let strict = false

/** Starts reading `buf`; `strictUtf8` refuses invalid UTF-8 in strings (InvalidUtf8) instead of replacing it. */
export function read(buf: Buffer, strictUtf8: boolean): void {
  rb = buf
  rp = 0
  rl = buf.length
  strict = strictUtf8
}

/** Lets go of the buffer read. */
export function done(): void {
  rb = EMPTY
}

/** Position of the cursor. */
export function pos(): number {
  return rp
}

function oob(n = 1): RangeError {
  return new RangeError(`index out of range: ${rp} + ${n} > ${rl}`)
}

/** A varint read as uint32 (higher bits dropped, as protobufjs). */
export function r32(): number {
  if (rp >= rl) throw oob()
  let b = rb[rp++]!
  if (b < 128) return b
  let v = b & 127
  let s = 7
  for (;;) {
    if (rp >= rl) throw oob()
    b = rb[rp++]!
    if (s < 32) v |= (b & 127) << s
    if (b < 128) return v >>> 0
    s += 7
    if (s >= 70) throw new Error('invalid varint encoding')
  }
}

/** A varint read as a uint64 number (beyond 2^53 it loses precision: callers check with u64()). */
export function r64(): number {
  if (rp >= rl) throw oob()
  let b = rb[rp++]!
  if (b < 128) return b
  let lo = b & 127
  let hi = 0
  let s = 7
  for (;;) {
    if (rp >= rl) throw oob()
    b = rb[rp++]!
    if (s < 28) lo |= (b & 127) << s
    else if (s === 28) {
      lo |= (b & 15) << 28
      hi = (b & 127) >> 4
    } else if (s < 64) hi |= (b & 127) << (s - 32)
    if (b < 128) break
    s += 7
    if (s >= 70) throw new Error('invalid varint encoding')
  }
  return (lo >>> 0) + (hi >>> 0) * 4_294_967_296
}

/** Reads a length; returns where the length-delimited field ends. */
export function rlen(): number {
  const n = r32()
  if (rp + n > rl) throw oob(n)
  return rp + n
}

type Utf8Slicer = {utf8Slice(start: number, end: number): string}

export function rstr(): string {
  const e = rlen()
  const s = rp
  rp = e
  if (s === e) return ''
  const out = (rb as unknown as Utf8Slicer).utf8Slice(s, e)
  // Only a string with U+FFFD can come from invalid UTF-8: only those pay for a second look.
  if (strict && out.includes('\uFFFD') && !isUtf8(rb.subarray(s, e))) throw new InvalidUtf8()
  return out
}

// The last string read by rstrRepeated, with its bytes.
let repeatedBytes: Buffer = EMPTY
let repeatedStr = ''

/**
 * rstr() for a field that mostly repeats one value (a client id in every item of every batch):
 * the same bytes as last time give the same string, so no new copy is made (and kept alive).
 */
export function rstrRepeated(): string {
  const at = rp
  const n = r32()
  if (rp + n > rl) throw oob(n)
  if (n !== 0 && n === repeatedBytes.length && rb.compare(repeatedBytes, 0, n, rp, rp + n) === 0) {
    rp += n
    return repeatedStr
  }
  rp = at
  const out = rstr()
  // Only strictly read strings are remembered: those are known to be the bytes' exact text.
  if (strict && n !== 0 && n <= 64) {
    repeatedBytes = Buffer.from(rb.subarray(rp - n, rp))
    repeatedStr = out
  }
  return out
}

/** Bytes as a view into the buffer read (no copy), an empty Buffer when empty. */
export function rbytes(): Buffer {
  const e = rlen()
  const s = rp
  rp = e
  return s === e ? EMPTY : rb.subarray(s, e)
}

/** Whether the next bytes are `bytes` (then skipped). */
export function skipIfNext(bytes: Buffer): boolean {
  const n = bytes.length
  if (n === 0 || rp + n > rl || rb[rp] !== bytes[0] || rb.compare(bytes, 0, n, rp, rp + n) !== 0) return false
  rp += n
  return true
}

/** A copy of bytes `start` to `end` of the buffer read. */
export function copyRange(start: number, end: number): Buffer {
  return Buffer.from(rb.subarray(start, end))
}

/** Moves the cursor (to a position seen before). */
export function seek(at: number): void {
  rp = at
}

/** Skips a field of wire type `wt`. */
export function skip(wt: number): void {
  switch (wt) {
    case 0:
      r64()
      return
    case 1:
      if (rp + 8 > rl) throw oob(8)
      rp += 8
      return
    case 2:
      rp = rlen()
      return
    case 3:
      for (;;) {
        const t = r32()
        if ((t & 7) === 4) return
        skip(t & 7)
      }
    case 5:
      if (rp + 4 > rl) throw oob(4)
      rp += 4
      return
    default:
      throw new Error(`invalid wire type ${wt} at offset ${rp}`)
  }
}
