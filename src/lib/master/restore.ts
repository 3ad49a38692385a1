/**
 * Restoring the master's metadata after a restart (journal) or a failover (replication log),
 * issue 5. Three parts:
 *
 * - `MetadataImage`: the committed state as the journal/log describes it (objects with their
 *   COMPLETE replicas, mounted segments), kept by applying Mutations. A snapshot of it bounds the
 *   journal and the log; a standby master keeps one to take over without loss.
 * - `PendingRestore`: what a new master learned from an image but may not serve yet. A memory
 *   replica is UNREADABLE until its owner re-mounts the same segment (same id, name and size, as
 *   the original); its space is reserved in the fresh allocator before anything else can take it
 *   (`reserveRanges`), so no reader ever gets bytes from space handed out meanwhile.
 * - `reserveRanges`: puts a fresh RangeAllocator back into the state of a set of allocations.
 */
import type {SegmentDescriptor} from './api.js'
import {MooncakeError} from '../errors.js'
import type {RangeAllocator} from './allocator.js'
import type {CommittedReplica, Mutation} from './mutations.js'

export type CommittedObject = Extract<Mutation, {type: 'objectCommitted'}>

export interface MountedSegment {
  clientId: string
  segment: SegmentDescriptor
}

/** Serialised image (journal snapshot file, etcd snapshot). */
export interface ImageSnapshot {
  format: 1
  objects: CommittedObject[]
  segments: MountedSegment[]
}

/** One object to restore, with at most one memory replica (the one on the segment being restored). */
export interface RestoredItem {
  key: string
  size: number
  version: number
  checksum?: number
  softPinExpiresAt: number | null
  diskReplicaId?: number
  replica?: CommittedReplica
}

/** The committed metadata, as the journal or the replication log describes it. */
export class MetadataImage {
  readonly objects = new Map<string, CommittedObject>()
  readonly segments = new Map<string, MountedSegment>()
  /** Keys with a replica on each segment (by name). */
  private readonly segKeys = new Map<string, Set<string>>()

  get size(): number {
    return this.objects.size
  }

  clear(): void {
    this.objects.clear()
    this.segments.clear()
    this.segKeys.clear()
  }

  apply(m: Mutation): void {
    switch (m.type) {
      case 'objectCommitted': {
        this.unindex(m.key)
        const replicas = m.replicas.filter((r) => this.segments.has(r.segment))
        if (replicas.length === 0 && m.diskReplicaId === undefined) {
          this.objects.delete(m.key)
          return
        }
        const o: CommittedObject = replicas.length === m.replicas.length ? m : {...m, replicas}
        this.objects.set(m.key, o)
        for (const r of o.replicas) this.keysOf(r.segment).add(m.key)
        return
      }
      case 'objectRemoved':
        this.unindex(m.key)
        this.objects.delete(m.key)
        return
      case 'segmentMounted': {
        const old = this.segments.get(m.segment.name)
        if (old !== undefined && old.segment.id !== m.segment.id) this.dropSegment(m.segment.name)
        this.segments.set(m.segment.name, {clientId: m.clientId, segment: m.segment})
        return
      }
      case 'segmentUnmounted': {
        const cur = this.segments.get(m.name)
        if (cur === undefined || cur.segment.id !== m.id) return
        this.dropSegment(m.name)
        return
      }
    }
  }

  snapshot(): ImageSnapshot {
    return {format: 1, objects: [...this.objects.values()], segments: [...this.segments.values()]}
  }

  static fromSnapshot(s: ImageSnapshot): MetadataImage {
    const image = new MetadataImage()
    image.load(s)
    return image
  }

  load(s: ImageSnapshot): void {
    if (s === null || typeof s !== 'object' || s.format !== 1) {
      throw new MooncakeError('INTERNAL_ERROR', `unknown metadata snapshot format ${String((s as {format?: unknown})?.format)}`)
    }
    this.clear()
    for (const seg of s.segments) this.apply({type: 'segmentMounted', clientId: seg.clientId, segment: seg.segment})
    for (const o of s.objects) this.apply(o)
  }

  /** Highest version and replica id in the image (a new master continues above them). */
  maxIds(): {version: number; replicaId: number} {
    let version = 0
    let replicaId = 0
    for (const o of this.objects.values()) {
      if (o.version > version) version = o.version
      if (o.diskReplicaId !== undefined && o.diskReplicaId > replicaId) replicaId = o.diskReplicaId
      for (const r of o.replicas) if (r.id > replicaId) replicaId = r.id
    }
    return {version, replicaId}
  }

  private keysOf(segment: string): Set<string> {
    let s = this.segKeys.get(segment)
    if (s === undefined) {
      s = new Set()
      this.segKeys.set(segment, s)
    }
    return s
  }

  private unindex(key: string): void {
    const old = this.objects.get(key)
    if (old === undefined) return
    for (const r of old.replicas) {
      const s = this.segKeys.get(r.segment)
      if (s === undefined) continue
      s.delete(key)
      if (s.size === 0) this.segKeys.delete(r.segment)
    }
  }

  private dropSegment(name: string): void {
    this.segments.delete(name)
    const keys = this.segKeys.get(name)
    this.segKeys.delete(name)
    if (keys === undefined) return
    for (const key of keys) {
      const o = this.objects.get(key)
      if (o === undefined) continue
      const replicas = o.replicas.filter((r) => r.segment !== name)
      if (replicas.length === 0 && o.diskReplicaId === undefined) this.objects.delete(key)
      else this.objects.set(key, {...o, replicas})
    }
  }
}

/**
 * Puts a FRESH allocator (no allocation yet) into the state of the given allocations: returns a
 * handle per range (in input order), -1 for a range that cannot be reserved (overlap, outside the
 * segment). Works on the allocator's public API: with one free block (the tail) every alloc takes
 * it, so allocating gaps and ranges in offset order lands each range exactly where it was; the gap
 * fillers are released at the end.
 */
export function reserveRanges(allocator: RangeAllocator, ranges: ReadonlyArray<{offset: number; length: number}>): number[] {
  const out = new Array<number>(ranges.length).fill(-1)
  if (allocator.allocations !== 0) return out
  const order = ranges.map((_, i) => i).sort((a, b) => ranges[a].offset - ranges[b].offset)
  const fillers: number[] = []
  let cur = 0
  for (const i of order) {
    const {offset, length} = ranges[i]
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 1 || offset < cur || offset % allocator.alignment !== 0) continue
    if (offset > cur) {
      const f = allocator.alloc(offset - cur)
      if (f < 0) continue
      if (allocator.offsetOf(f) !== cur) {
        allocator.release(f)
        continue
      }
      fillers.push(f)
      cur = offset
    }
    const h = allocator.alloc(length)
    if (h < 0) continue
    if (allocator.offsetOf(h) !== offset) {
      allocator.release(h)
      continue
    }
    out[i] = h
    cur = offset + allocator.sizeOf(h)
  }
  for (const f of fillers) allocator.release(f)
  return out
}

interface PendingSegment {
  clientId: string
  segment: SegmentDescriptor
  items: RestoredItem[]
}

function itemOf(o: CommittedObject, replica?: CommittedReplica): RestoredItem {
  const item: RestoredItem = {key: o.key, size: o.size, version: o.version, softPinExpiresAt: o.softPinExpiresAt}
  if (o.checksum !== undefined) item.checksum = o.checksum
  if (o.diskReplicaId !== undefined) item.diskReplicaId = o.diskReplicaId
  if (replica !== undefined) item.replica = replica
  return item
}

/** Segments (and their replicas) a new master restored but whose owners have not re-mounted yet. */
export class PendingRestore {
  private readonly segs = new Map<string, PendingSegment>()
  /** Number of pending replicas per key. */
  private readonly refs = new Map<string, number>()
  /** Pending segments expire (their owner is dead) at this time (Unix ms). */
  expiresAt = 0

  /** Splits an image: pending segments with their replicas, and the objects with a disk replica (restorable at once). */
  static fromImage(image: MetadataImage, expiresAt: number): {pending: PendingRestore; diskOnly: RestoredItem[]} {
    const pending = new PendingRestore()
    pending.expiresAt = expiresAt
    for (const s of image.segments.values()) pending.segs.set(s.segment.name, {clientId: s.clientId, segment: s.segment, items: []})
    const diskOnly: RestoredItem[] = []
    for (const o of image.objects.values()) {
      if (o.diskReplicaId !== undefined) diskOnly.push(itemOf(o))
      for (const r of o.replicas) {
        const seg = pending.segs.get(r.segment)
        if (seg === undefined) continue
        seg.items.push(itemOf(o, r))
        pending.refs.set(o.key, (pending.refs.get(o.key) ?? 0) + 1)
      }
    }
    return {pending, diskOnly}
  }

  get size(): number {
    return this.segs.size
  }

  segment(name: string): Readonly<PendingSegment> | undefined {
    return this.segs.get(name)
  }

  names(): string[] {
    return [...this.segs.keys()]
  }

  /** Whether a key has a replica waiting for its owner. */
  hasKey(key: string): boolean {
    return this.refs.has(key)
  }

  keys(): IterableIterator<string> {
    return this.refs.keys()
  }

  /** Takes a pending segment out (its owner re-mounted it, or it expired), without the replicas of dropped keys. */
  take(name: string): PendingSegment | undefined {
    const s = this.segs.get(name)
    if (s === undefined) return undefined
    this.segs.delete(name)
    // A key still pending on this segment has a count here; a dropped one has none (keys never come back).
    s.items = s.items.filter((it) => this.refs.has(it.key))
    for (const it of s.items) this.unref(it.key)
    return s
  }

  /**
   * Forgets every pending replica of a key (it was removed or overwritten meanwhile). Constant
   * time (take() leaves its replicas out), so removing every pending key stays linear.
   */
  dropKey(key: string): boolean {
    return this.refs.delete(key)
  }

  private unref(key: string): void {
    const n = (this.refs.get(key) ?? 1) - 1
    if (n <= 0) this.refs.delete(key)
    else this.refs.set(key, n)
  }
}
