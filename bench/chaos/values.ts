/**
 * Values with known content: every value is derived from (key, version) by a seeded PRNG, and
 * carries its own identity in its first 12 bytes (FNV-1a of the key, version, length), so any
 * bytes a get returns can be checked: self-consistent (no corruption, no mix of two values) and
 * of the expected version.
 */
export const HEADER = 12

export function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function fill(out: Uint8Array, keyHash: number, version: number): void {
  // xorshift32 stream seeded by (key, version): fast enough for MiB values.
  let x = (keyHash ^ Math.imul(version + 1, 0x9e3779b1)) >>> 0 || 1
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  let i = HEADER
  for (; i + 4 <= out.length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    view.setUint32(i, x >>> 0, true)
  }
  for (; i < out.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
}

export function makeValue(key: string, version: number, size: number): Buffer {
  if (size < HEADER) size = HEADER
  const out = Buffer.allocUnsafe(size)
  const h = fnv1a(key)
  out.writeUInt32LE(h, 0)
  out.writeUInt32LE(version >>> 0, 4)
  out.writeUInt32LE(size >>> 0, 8)
  fill(out, h, version)
  return out
}

export type Verdict = {ok: true; version: number} | {ok: false; why: string; version?: number}

/** Checks bytes returned for `key`: the version they claim, and that they are exactly that value. */
export function verifyValue(key: string, bytes: Uint8Array): Verdict {
  if (bytes.length < HEADER) return {ok: false, why: `short value (${bytes.length} bytes)`}
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const h = b.readUInt32LE(0)
  const version = b.readUInt32LE(4)
  const size = b.readUInt32LE(8)
  if (h !== fnv1a(key)) return {ok: false, why: `header names another key (hash ${h.toString(16)})`, version}
  if (size !== bytes.length) return {ok: false, why: `length ${bytes.length}, header says ${size}`, version}
  const expected = makeValue(key, version, size)
  if (!expected.equals(b)) {
    let at = 0
    while (at < size && expected[at] === b[at]) at++
    return {ok: false, why: `content differs from version ${version} at byte ${at}`, version}
  }
  return {ok: true, version}
}
