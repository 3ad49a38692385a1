/**
 * Object metadata, kept compact (S15): one small class with numeric fields per object, no
 * per-object Map, closure or array for the common single-replica case. Times are stored relative to
 * the service's epoch (so they stay small integers for weeks) and replicas reference segments by a
 * small index.
 */

/** Memory-tier and disk-tier replica states, two bits each in `flags`. */
export const TIER_NONE = 0
export const TIER_PROCESSING = 1
export const TIER_COMPLETE = 2

export const F_MEM_MASK = 0b11
export const F_DISK_SHIFT = 2
export const F_DISK_MASK = 0b11 << F_DISK_SHIFT
/** A checksum was given at PutEnd. */
export const F_CHECKSUM = 1 << 4
/** The put asked for a soft pin (applied when the object becomes readable). */
export const F_WANT_PIN = 1 << 5
/** A read lease was granted at least once. */
export const F_LEASED = 1 << 6
/** In the soft-pinned eviction heap (else the plain one) while `hi >= 0`. */
export const F_IN_PINNED_HEAP = 1 << 7
/** Erased: every structure that still holds it must skip it. */
export const F_DEAD = 1 << 8
/** In the service's set of writes in progress. */
export const F_IN_PROCESSING = 1 << 9
/** The soft pin is active (counted in softPinnedKeys). */
export const F_PIN_ACTIVE = 1 << 10

export class Obj {
  key: string
  size: number
  version: number
  flags: number
  /** CRC32C as a signed 32-bit integer (F_CHECKSUM says whether set). */
  checksum: number
  /** Writer's client id while any replica is PROCESSING; null afterwards. */
  cid: string | null
  /** Writer's request id while in progress; a 32-bit hash of (clientId, requestId) afterwards. */
  req: string | number
  /**
   * 32-bit hash of the writer's client id, kept after the put completes (when `cid` is dropped) so a
   * PutEnd from another client on a finished object is still ILLEGAL_CLIENT; 0 = unknown writer
   * (restored objects), which any client may end idempotently.
   */
  wid: number
  /** PutStart (or UpsertStart) time, relative ms. */
  start: number
  /** Lease deadline, relative ms (never below the PutEnd time; F_LEASED says whether granted). */
  lease: number
  /** Soft-pin deadline, relative ms (meaningful with F_PIN_ACTIVE). */
  pin: number
  /** Replica id of the first memory replica. */
  rid: number
  /** Segment index of the first memory replica, -1 when none. */
  seg: number
  /** Allocator handle of the first memory replica. */
  h: number
  /** Further memory replicas as flat triples [segment index, handle, replica id]. */
  more: number[] | null
  /** Replica id of the disk replica. */
  did: number
  /** Position in an eviction heap, -1 when in none. */
  hi: number

  constructor(key: string, size: number, version: number, cid: string, req: string, start: number) {
    this.key = key
    this.size = size
    this.version = version
    this.flags = 0
    this.checksum = 0
    this.cid = cid
    this.req = req
    this.wid = writerHash(cid)
    this.start = start
    this.lease = start
    this.pin = 0
    this.rid = 0
    this.seg = -1
    this.h = -1
    this.more = null
    this.did = 0
    this.hi = -1
  }

  get memState(): number {
    return this.flags & F_MEM_MASK
  }

  set memState(s: number) {
    this.flags = (this.flags & ~F_MEM_MASK) | s
  }

  get diskState(): number {
    return (this.flags & F_DISK_MASK) >>> F_DISK_SHIFT
  }

  set diskState(s: number) {
    this.flags = (this.flags & ~F_DISK_MASK) | (s << F_DISK_SHIFT)
  }

  /** Number of memory replicas. */
  get memCount(): number {
    if (this.seg < 0) return 0
    return this.more === null ? 1 : 1 + this.more.length / 3
  }

  /** Whether any replica is being written. */
  get processing(): boolean {
    return this.memState === TIER_PROCESSING || this.diskState === TIER_PROCESSING
  }
}

/** FNV-1a over UTF-16 code units. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Compact writer identity of an object (never 0, which means unknown); '' is unknown. */
export function writerHash(clientId: string): number {
  return clientId === '' ? 0 : hashString(clientId, 0x27d4eb2f) | 0 || 1
}

/** Hash kept of a completed put's (clientId, requestId), for idempotent PutStart retries. */
export function requestHash(clientId: string, requestId: string): number {
  return hashString(requestId, hashString(clientId) ^ 0x9e3779b9) | 0
}

/**
 * Objects by key, sharded by key hash (S15): a Map per shard keeps every Map far below V8's size
 * limit and gives ListKeys a stable order (shard, then key).
 */
export class ObjectTable {
  readonly shards: Array<Map<string, Obj>>
  readonly shardCount: number
  private count = 0

  constructor(shardCount: number) {
    this.shardCount = shardCount
    this.shards = Array.from({length: shardCount}, () => new Map<string, Obj>())
  }

  get size(): number {
    return this.count
  }

  shardOf(key: string): number {
    return hashString(key) % this.shardCount
  }

  get(key: string): Obj | undefined {
    return this.shards[hashString(key) % this.shardCount].get(key)
  }

  /** Inserts (the key must be absent). */
  insert(obj: Obj): void {
    const shard = this.shards[hashString(obj.key) % this.shardCount]
    const before = shard.size
    shard.set(obj.key, obj)
    this.count += shard.size - before
  }

  delete(obj: Obj): void {
    const shard = this.shards[hashString(obj.key) % this.shardCount]
    if (shard.get(obj.key) === obj) {
      shard.delete(obj.key)
      this.count -= 1
    }
  }
}
