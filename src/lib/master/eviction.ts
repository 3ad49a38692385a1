/**
 * Eviction bookkeeping (S8), maintained incrementally so an eviction round never scans the table:
 *
 * - `LeaseHeap`: an indexed binary min-heap of evictable objects ordered by lease deadline. A read
 *   only raises `obj.lease` (O(1)); the heap key is fixed lazily when the entry reaches the top
 *   (a lease never shrinks, so a stale key is always too small and the true minimum is found).
 *   Removal is O(log n) through the object's `hi` field.
 * - `PinQueue`: soft-pinned objects in pin-deadline order (a FIFO, as every pin lasts the same
 *   softPinTtl), so expired pins move to the plain heap in O(expired).
 */
import {performance} from 'node:perf_hooks'

import {Obj} from './objects.js'

/** Work allowed to one step of background work: heap operations and a wall-clock deadline. */
export interface Budget {
  ops: number
  /** performance.now() value after which the step stops. */
  until: number
}

export class LeaseHeap {
  private keys: Float64Array
  private objs: Obj[] = []
  private n = 0

  /** `track(obj, +1 | -1)` is told of every object entering and leaving the heap (per-segment accounting). */
  constructor(initial = 1024, private readonly track?: (obj: Obj, delta: 1 | -1) => void) {
    this.keys = new Float64Array(initial)
  }

  get size(): number {
    return this.n
  }

  push(obj: Obj): void {
    if (this.n === this.keys.length) {
      const k = new Float64Array(this.keys.length * 2)
      k.set(this.keys)
      this.keys = k
    }
    const i = this.n++
    this.keys[i] = obj.lease
    this.objs[i] = obj
    obj.hi = i
    this.up(i)
    this.track?.(obj, 1)
  }

  remove(obj: Obj): void {
    const i = obj.hi
    if (i < 0 || i >= this.n || this.objs[i] !== obj) return
    this.removeAt(i)
  }

  /**
   * Pops the entry with the oldest lease if that lease has expired (`lease <= now`), else null.
   * `budget.ops` is decremented for each heap operation (key fix-ups included); it is set to 0 when
   * the wall-clock deadline passes, so `budget.ops <= 0` after a null means "out of budget".
   */
  popExpired(now: number, budget: Budget): Obj | null {
    let fixes = 0
    while (this.n > 0) {
      const top = this.objs[0]
      if (top.lease > this.keys[0]) {
        this.keys[0] = top.lease
        this.down(0)
        budget.ops -= 1
        if (budget.ops <= 0) return null
        if ((++fixes & 31) === 0 && performance.now() > budget.until) {
          budget.ops = 0
          return null
        }
        continue
      }
      if (this.keys[0] > now) return null
      this.removeAt(0)
      budget.ops -= 1
      return top
    }
    return null
  }

  /** Drops every entry (for tests and a reset). */
  clear(): void {
    for (let i = 0; i < this.n; i++) {
      this.objs[i].hi = -1
      this.track?.(this.objs[i], -1)
    }
    this.objs = []
    this.n = 0
  }

  private removeAt(i: number): void {
    const obj = this.objs[i]
    obj.hi = -1
    this.track?.(obj, -1)
    const last = --this.n
    if (i !== last) {
      const moved = this.objs[last]
      this.objs[i] = moved
      this.keys[i] = this.keys[last]
      moved.hi = i
      this.objs[last] = undefined as unknown as Obj
      if (i > 0 && this.keys[i] < this.keys[(i - 1) >> 1]) this.up(i)
      else this.down(i)
    } else {
      this.objs[last] = undefined as unknown as Obj
    }
    if (this.n === 0) this.objs.length = 0
  }

  private up(i: number): void {
    const keys = this.keys
    const objs = this.objs
    const key = keys[i]
    const obj = objs[i]
    while (i > 0) {
      const p = (i - 1) >> 1
      if (keys[p] <= key) break
      keys[i] = keys[p]
      objs[i] = objs[p]
      objs[i].hi = i
      i = p
    }
    keys[i] = key
    objs[i] = obj
    obj.hi = i
  }

  private down(i: number): void {
    const keys = this.keys
    const objs = this.objs
    const n = this.n
    const key = keys[i]
    const obj = objs[i]
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && keys[c + 1] < keys[c]) c += 1
      if (keys[c] >= key) break
      keys[i] = keys[c]
      objs[i] = objs[c]
      objs[i].hi = i
      i = c
    }
    keys[i] = key
    objs[i] = obj
    obj.hi = i
  }
}

/** Soft-pinned objects in the order their pins expire (entries go stale when re-pinned or erased). */
export class PinQueue {
  private objs: Obj[] = []
  private deadlines: number[] = []
  private head = 0

  get length(): number {
    return this.objs.length - this.head
  }

  push(obj: Obj, deadline: number): void {
    this.objs.push(obj)
    this.deadlines.push(deadline)
  }

  /** Calls `expire` for each entry whose deadline is <= now, at most `max` entries; returns how many were taken. */
  drain(now: number, max: number, expire: (obj: Obj, deadline: number) => void): number {
    let taken = 0
    while (this.head < this.objs.length && taken < max && this.deadlines[this.head] <= now) {
      const obj = this.objs[this.head]
      const deadline = this.deadlines[this.head]
      this.objs[this.head] = undefined as unknown as Obj
      this.head += 1
      taken += 1
      expire(obj, deadline)
    }
    if (this.head > 1024 && this.head * 2 > this.objs.length) {
      this.objs = this.objs.slice(this.head)
      this.deadlines = this.deadlines.slice(this.head)
      this.head = 0
    }
    return taken
  }
}

/** Space of preempted (zombie) puts, freed at its release deadline: a small min-heap. */
export class DiscardHeap {
  private at: number[] = []
  private seg: number[] = []
  private handle: number[] = []

  get size(): number {
    return this.at.length
  }

  push(releaseAt: number, seg: number, handle: number): void {
    let i = this.at.length
    this.at.push(releaseAt)
    this.seg.push(seg)
    this.handle.push(handle)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.at[p] <= releaseAt) break
      this.swap(i, p)
      i = p
    }
  }

  /** Pops entries due at `now`, at most `max`; calls `release(seg, handle)` for each; returns how many. */
  drain(now: number, max: number, release: (seg: number, handle: number) => void): number {
    let n = 0
    while (this.at.length > 0 && n < max && this.at[0] <= now) {
      const seg = this.seg[0]
      const handle = this.handle[0]
      const last = this.at.length - 1
      this.swap(0, last)
      this.at.pop()
      this.seg.pop()
      this.handle.pop()
      let i = 0
      const len = this.at.length
      for (;;) {
        let c = 2 * i + 1
        if (c >= len) break
        if (c + 1 < len && this.at[c + 1] < this.at[c]) c += 1
        if (this.at[c] >= this.at[i]) break
        this.swap(i, c)
        i = c
      }
      release(seg, handle)
      n += 1
    }
    return n
  }

  private swap(a: number, b: number): void {
    const t = this.at[a]
    this.at[a] = this.at[b]
    this.at[b] = t
    const s = this.seg[a]
    this.seg[a] = this.seg[b]
    this.seg[b] = s
    const h = this.handle[a]
    this.handle[a] = this.handle[b]
    this.handle[b] = h
  }
}
