/**
 * CRC32C (Castagnoli) from the native engine: SSE4.2 where available. `crc32c(a + b)` equals
 * `crc32c(b, crc32c(a))`, so large values can be checksummed piece by piece.
 */
import {MooncakeError} from '../errors.js'
import {callNative, fromNative} from './native-call.js'
import {loadNative} from './native.js'
import type {Segment} from './segment.js'

function checkRange(what: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new MooncakeError('BUFFER_OVERFLOW', `crc32c: [${offset}, +${length}) is outside the ${what} of ${size} bytes`)
  }
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MooncakeError('INVALID_PARAMS', 'crc32c seed must be a uint32')
}

/** CRC32C of `data[offset, offset+length)`, continuing from `seed` (0 to start). Runs on the calling thread. */
export function crc32c(data: Uint8Array, seed = 0, offset = 0, length = data.length - offset): number {
  checkSeed(seed)
  checkRange('buffer', data.length, offset, length)
  return callNative(() => loadNative().crc32c(data, offset, length, seed))
}

/** CRC32C computed off the JS thread, of a buffer or of a segment region (no copy into JS). */
export async function crc32cAsync(target: Uint8Array | Segment, seed = 0, offset = 0, length?: number): Promise<number> {
  checkSeed(seed)
  const isBuffer = target instanceof Uint8Array
  const size = isBuffer ? target.length : target.size
  const len = length ?? size - offset
  checkRange(isBuffer ? 'buffer' : 'segment', size, offset, len)
  try {
    return await loadNative().crc32cAsync(isBuffer ? target : target.nativeHandle(), offset, len, seed)
  } catch (err) {
    throw fromNative(err)
  }
}

/** True when the CPU's CRC32 instruction is used. */
export function crc32cHardware(): boolean {
  return loadNative().crc32cHardware()
}

/** Streaming CRC32C: `update()` pieces in order, read `value` at any time. */
export class Crc32c {
  #value: number

  constructor(seed = 0) {
    checkSeed(seed)
    this.#value = seed
  }

  update(data: Uint8Array): this {
    this.#value = crc32c(data, this.#value)
    return this
  }

  get value(): number {
    return this.#value
  }
}
