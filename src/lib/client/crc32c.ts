/**
 * CRC32C helpers in JavaScript: a table-driven fallback (used when no native implementation is
 * available, e.g. by fake data paths in unit tests) and `crc32cCombine`, which joins the CRCs of
 * two adjacent byte ranges. Combining lets slices be checksummed as they land, in any order.
 */

const POLY = 0x82f63b78 // Castagnoli, reflected

const TABLE = (() => {
  const t = new Uint32Array(256 * 8)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    t[i] = c >>> 0
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s * 256 + i] = (t[(s - 1) * 256 + i] >>> 8) ^ t[t[(s - 1) * 256 + i] & 0xff]
  }
  return t
})()

/** CRC32C of `data`, continuing `seed` (so crc(b, crc(a)) === crc(a + b)); same convention as the native one. */
export function crc32cJs(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0
  let i = 0
  const n = data.length
  // Slicing-by-8 for the bulk, byte at a time for the tail.
  while (n - i >= 8) {
    const a = (crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0
    crc =
      TABLE[7 * 256 + (a & 0xff)] ^
      TABLE[6 * 256 + ((a >>> 8) & 0xff)] ^
      TABLE[5 * 256 + ((a >>> 16) & 0xff)] ^
      TABLE[4 * 256 + (a >>> 24)] ^
      TABLE[3 * 256 + data[i + 4]] ^
      TABLE[2 * 256 + data[i + 5]] ^
      TABLE[256 + data[i + 6]] ^
      TABLE[data[i + 7]]
    i += 8
  }
  while (i < n) crc = TABLE[(crc ^ data[i++]) & 0xff] ^ (crc >>> 8)
  return ~crc >>> 0
}

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0
  let i = 0
  while (vec) {
    if (vec & 1) sum ^= mat[i]
    vec >>>= 1
    i++
  }
  return sum >>> 0
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n])
}

/**
 * CRC of the concatenation A+B from crc(A), crc(B) and B's length (zlib's crc32_combine with the
 * Castagnoli polynomial). O(log lenB) small matrix products: cheap enough per 4 MiB slice.
 */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  if (lenB <= 0) return crcA >>> 0
  const even = new Uint32Array(32)
  const odd = new Uint32Array(32)
  odd[0] = POLY
  let row = 1
  for (let n = 1; n < 32; n++) {
    odd[n] = row
    row <<= 1
  }
  gf2Square(even, odd) // 2 zero bits
  gf2Square(odd, even) // 4 zero bits
  let crc1 = crcA >>> 0
  let len = lenB
  do {
    gf2Square(even, odd)
    if (len & 1) crc1 = gf2Times(even, crc1)
    len = Math.floor(len / 2)
    if (len === 0) break
    gf2Square(odd, even)
    if (len & 1) crc1 = gf2Times(odd, crc1)
    len = Math.floor(len / 2)
  } while (len !== 0)
  return (crc1 ^ crcB) >>> 0
}

/** Folds per-slice CRCs (in value order) into the CRC of the whole value. */
export function crc32cFold(parts: ReadonlyArray<{crc: number; length: number}>): number {
  let crc = 0
  let first = true
  for (const part of parts) {
    crc = first ? part.crc >>> 0 : crc32cCombine(crc, part.crc, part.length)
    first = false
  }
  return crc >>> 0
}
