/**
 * A small pool of pre-allocated, pre-faulted, registered staging memory. Values that do not live
 * in registered memory travel through it slice by slice, so moving a 4 GiB file needs only this
 * pool, and no transfer allocates (first-touch page faults cost more than the copy itself).
 */
import {MooncakeError} from '../errors.js'
import type {DataPath} from './data-path.js'

const ALIGN = 64

interface Region {
  buffer: Buffer
  /** Free ranges [start, end), sorted by start, coalesced. */
  free: Array<[number, number]>
}

export interface StagingLease {
  /** The leased bytes (a view inside a registered region). */
  view: Buffer
  region: number
  start: number
  end: number
}

interface Waiter {
  length: number
  resolve: (lease: StagingLease) => void
  reject: (err: unknown) => void
}

export class StagingPool {
  readonly regionSize: number
  private readonly regionCount: number
  private regions: Region[] = []
  private readonly waiters: Waiter[] = []
  private closed = false

  constructor(
    private readonly dataPath: DataPath,
    totalBytes: number,
    /** Largest single lease (a slice). */
    readonly maxLease: number,
  ) {
    // Regions of at least 4 slices keep fragmentation low; at least one region.
    this.regionSize = Math.max(maxLease, Math.min(totalBytes, Math.max(16 * 2 ** 20, maxLease * 4)))
    this.regionCount = Math.max(1, Math.round(totalBytes / this.regionSize))
  }

  /** Allocates, pre-faults and registers the regions (idempotent). */
  ensure(): void {
    if (this.regions.length > 0) return
    for (let i = 0; i < this.regionCount; i++) {
      const buffer = Buffer.allocUnsafeSlow(this.regionSize)
      buffer.fill(0) // first touch now, not on the hot path
      this.dataPath.registerMemory(buffer)
      this.regions.push({buffer, free: [[0, this.regionSize]]})
    }
  }

  get capacity(): number {
    return this.regionCount * this.regionSize
  }

  /** Leases `length` bytes (<= maxLease), waiting for space when the pool is full. */
  acquire(length: number): Promise<StagingLease> | StagingLease {
    return this.acquireNow(length) ?? new Promise<StagingLease>((resolve, reject) => this.waiters.push({length, resolve, reject}))
  }

  /** A lease of `length` bytes if one is free now (and nobody waits for one), else undefined. */
  acquireNow(length: number): StagingLease | undefined {
    if (this.closed) throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', 'the client is closed')
    if (length <= 0 || length > this.regionSize) {
      throw new MooncakeError('INVALID_PARAMS', `staging lease of ${length} bytes is outside 1..${this.regionSize}`)
    }
    this.ensure()
    return this.waiters.length === 0 ? this.tryAcquire(length) : undefined
  }

  release(lease: StagingLease): void {
    const region = this.regions[lease.region]
    if (!region) return
    insertFree(region.free, lease.start, lease.end)
    while (this.waiters.length > 0) {
      const head = this.waiters[0]
      const next = this.tryAcquire(head.length)
      if (!next) break
      this.waiters.shift()
      head.resolve(next)
    }
  }

  private tryAcquire(length: number): StagingLease | undefined {
    const need = Math.ceil(length / ALIGN) * ALIGN
    for (let r = 0; r < this.regions.length; r++) {
      const free = this.regions[r].free
      for (let i = 0; i < free.length; i++) {
        const [start, end] = free[i]
        if (end - start < need) continue
        if (end - start === need) free.splice(i, 1)
        else free[i] = [start + need, end]
        return {view: this.regions[r].buffer.subarray(start, start + length), region: r, start, end: start + need}
      }
    }
    return undefined
  }

  async close(): Promise<void> {
    this.closed = true
    for (const w of this.waiters.splice(0)) w.reject(new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', 'the client is closed'))
    const regions = this.regions
    this.regions = []
    for (const region of regions) {
      try {
        await this.dataPath.unregisterMemory(region.buffer)
      } catch {
        // the engine may already be gone
      }
    }
  }
}

function insertFree(free: Array<[number, number]>, start: number, end: number): void {
  // binary search for the insertion point
  let lo = 0
  let hi = free.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (free[mid][0] < start) lo = mid + 1
    else hi = mid
  }
  const prev = lo > 0 ? free[lo - 1] : undefined
  const next = lo < free.length ? free[lo] : undefined
  if (prev && prev[1] === start) {
    if (next && next[0] === end) {
      prev[1] = next[1]
      free.splice(lo, 1)
    } else prev[1] = end
  } else if (next && next[0] === end) {
    next[0] = start
  } else {
    free.splice(lo, 0, [start, end])
  }
}
