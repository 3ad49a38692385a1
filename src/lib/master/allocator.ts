/**
 * Range allocator of one segment (S13): a bin-based "good fit" allocator in the style of TLSF and
 * sebbbi's OffsetAllocator, O(1) per alloc and free, with immediate coalescing of neighbours.
 *
 * - Sizes are bucketed into bins by a small float: 3 mantissa bits per power of two, so a bin's
 *   sizes differ by at most 12.5 %. Bins cover every size up to 2^53 (segments > 4 GiB are plain
 *   numbers, never 32-bit integers).
 * - A request takes the head of the first non-empty bin whose every block is large enough (two
 *   bitmap lookups); when none is, a bounded scan of the request's own bin finds a block that still
 *   fits (so a segment can be filled exactly).
 * - Blocks live in parallel typed arrays (no object per allocation): offset and size as float64,
 *   address-order neighbours and bin-list links as int32. A handle is a block index.
 */

/** Allocation granularity (bytes): every size is rounded up to it and offsets stay aligned. */
export const DEFAULT_ALIGNMENT = 8

const MANTISSA_BITS = 3
const MANTISSA_VALUE = 1 << MANTISSA_BITS // 8
const MANTISSA_MASK = MANTISSA_VALUE - 1
/** Exponent groups: enough for every safe integer size. */
const EXPONENTS = 54
const BIN_COUNT = EXPONENTS * MANTISSA_VALUE
const TWO_32 = 4_294_967_296
/** How many blocks of the request's own bin are examined when no larger bin has one. */
const OWN_BIN_SCAN = 64

const ST_UNUSED = 0
const ST_FREE = 1
const ST_USED = 2

function highestBit(n: number): number {
  if (n < TWO_32) return 31 - Math.clz32(n)
  return 32 + (31 - Math.clz32(Math.floor(n / TWO_32)))
}

function lowestBit(n: number): number {
  return 31 - Math.clz32(n & -n)
}

/** The bin holding blocks of `size` (rounding down: a block in bin b has size >= binSize(b)). */
export function binOf(size: number): number {
  if (size < MANTISSA_VALUE) return size
  const hb = highestBit(size)
  const shift = hb - MANTISSA_BITS
  const mantissa = Math.floor(size / 2 ** shift) & MANTISSA_MASK
  return ((shift + 1) << MANTISSA_BITS) | mantissa
}

/** Smallest size of bin b. */
export function binSize(bin: number): number {
  const exp = bin >>> MANTISSA_BITS
  const mantissa = bin & MANTISSA_MASK
  if (exp === 0) return mantissa
  return (mantissa | MANTISSA_VALUE) * 2 ** (exp - 1)
}

export interface AllocatorStats {
  capacity: number
  used: number
  free: number
  largestFree: number
  /** 1 - largestFree/free; 0 when nothing is free. */
  fragmentation: number
  allocations: number
  freeBlocks: number
}

export class RangeAllocator {
  readonly capacity: number
  readonly alignment: number
  /** Bytes handed out (sizes rounded up to the alignment). */
  used = 0
  /** Live allocations. */
  allocations = 0
  freeBlocks = 0

  private off: Float64Array
  private sz: Float64Array
  private prevP: Int32Array
  private nextP: Int32Array
  private prevB: Int32Array
  private nextB: Int32Array
  private state: Uint8Array
  private cap: number
  /** Next never-used slot. */
  private fresh = 0
  /** Recycled slots (a stack). */
  private spare: Int32Array
  private spareTop = 0

  private readonly binHead = new Int32Array(BIN_COUNT).fill(-1)
  /** One byte of "bin non-empty" bits per exponent group. */
  private readonly binBits = new Uint8Array(EXPONENTS)
  /** "Exponent group non-empty" bits, groups 0..31 and 32..63. */
  private topLo = 0
  private topHi = 0

  constructor(capacity: number, alignment = DEFAULT_ALIGNMENT, initialBlocks = 1024) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`bad allocator capacity ${capacity}`)
    if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
      throw new RangeError(`alignment must be a power of two, not ${alignment}`)
    }
    this.capacity = capacity
    this.alignment = alignment
    this.cap = Math.max(16, initialBlocks)
    this.off = new Float64Array(this.cap)
    this.sz = new Float64Array(this.cap)
    this.prevP = new Int32Array(this.cap)
    this.nextP = new Int32Array(this.cap)
    this.prevB = new Int32Array(this.cap)
    this.nextB = new Int32Array(this.cap)
    this.state = new Uint8Array(this.cap)
    this.spare = new Int32Array(64)
    // Usable space is the capacity rounded down to the alignment.
    const usable = capacity - (capacity % alignment)
    if (usable > 0) {
      const n = this.newNode(0, usable)
      this.prevP[n] = -1
      this.nextP[n] = -1
      this.insertFree(n)
    }
  }

  get free(): number {
    return this.capacity - this.capacity % this.alignment - this.used
  }

  /** Rounds a request up to the allocation granularity. */
  alignedSize(size: number): number {
    const a = this.alignment
    const r = size % a
    return r === 0 ? size : size + (a - r)
  }

  /** Allocates `size` bytes; returns a handle (>= 0) or -1 when no free range is large enough. */
  alloc(size: number): number {
    if (!(size > 0)) return -1
    const need = this.alignedSize(size)
    const block = this.findBlock(need)
    if (block < 0) return -1
    this.removeFree(block)
    if (this.sz[block] > need) this.insertFree(this.cutTail(block, need))
    this.state[block] = ST_USED
    this.used += need
    this.allocations += 1
    return block
  }

  /** Whether an allocation of `size` would succeed now (no side effect). */
  canAlloc(size: number): boolean {
    return size > 0 && this.findBlock(this.alignedSize(size)) >= 0
  }

  /** Offset of a live allocation. */
  offsetOf(handle: number): number {
    return this.off[handle]
  }

  /** Size (rounded) of a live allocation. */
  sizeOf(handle: number): number {
    return this.sz[handle]
  }

  isAllocated(handle: number): boolean {
    return handle >= 0 && handle < this.fresh && this.state[handle] === ST_USED
  }

  /**
   * Cuts a live allocation in two at `at` bytes from its start (a multiple of the alignment,
   * strictly inside it): `handle` keeps the head, the returned handle holds the tail. Both stay
   * allocated and are released on their own (a reservation hands out its pieces this way).
   */
  split(handle: number, at: number): number {
    if (!this.isAllocated(handle)) throw new RangeError(`allocator: handle ${handle} is not allocated`)
    if (!(at > 0 && at < this.sz[handle]) || at % this.alignment !== 0) {
      throw new RangeError(`allocator: cannot split ${this.sz[handle]} bytes at ${at}`)
    }
    const tail = this.cutTail(handle, at)
    this.state[tail] = ST_USED
    this.allocations += 1
    return tail
  }

  /** Frees an allocation and merges it with free neighbours. Throws on a handle that is not live. */
  release(handle: number): void {
    if (!this.isAllocated(handle)) throw new RangeError(`allocator: handle ${handle} is not allocated`)
    this.used -= this.sz[handle]
    this.allocations -= 1
    let node = handle
    const before = this.prevP[node]
    if (before >= 0 && this.state[before] === ST_FREE) {
      this.removeFree(before)
      this.sz[before] += this.sz[node]
      this.unlinkPhysical(node)
      this.dropNode(node)
      node = before
    }
    const after = this.nextP[node]
    if (after >= 0 && this.state[after] === ST_FREE) {
      this.removeFree(after)
      this.sz[node] += this.sz[after]
      this.unlinkPhysical(after)
      this.dropNode(after)
    }
    this.insertFree(node)
  }

  /** Size of the largest free range (scans only the highest non-empty bin). */
  largestFree(): number {
    let exp = -1
    if (this.topHi !== 0) exp = 32 + (31 - Math.clz32(this.topHi))
    else if (this.topLo !== 0) exp = 31 - Math.clz32(this.topLo)
    if (exp < 0) return 0
    const bin = (exp << MANTISSA_BITS) | (31 - Math.clz32(this.binBits[exp]))
    let best = 0
    for (let n = this.binHead[bin]; n >= 0; n = this.nextB[n]) if (this.sz[n] > best) best = this.sz[n]
    return best
  }

  fragmentation(): number {
    const free = this.free
    return free <= 0 ? 0 : 1 - this.largestFree() / free
  }

  stats(): AllocatorStats {
    const largestFree = this.largestFree()
    const free = this.free
    return {
      capacity: this.capacity,
      used: this.used,
      free,
      largestFree,
      fragmentation: free <= 0 ? 0 : 1 - largestFree / free,
      allocations: this.allocations,
      freeBlocks: this.freeBlocks,
    }
  }

  /** Free ranges in address order (for tests and diagnostics; O(blocks)). */
  freeRanges(): Array<[offset: number, size: number]> {
    const out: Array<[number, number]> = []
    let first = -1
    for (let n = 0; n < this.fresh; n++) {
      if (this.state[n] !== ST_UNUSED && this.prevP[n] < 0) {
        first = n
        break
      }
    }
    for (let n = first; n >= 0; n = this.nextP[n]) if (this.state[n] === ST_FREE) out.push([this.off[n], this.sz[n]])
    return out
  }

  // --- internals ---------------------------------------------------------------------------

  private findBlock(need: number): number {
    const down = binOf(need)
    const up = binSize(down) < need ? down + 1 : down
    const bin = this.firstNonEmptyFrom(up)
    if (bin >= 0) return this.binHead[bin]
    if (up !== down && this.binHead[down] >= 0) {
      let scanned = 0
      for (let n = this.binHead[down]; n >= 0 && scanned < OWN_BIN_SCAN; n = this.nextB[n], scanned++) {
        if (this.sz[n] >= need) return n
      }
    }
    return -1
  }

  private firstNonEmptyFrom(bin: number): number {
    let exp = bin >>> MANTISSA_BITS
    if (exp >= EXPONENTS) return -1
    const inGroup = this.binBits[exp] & ((0xff << (bin & MANTISSA_MASK)) & 0xff)
    if (inGroup !== 0) return (exp << MANTISSA_BITS) | lowestBit(inGroup)
    exp += 1
    let next = -1
    if (exp < 32) {
      const lo = exp === 0 ? this.topLo : this.topLo & ~((1 << exp) - 1) & 0xffffffff
      if (lo !== 0) next = lowestBit(lo)
      else if (this.topHi !== 0) next = 32 + lowestBit(this.topHi)
    } else if (exp < 64) {
      const shift = exp - 32
      const hi = shift === 0 ? this.topHi : this.topHi & ~((1 << shift) - 1)
      if (hi !== 0) next = 32 + lowestBit(hi)
    }
    if (next < 0) return -1
    return (next << MANTISSA_BITS) | lowestBit(this.binBits[next])
  }

  private insertFree(n: number): void {
    const bin = binOf(this.sz[n])
    const head = this.binHead[bin]
    this.prevB[n] = -1
    this.nextB[n] = head
    if (head >= 0) this.prevB[head] = n
    else {
      const exp = bin >>> MANTISSA_BITS
      this.binBits[exp] |= 1 << (bin & MANTISSA_MASK)
      if (exp < 32) this.topLo |= 1 << exp
      else this.topHi |= 1 << (exp - 32)
    }
    this.binHead[bin] = n
    this.state[n] = ST_FREE
    this.freeBlocks += 1
  }

  private removeFree(n: number): void {
    const p = this.prevB[n]
    const q = this.nextB[n]
    if (p >= 0) this.nextB[p] = q
    else {
      const bin = binOf(this.sz[n])
      this.binHead[bin] = q
      if (q < 0) {
        const exp = bin >>> MANTISSA_BITS
        this.binBits[exp] &= ~(1 << (bin & MANTISSA_MASK))
        if (this.binBits[exp] === 0) {
          if (exp < 32) this.topLo &= ~(1 << exp)
          else this.topHi &= ~(1 << (exp - 32))
        }
      }
    }
    if (q >= 0) this.prevB[q] = p
    this.state[n] = ST_USED
    this.freeBlocks -= 1
  }

  /** Cuts block `n` at `at` bytes: `n` keeps the head; returns the new node of the tail, linked after it. */
  private cutTail(n: number, at: number): number {
    const tail = this.newNode(this.off[n] + at, this.sz[n] - at)
    const after = this.nextP[n]
    this.prevP[tail] = n
    this.nextP[tail] = after
    if (after >= 0) this.prevP[after] = tail
    this.nextP[n] = tail
    this.sz[n] = at
    return tail
  }

  private unlinkPhysical(n: number): void {
    const p = this.prevP[n]
    const q = this.nextP[n]
    if (p >= 0) this.nextP[p] = q
    if (q >= 0) this.prevP[q] = p
  }

  private newNode(offset: number, size: number): number {
    let n: number
    if (this.spareTop > 0) n = this.spare[--this.spareTop]
    else {
      if (this.fresh === this.cap) this.grow()
      n = this.fresh++
    }
    this.off[n] = offset
    this.sz[n] = size
    return n
  }

  private dropNode(n: number): void {
    this.state[n] = ST_UNUSED
    if (this.spareTop === this.spare.length) {
      const bigger = new Int32Array(this.spare.length * 2)
      bigger.set(this.spare)
      this.spare = bigger
    }
    this.spare[this.spareTop++] = n
  }

  private grow(): void {
    const cap = this.cap * 2
    const f64 = (a: Float64Array): Float64Array => {
      const b = new Float64Array(cap)
      b.set(a)
      return b
    }
    const i32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(cap)
      b.set(a)
      return b
    }
    this.off = f64(this.off)
    this.sz = f64(this.sz)
    this.prevP = i32(this.prevP)
    this.nextP = i32(this.nextP)
    this.prevB = i32(this.prevB)
    this.nextB = i32(this.nextB)
    const st = new Uint8Array(cap)
    st.set(this.state)
    this.state = st
    this.cap = cap
  }
}
