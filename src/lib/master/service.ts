/**
 * MasterService: the master's pure state machine (segments, allocators, objects, leases, soft
 * pins, eviction, zombie puts, client liveness). Every call is synchronous and reads time from an
 * injectable clock; background work happens in bounded steps of `tick()`, which the gRPC adapter
 * calls every 10-50 ms with the measured event-loop lag.
 *
 * Semantics follow the original Mooncake master (docs/reference: mooncake-store.md §1-6, §15)
 * except where SPEC marks a difference [ours]. Every state change goes through a few internal
 * methods (insertObject, eraseObject, commit, mountInternal, unmountNow) which report a Mutation to
 * `onMutation`, so a journal or replication log can follow the state.
 */
import {createHash, randomInt} from 'node:crypto'
import {performance} from 'node:perf_hooks'

import {MooncakeError, isMooncakeError, type ErrorCodeName} from '../errors.js'
import {compileSearchRegex} from '../regex-engine.js'
import {
  PROTOCOL_VERSION,
  systemClock,
  type Clock,
  type GetReplicaListResult,
  type GrantMinter,
  type ItemResult,
  type ListKeysPage,
  type ListKeysRequest,
  type MasterCalls,
  type MasterStats,
  type MemoryLocation,
  type MountSegmentRequest,
  type MountSegmentResult,
  type ObjectInfo,
  type DiskTask,
  type DiskTaskResult,
  type PingRequest,
  type PingResult,
  type PutCommitRequest,
  type PutEndRequest,
  type PutRevokeRequest,
  type PutStartRequest,
  type PutStartResult,
  type ReMountSegmentRequest,
  type ReleaseSpaceRequest,
  type RemoveByRegexRequest,
  type RemoveAllRequest,
  type RemoveManyResult,
  type RemoveRequest,
  type ReplicaDescriptor,
  type ReplicaInfo,
  type ReplicaTarget,
  type ReserveSpaceRequest,
  type ReserveSpaceResult,
  type SegmentDescriptor,
  type SegmentInfo,
  type SegmentUsage,
  type ServiceReadyResult,
  type UnmountSegmentRequest,
} from './api.js'
import {MasterDiskTier} from './disk-tier.js'
import type {RangeAllocator} from './allocator.js'
import {DiscardHeap, LeaseHeap, PinQueue, type Budget} from './eviction.js'
import type {CommittedReplica, Mutation} from './mutations.js'
import {
  F_CHECKSUM,
  F_DEAD,
  F_IN_PINNED_HEAP,
  F_IN_PROCESSING,
  F_LEASED,
  F_PIN_ACTIVE,
  F_WANT_PIN,
  Obj,
  ObjectTable,
  TIER_COMPLETE,
  TIER_NONE,
  TIER_PROCESSING,
  requestHash,
  writerHash,
} from './objects.js'
import {DEFAULT_MASTER_SERVICE_OPTIONS, type MasterServiceOptions} from './options.js'
import {placeReplicas, type Placement} from './placement.js'
import {testKey, type RegexScanChunk, type RegexScanCursor, type RegexScanMode, type RegexScanOptions} from './regex-scan.js'
import {reserveRanges, type RestoredItem} from './restore.js'
import {ClientRecord, Segment, type Tombstone} from './segments.js'

export type {Mutation, CommittedReplica} from './mutations.js'

export interface MasterServiceDeps {
  clock?: Clock
  mintGrant?: GrantMinter
  version?: string
  random?: () => number
  /** Monotonic ms for timings of the synchronous eviction (tests). @default performance.now */
  wallClock?: () => number
}

/** Counters and timings of the background machinery (for metrics and the benchmark). */
export interface MasterServiceMetrics {
  evictedObjects: number
  /** Bytes of memory replicas freed by eviction (object size × memory replicas evicted). */
  evictedBytes: number
  /** Unfinished puts taken over by a new PutStart or upsert (their space waits for putStartReleaseTimeout). */
  discardedPuts: number
  evictionRounds: number
  syncEvictions: number
  /** Eviction rounds (background or synchronous) that evicted at least one object. */
  successfulEvictions: number
  releasedZombieReplicas: number
  expiredClients: number
  /** Duration of the last and of the longest tick() (ms, wall time). */
  lastTickMs: number
  maxTickMs: number
  /** Longest synchronous eviction inside a PutStart (ms, wall time). */
  maxSyncEvictMs: number
  /** Objects still to be checked after an unmount (background sweep). */
  sweepPending: boolean
  evictionInProgress: boolean
}

export interface EvictionResult {
  evicted: number
  released: number
}

const MAX_KEY_BYTES = 4096
/** Unit of the allocation granularity (S13). */
const ALIGNMENT = 8
/** Default ListKeys page. */
const DEFAULT_LIST_LIMIT = 10_000
/** Default drain bound. */
const DEFAULT_DRAIN_TIMEOUT_MS = 30_000
/** Wall-time budget of the background work of one tick. */
const TICK_BUDGET_MS = 8
/** Heap operations per tick at most (a second bound, independent of the wall clock). */
const TICK_MAX_OPS = 40_000
/** Objects checked per tick by the sweep after an unmount. */
const SWEEP_PER_TICK = 40_000
/** Below this many objects an unmount sweeps synchronously. */
const SYNC_SWEEP_LIMIT = 50_000
/**
 * Bound of the synchronous eviction of a PutStart that found no space [ours]: objects evicted
 * (and 16 heap operations each). A work bound, not a wall-clock one: wall time also counts time
 * the master was descheduled or in GC, so on a loaded host a time budget cut passes short at
 * random, after they had already evicted objects, and the put failed (load finding L1).
 */
const SYNC_EVICT_MAX_OBJECTS = 2_048
/** Operator-unmount tombstones are kept this long (and at most this many). */
const TOMBSTONE_TTL_MS = 3_600_000
const MAX_TOMBSTONES = 10_000

type Reason = 'owner' | 'operator' | 'expired'

/** A reservation holds at most 1/RESERVATION_SHARE of the largest segment (unless more is needed). */
const RESERVATION_SHARE = 16

/** Open reservations at once (each holds an allocation until committed, released or expired). */
const MAX_RESERVATIONS = 65_536

/** A range held for one client (reserveSpace): its uncommitted pieces, allocations in offset order. */
interface Reservation {
  id: number
  clientId: string
  seg: Segment
  pieces: number[]
  /** Relative ms (like Obj times) at which tick() frees what is left. */
  releaseAt: number
}

function fail(code: ErrorCodeName, message: string): never {
  throw new MooncakeError(code, message)
}

function itemOf<T>(fn: () => T): ItemResult<T> {
  try {
    return {ok: true, value: fn()}
  } catch (err) {
    return itemFailure(err)
  }
}

/** itemOf for a batch of calls without a result, looping without a closure per item (hot batch calls). */
function voidItems<R>(reqs: readonly R[], run: (req: R) => void): ItemResult<void>[] {
  const out: ItemResult<void>[] = new Array(reqs.length)
  for (let i = 0; i < reqs.length; i++) {
    try {
      run(reqs[i]!)
      out[i] = {ok: true, value: undefined}
    } catch (err) {
      out[i] = itemFailure(err)
    }
  }
  return out
}

function itemFailure(err: unknown): ItemResult<never> {
  if (isMooncakeError(err)) return {ok: false, code: err.code, message: err.message}
  return {ok: false, code: 'INTERNAL_ERROR', message: err instanceof Error ? err.message : String(err)}
}

function isNonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0
}

function validateSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 1) fail('INVALID_PARAMS', `size must be a positive integer, not ${size}`)
}

function validateChecksum(checksum: number | undefined): void {
  if (checksum !== undefined && !(Number.isInteger(checksum) && checksum >= 0 && checksum <= 0xffffffff)) {
    fail('INVALID_PARAMS', `checksum must be an unsigned 32-bit integer, not ${checksum}`)
  }
}

function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) fail('INVALID_PARAMS', 'key must be a non-empty string')
  if (key.length > MAX_KEY_BYTES || (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES)) {
    fail('INVALID_PARAMS', `key is longer than ${MAX_KEY_BYTES} UTF-8 bytes`)
  }
}

function checkOptions(o: MasterServiceOptions): void {
  const ratio = (name: keyof MasterServiceOptions): void => {
    const v = o[name] as number
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail('INVALID_PARAMS', `${name} must be in [0, 1], not ${v}`)
  }
  ratio('evictionRatio')
  ratio('evictionHighWatermarkRatio')
  const duration = (name: keyof MasterServiceOptions, min: number): void => {
    const v = o[name] as number
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail('INVALID_PARAMS', `${name} must be a duration >= ${min} ms, not ${v}`)
  }
  duration('leaseTtlMs', 0)
  duration('softPinTtlMs', 0)
  duration('maxSoftPinTtlMs', 0)
  duration('clientTtlMs', 1)
  duration('putStartDiscardTimeoutMs', 0)
  duration('putStartReleaseTimeoutMs', 0)
  if (!(o.putStartReleaseTimeoutMs > o.putStartDiscardTimeoutMs)) {
    fail('INVALID_PARAMS', 'putStartReleaseTimeout must be longer than putStartDiscardTimeout')
  }
  if (o.softPinTtlMs > o.maxSoftPinTtlMs) fail('INVALID_PARAMS', 'softPinTtl must not exceed maxSoftPinTtl')
  if (!Number.isInteger(o.shardCount) || o.shardCount < 1 || o.shardCount > 1 << 20) {
    fail('INVALID_PARAMS', `shardCount must be an integer in [1, ${1 << 20}]`)
  }
  if (typeof o.clusterId !== 'string' || o.clusterId.length === 0) fail('INVALID_PARAMS', 'clusterId must be non-empty')
  if (o.rootFsDir !== undefined && o.diskQuota !== undefined && !(Number.isSafeInteger(o.diskQuota) && o.diskQuota > 0)) {
    fail('INVALID_PARAMS', `diskQuota must be a positive number of bytes, not ${o.diskQuota}`)
  }
}

function validateDescriptor(d: SegmentDescriptor | undefined): asserts d is SegmentDescriptor {
  if (d === null || typeof d !== 'object') fail('INVALID_PARAMS', 'segment descriptor missing')
  if (!isNonEmptyString(d.id)) fail('INVALID_PARAMS', 'segment id must be non-empty')
  if (!isNonEmptyString(d.name)) fail('INVALID_PARAMS', 'segment name must be non-empty')
  if (!Number.isSafeInteger(d.size) || d.size < 1) fail('INVALID_PARAMS', `segment size must be a positive integer, not ${d.size}`)
  if (!Array.isArray(d.endpoints) || d.endpoints.some((e) => typeof e !== 'string')) {
    fail('INVALID_PARAMS', 'segment endpoints must be a list of host:port')
  }
  if (typeof d.hostId !== 'string') fail('INVALID_PARAMS', 'segment hostId must be a string')
  if (d.grantKey !== undefined && typeof d.grantKey !== 'string') fail('INVALID_PARAMS', 'segment grantKey must be a hex string')
}

export class MasterService implements MasterCalls {
  readonly options: Readonly<MasterServiceOptions>
  /** The disk tier (issue 6, disk-tier.ts): present when rootFsDir is set. */
  readonly disk: MasterDiskTier | undefined
  /** Mutation hook (journal / replication log, issue 5). */
  onMutation?: (m: Mutation) => void
  /** Events an operator should see in the log: segments dropped because their owner went silent. */
  onNotice?: (message: string) => void
  /**
   * A tick arriving more than this long after the previous one means the master itself stalled:
   * the gap counts as event-loop lag (client deadlines are extended by it).
   */
  maxTickGapMs = 1_000

  private readonly clock: Clock
  private readonly mintGrant?: GrantMinter
  private readonly version: string
  private readonly random: () => number
  private readonly wallNow: () => number
  /** Object times are stored relative to this (absolute ms), so they stay small integers. */
  private readonly epoch: number
  private view = 0

  private readonly table: ObjectTable
  private readonly segs: Segment[] = []
  private readonly segByName = new Map<string, Segment>()
  private readonly segById = new Map<string, Segment>()
  /** Segments accepting allocations, in mount order (placement walks it). */
  private okSegs: Segment[] = []
  private readonly draining = new Set<Segment>()
  private readonly clients = new Map<string, ClientRecord>()
  private readonly tombstones = new Map<string, Tombstone>()
  private readonly tombstonesByClient = new Map<string, number>()

  private readonly plainHeap = new LeaseHeap(1024, (o, d) => this.trackHeapBytes(o, d, false))
  private readonly pinnedHeap = new LeaseHeap(1024, (o, d) => this.trackHeapBytes(o, d, true))
  private readonly pinQueue = new PinQueue()
  private pinnedCount = 0
  private readonly discarded = new DiscardHeap()
  /** Writes in progress, in start order (a Set keeps insertion order). */
  /**
   * Writes in progress by key, in PutStart order (zombie release walks it oldest first). Keyed by
   * key so that PutEnd finds its object here, in a small map that stays in cache, instead of in
   * the table of every object (see lookupWriting).
   */
  private readonly processing = new Map<string, Obj>()

  /** Open reservations by id, oldest first (all live equally long, so expiry walks from the front). */
  private readonly reservations = new Map<number, Reservation>()
  /** Starts at random so that ids from a previous master (restart, failover) are not mistaken for new ones. */
  private nextReservationId = randomInt(1, 2 ** 47)
  private nextVersion = 1
  private nextReplicaId = 1
  private needEviction = false
  private round: {base: number; target: number; lower: number; want1: number; evicted: number; phase: 1 | 2; want2: number} | null = null
  private sweepShard = -1
  private lastTickAt: number | undefined
  private readonly m: MasterServiceMetrics = {
    evictedObjects: 0,
    evictedBytes: 0,
    discardedPuts: 0,
    evictionRounds: 0,
    syncEvictions: 0,
    successfulEvictions: 0,
    releasedZombieReplicas: 0,
    expiredClients: 0,
    lastTickMs: 0,
    maxTickMs: 0,
    maxSyncEvictMs: 0,
    sweepPending: false,
    evictionInProgress: false,
  }

  constructor(options: Partial<MasterServiceOptions> = {}, deps: MasterServiceDeps = {}) {
    const merged: MasterServiceOptions = {...DEFAULT_MASTER_SERVICE_OPTIONS}
    for (const [k, v] of Object.entries(options)) if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v
    checkOptions(merged)
    this.options = Object.freeze(merged)
    this.clock = deps.clock ?? systemClock
    this.mintGrant = deps.mintGrant
    this.version = deps.version ?? '0.1.0'
    this.random = deps.random ?? Math.random
    this.wallNow = deps.wallClock ?? (() => performance.now())
    this.epoch = this.clock.now()
    this.table = new ObjectTable(merged.shardCount)
    this.disk = merged.rootFsDir === undefined ? undefined : new MasterDiskTier({rootFsDir: merged.rootFsDir, clusterId: merged.clusterId, quotaBytes: merged.diskQuota})
  }

  // --- HA hooks --------------------------------------------------------------------------------

  get viewVersion(): number {
    return this.view
  }

  setViewVersion(v: number): void {
    this.view = v
  }

  // --- restore (journal and HA, issue 5; see restore.ts) -------------------------------------

  /** Forgets every object, segment and client, as a new service would (a deposed leader, before it follows the log). */
  resetState(): void {
    const fresh = new MasterService(this.options, {clock: this.clock, mintGrant: this.mintGrant, version: this.version, random: this.random, wallClock: this.wallNow})
    const keep = new Set(['options', 'onMutation', 'onNotice', 'maxTickGapMs', 'clock', 'mintGrant', 'version', 'random', 'wallNow'])
    for (const k of Object.keys(fresh)) if (!keep.has(k)) (this as unknown as Record<string, unknown>)[k] = (fresh as unknown as Record<string, unknown>)[k]
  }

  /** Versions and replica ids handed out from now on are at least these (continue above a restored image). */
  raiseIdFloors(nextVersion: number, nextReplicaId: number): void {
    if (nextVersion > this.nextVersion) this.nextVersion = nextVersion
    if (nextReplicaId > this.nextReplicaId) this.nextReplicaId = nextReplicaId
  }

  /**
   * Restores COMPLETE objects: with `segmentName`, their memory replicas on that segment, which
   * must have just been (re)mounted by its owner (its allocator still empty: the ranges are
   * reserved exactly where they were); without, objects with a COMPLETE disk replica. A replica
   * whose key now holds another version is dropped (its range stays free). Returns how many were
   * restored; each restored object is reported as objectCommitted.
   */
  restoreObjects(segmentName: string | undefined, items: readonly RestoredItem[]): number {
    const now = this.clock.now()
    const rnow = now - this.epoch
    let seg: Segment | undefined
    let handles: number[] = []
    if (segmentName !== undefined) {
      seg = this.segByName.get(segmentName)
      if (seg === undefined || seg.allocator === null) fail('SEGMENT_NOT_FOUND', `segment ${JSON.stringify(segmentName)} is not mounted`)
      handles = reserveRanges(seg.allocator, items.map((it) => it.replica ?? {offset: -1, length: 0}))
    }
    let restored = 0
    items.forEach((it, i) => {
      this.raiseIdFloors(it.version + 1, Math.max(it.replica?.id ?? 0, it.diskReplicaId ?? 0) + 1)
      const h = seg === undefined ? -1 : handles[i]
      if (seg !== undefined && h < 0) return
      const release = () => {
        if (seg !== undefined) seg.allocator!.release(h)
      }
      let o = this.lookup(it.key)
      if (o !== undefined) {
        if (o.version !== it.version || o.memState === TIER_PROCESSING || seg === undefined) return release()
        let dup = false
        this.forEachMem(o, (idx) => (dup ||= idx === seg.idx))
        if (dup) return release()
        if (o.seg < 0) {
          o.seg = seg.idx
          o.h = h
          o.rid = it.replica!.id
        } else (o.more ??= []).push(seg.idx, h, it.replica!.id)
        o.memState = TIER_COMPLETE
      } else {
        if (seg === undefined && (it.diskReplicaId === undefined || this.options.rootFsDir === undefined)) return
        o = new Obj(it.key, it.size, it.version, '', '', rnow)
        o.cid = null
        o.req = 0
        if (it.checksum !== undefined) this.setChecksum(o, it.checksum)
        if (it.diskReplicaId !== undefined && this.options.rootFsDir !== undefined) {
          o.did = it.diskReplicaId
          o.diskState = TIER_COMPLETE
        }
        if (seg !== undefined) {
          o.seg = seg.idx
          o.h = h
          o.rid = it.replica!.id
          o.memState = TIER_COMPLETE
        }
        if (it.softPinExpiresAt !== null && it.softPinExpiresAt > now) {
          o.flags |= F_WANT_PIN | F_PIN_ACTIVE
          this.pinnedCount += 1
          o.pin = it.softPinExpiresAt - this.epoch
          this.pinQueue.push(o, o.pin)
        }
        this.insertObject(o)
      }
      this.readable(o)
      this.commit(o, now)
      restored += 1
    })
    return restored
  }

  // --- put lifecycle ---------------------------------------------------------------------------

  putStart(req: PutStartRequest): PutStartResult {
    return this.start(req, false)
  }

  upsertStart(req: PutStartRequest): PutStartResult {
    return this.start(req, true)
  }

  putEnd(req: PutEndRequest): void {
    this.end(req)
  }

  upsertEnd(req: PutEndRequest): void {
    this.end(req)
  }

  putRevoke(req: PutRevokeRequest): void {
    this.revoke(req)
  }

  upsertRevoke(req: PutRevokeRequest): void {
    this.revoke(req)
  }

  // The hot batch calls loop without a closure per item (itemOf, voidItems): the same results.
  batchPutStart(reqs: PutStartRequest[]): ItemResult<PutStartResult>[] {
    const out: ItemResult<PutStartResult>[] = new Array(reqs.length)
    for (let i = 0; i < reqs.length; i++) {
      try {
        out[i] = {ok: true, value: this.start(reqs[i]!, false)}
      } catch (err) {
        out[i] = itemFailure(err)
      }
    }
    return out
  }

  batchPutEnd(reqs: PutEndRequest[]): ItemResult<void>[] {
    return voidItems(reqs, (r) => this.end(r))
  }

  batchPutRevoke(reqs: PutRevokeRequest[]): ItemResult<void>[] {
    return reqs.map((r) => itemOf(() => this.revoke(r)))
  }

  // --- writes through a reservation [ours] ------------------------------------------------------

  /**
   * Holds one range of a segment for `clientId`, who places new objects in it itself and commits
   * them: one allocation and one grant for many small puts instead of a PutStart each.
   */
  reserveSpace(req: ReserveSpaceRequest): ReserveSpaceResult {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    if (!isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    validateSize(req.size)
    const least = req.minSize ?? req.size
    if (!Number.isSafeInteger(least) || least < 1 || least > req.size) fail('INVALID_PARAMS', `minSize must be from 1 to size, not ${least}`)
    if (this.reservations.size >= MAX_RESERVATIONS) fail('NO_AVAILABLE_HANDLE', `${MAX_RESERVATIONS} reservations are open; commit or release some first`)
    const now = this.clock.now()
    const sameNode = req.preferAllocInSameNode === true && isNonEmptyString(req.hostId) ? req.hostId : undefined
    // At most 1/16 of the largest segment (but what the caller needs): a reservation holds space
    // nobody else can use until it is committed or released.
    let largest = 0
    for (const seg of this.okSegs) largest = Math.max(largest, seg.capacity)
    const size = Math.max(least, Math.min(req.size, Math.floor(largest / RESERVATION_SHARE)))
    const [placed] = this.place(size, 1, [], sameNode, now)
    const seg = placed!.seg
    const id = this.nextReservationId++
    const expiresAt = now + this.options.putStartDiscardTimeoutMs
    const r: Reservation = {id, clientId: req.clientId, seg, pieces: [placed!.handle], releaseAt: now - this.epoch + this.options.putStartReleaseTimeoutMs}
    this.reservations.set(id, r)
    const a = seg.allocator!
    return {reservationId: id, memory: this.memLocation(seg, placed!.handle, a.sizeOf(placed!.handle), 'w', expiresAt), alignment: a.alignment, expiresAt}
  }

  /**
   * Makes objects written inside reservations readable, each as PutStart + PutEnd would have: a
   * key that exists fails alone (OBJECT_ALREADY_EXISTS) and its range stays reserved. A repeated
   * commit of the same object by its writer (a lost reply) succeeds again.
   */
  batchPutCommit(reqs: PutCommitRequest[]): ItemResult<void>[] {
    return voidItems(reqs, (r) => this.commitReserved(r))
  }

  /** Frees what is left of a reservation (what was committed stays). */
  releaseSpace(req: ReleaseSpaceRequest): void {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    const r = this.reservations.get(req.reservationId)
    if (r === undefined) fail('OBJECT_NOT_FOUND', `no reservation ${req.reservationId} (released, expired or never made)`)
    if (r.clientId !== req.clientId) fail('ILLEGAL_CLIENT', 'not the holder of this reservation')
    this.dropReservation(r)
  }

  private commitReserved(req: PutCommitRequest): void {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    if (!isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    validateKey(req.key)
    validateSize(req.size)
    if (!Number.isSafeInteger(req.offset) || req.offset < 0) fail('INVALID_PARAMS', `offset must be a non-negative integer, not ${req.offset}`)
    validateChecksum(req.checksum)
    const r = this.reservations.get(req.reservationId)
    const now = this.clock.now()
    let existing = this.lookup(req.key)
    if (existing !== undefined) {
      if (this.isCommitted(existing, r, req)) return
      if (this.hasComplete(existing)) fail('OBJECT_ALREADY_EXISTS', `key ${JSON.stringify(req.key)} exists`)
      if (existing.start + this.options.putStartDiscardTimeoutMs >= now - this.epoch) {
        fail('OBJECT_ALREADY_EXISTS', `key ${JSON.stringify(req.key)} is being written`)
      }
    }
    if (r === undefined) fail('OBJECT_NOT_FOUND', `no reservation ${req.reservationId} (released, expired or never made)`)
    if (r.clientId !== req.clientId) fail('ILLEGAL_CLIENT', 'not the holder of this reservation')
    const a = r.seg.allocator
    if (a === null || this.segs[r.seg.idx] !== r.seg) {
      this.dropReservation(r)
      fail('SEGMENT_NOT_FOUND', `the segment of reservation ${r.id} was unmounted`)
    }
    const handle = this.carve(r, a, req.offset, a.alignedSize(req.size))
    if (existing !== undefined) this.preempt(existing)
    const o = this.newObject({clientId: req.clientId, requestId: '', key: req.key, size: req.size}, [{seg: r.seg, handle}], false, now)
    // No request id: a repeated commit is recognised by its placement (isCommitted), not by one.
    o.req = 0
    this.completeMemory(o, req.checksum, now)
    // A disk replica still to be written keeps it in progress, as after a PutEnd.
    if (o.processing) this.trackProcessing(o)
    if (r.pieces.length === 0) this.reservations.delete(r.id)
  }

  /**
   * Whether `o` is what this commit would create: a repeated commit by the same writer. Also when
   * the reservation is unknown here, as on a new leader that learnt the first commit from the
   * replication log while its answer was lost: same writer, place, size and checksum.
   */
  private isCommitted(o: Obj, r: Reservation | undefined, req: PutCommitRequest): boolean {
    if (o.memState !== TIER_COMPLETE || o.seg < 0 || o.more !== null || o.size !== req.size) return false
    const seg = this.segs[o.seg]
    if (seg.allocator === null || seg.allocator.offsetOf(o.h) !== req.offset) return false
    if (r !== undefined && r.seg !== seg) return false
    const checksum = (o.flags & F_CHECKSUM) !== 0 ? o.checksum >>> 0 : undefined
    return checksum === req.checksum && this.mayEndFinished(o, req.clientId)
  }

  /** Takes [offset, offset + size) out of the reservation's pieces as an allocation of its own. */
  private carve(r: Reservation, a: RangeAllocator, offset: number, size: number): number {
    const pieces = r.pieces
    // Pieces are kept in offset order: the last one starting at or before `offset`.
    let lo = 0
    let hi = pieces.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (a.offsetOf(pieces[mid]!) <= offset) lo = mid
      else hi = mid - 1
    }
    const h = pieces[lo]
    const start = h === undefined ? 0 : a.offsetOf(h)
    if (h === undefined || start > offset || offset + size > start + a.sizeOf(h) || (offset - start) % a.alignment !== 0) {
      fail('INVALID_PARAMS', `[${offset}, ${offset + size}) is not a free, aligned range of reservation ${r.id}`)
    }
    const replace: number[] = []
    let piece = h
    if (offset > start) {
      replace.push(h)
      piece = a.split(h, offset - start)
    }
    if (size < a.sizeOf(piece)) replace.push(a.split(piece, size))
    pieces.splice(lo, 1, ...replace)
    return piece
  }

  private dropReservation(r: Reservation): void {
    this.reservations.delete(r.id)
    const a = r.seg.allocator
    if (a === null || this.segs[r.seg.idx] !== r.seg) return
    for (const h of r.pieces) if (a.isAllocated(h)) a.release(h)
    r.pieces = []
  }

  private start(req: PutStartRequest, upsert: boolean): PutStartResult {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    if (!isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    if (typeof req.requestId !== 'string') fail('INVALID_PARAMS', 'requestId must be a string')
    validateKey(req.key)
    validateSize(req.size)
    const cfg = req.config ?? {}
    const replicaNum = cfg.replicaNum ?? 1
    if (!Number.isSafeInteger(replicaNum) || replicaNum < 1) fail('INVALID_PARAMS', `replicaNum must be >= 1, not ${replicaNum}`)
    let preferred: readonly string[] = cfg.preferredSegments ?? []
    if (!Array.isArray(preferred)) fail('INVALID_PARAMS', 'preferredSegments must be a list')
    if (typeof cfg.preferredSegment === 'string' && cfg.preferredSegment.length > 0) preferred = [cfg.preferredSegment]
    const sameNode = cfg.preferAllocInSameNode === true && isNonEmptyString(req.hostId) ? req.hostId : undefined
    const now = this.clock.now()
    const rnow = now - this.epoch

    let existing = this.lookup(req.key)
    if (existing !== undefined) {
      if (this.isSameRequest(existing, req.clientId, req.requestId)) return this.putResult(existing, replicaNum, now)
      if (!upsert) {
        if (this.hasComplete(existing)) fail('OBJECT_ALREADY_EXISTS', `key ${JSON.stringify(req.key)} exists`)
        if (existing.start + this.options.putStartDiscardTimeoutMs >= rnow) {
          fail('OBJECT_ALREADY_EXISTS', `key ${JSON.stringify(req.key)} is being written`)
        }
        this.preempt(existing)
        existing = undefined
      } else if (existing.memState === TIER_PROCESSING || !this.hasComplete(existing)) {
        // An in-progress put or upsert is preempted at once (original §2 Upsert).
        this.preempt(existing)
        existing = undefined
      }
    }

    if (existing !== undefined) {
      // Upsert of a readable object: its committed value stops being readable.
      const o = existing
      if (o.size === req.size && o.memState === TIER_COMPLETE && o.memCount > 0) {
        if (this.onMutation !== undefined) this.onMutation({type: 'objectRemoved', key: o.key})
        this.unreadable(o)
        this.dropDisk(o)
        o.memState = TIER_PROCESSING
        if (this.options.rootFsDir !== undefined) {
          if (o.diskState === TIER_NONE) o.did = this.nextReplicaId++
          o.diskState = TIER_PROCESSING
        } else o.diskState = TIER_NONE
      } else {
        const placed = this.place(req.size, replicaNum, preferred, sameNode, now)
        if ((o.flags & F_DEAD) !== 0) {
          // The synchronous eviction of place() took the old value itself: a plain new put.
          return this.create(req, placed, cfg.withSoftPin === true, replicaNum, now)
        }
        if (this.onMutation !== undefined) this.onMutation({type: 'objectRemoved', key: o.key})
        this.unreadable(o)
        this.dropDisk(o)
        this.freeMemory(o)
        o.size = req.size
        this.attach(o, placed)
        o.memState = TIER_PROCESSING
        if (this.options.rootFsDir !== undefined) {
          o.did = this.nextReplicaId++
          o.diskState = TIER_PROCESSING
        } else o.diskState = TIER_NONE
      }
      o.version = this.nextVersion++
      o.flags &= ~(F_CHECKSUM | F_WANT_PIN)
      if (cfg.withSoftPin === true) o.flags |= F_WANT_PIN
      o.cid = req.clientId
      o.wid = writerHash(req.clientId)
      o.req = req.requestId
      o.start = rnow
      this.trackProcessing(o)
      return this.putResult(o, replicaNum, now)
    }

    const placed = this.place(req.size, replicaNum, preferred, sameNode, now)
    return this.create(req, placed, cfg.withSoftPin === true, replicaNum, now)
  }

  private create(req: PutStartRequest, placed: Placement[], softPin: boolean, replicaNum: number, now: number): PutStartResult {
    const o = this.newObject(req, placed, softPin, now)
    this.trackProcessing(o)
    return this.putResult(o, replicaNum, now)
  }

  /** A new object in the table, its replicas placed and being written (PROCESSING). */
  private newObject(req: PutStartRequest, placed: Placement[], softPin: boolean, now: number): Obj {
    const o = new Obj(req.key, req.size, this.nextVersion++, req.clientId, req.requestId, now - this.epoch)
    this.attach(o, placed)
    o.memState = TIER_PROCESSING
    if (this.options.rootFsDir !== undefined) {
      o.did = this.nextReplicaId++
      o.diskState = TIER_PROCESSING
    }
    if (softPin) o.flags |= F_WANT_PIN
    this.insertObject(o)
    return o
  }

  private isSameRequest(o: Obj, clientId: string, requestId: string): boolean {
    if (typeof o.req === 'string') return o.cid === clientId && o.req === requestId
    return o.req === requestHash(clientId, requestId)
  }

  /** Allocates replicas; on no space at all, evicts synchronously and retries once [ours]. */
  private place(size: number, replicaNum: number, preferred: readonly string[], sameNode: string | undefined, now: number): Placement[] {
    const req = {size, replicaNum, preferred, sameNodeHostId: sameNode}
    let placed = placeReplicas(this.okSegs, this.segByName, req, this.random)
    if (placed.length === 0 && this.okSegs.length > 0) {
      this.expirePins(now - this.epoch, 4096)
      // Evict only when it can help: a put no segment could hold even after evicting everything
      // evictable fails at once and costs no other object its place.
      if (!this.couldFitAfterEviction(size)) {
        fail('NO_AVAILABLE_HANDLE', `no segment can hold ${size} bytes, even after evicting every evictable object`)
      }
      this.needEviction = this.options.evictionRatio > 0
      this.evictForSpace(size, now)
      placed = placeReplicas(this.okSegs, this.segByName, req, this.random)
    }
    if (placed.length === 0) fail('NO_AVAILABLE_HANDLE', `no segment has ${size} free bytes in one range`)
    return placed
  }

  /** Whether some OK segment's free bytes plus its objects in the eviction heaps could hold `size`. */
  private couldFitAfterEviction(size: number): boolean {
    const pinned = this.options.allowEvictSoftPinnedObjects
    for (const seg of this.okSegs) {
      const a = seg.allocator
      if (a === null || seg.status !== 'OK') continue
      const need = a.alignedSize(size)
      if (need > seg.capacity) continue
      if (a.free + seg.plainHeapBytes + (pinned ? seg.pinnedHeapBytes : 0) >= need) return true
    }
    return false
  }

  /** Keeps Segment.plainHeapBytes / pinnedHeapBytes in step with the eviction heaps. */
  private trackHeapBytes(o: Obj, delta: 1 | -1, pinned: boolean): void {
    // Runs on every heap push and removal: no closure (forEachMem) for the common single replica.
    if (o.seg < 0) return
    this.trackHeapBytesOn(o.seg, o.h, delta, pinned)
    const more = o.more
    if (more !== null) for (let i = 0; i < more.length; i += 3) this.trackHeapBytesOn(more[i], more[i + 1], delta, pinned)
  }

  private trackHeapBytesOn(idx: number, h: number, delta: 1 | -1, pinned: boolean): void {
    const seg = this.segs[idx]
    if (seg === undefined || seg.allocator === null) return
    const bytes = delta * seg.allocator.sizeOf(h)
    if (pinned) seg.pinnedHeapBytes += bytes
    else seg.plainHeapBytes += bytes
  }

  private attach(o: Obj, placed: Placement[]): void {
    o.seg = placed[0].seg.idx
    o.h = placed[0].handle
    o.rid = this.nextReplicaId++
    if (placed.length > 1) {
      const more: number[] = []
      for (let i = 1; i < placed.length; i++) more.push(placed[i].seg.idx, placed[i].handle, this.nextReplicaId++)
      o.more = more
    } else o.more = null
  }

  /** Takes over an unfinished write: its PROCESSING space is freed after the release timeout. */
  private preempt(o: Obj): void {
    if (o.memState === TIER_PROCESSING) {
      this.m.discardedPuts += 1
      const releaseAt = o.start + this.options.putStartReleaseTimeoutMs
      this.forEachMem(o, (seg, h) => {
        if (this.segs[seg].allocator !== null) this.discarded.push(releaseAt, seg, h)
      })
      o.seg = -1
      o.more = null
      o.memState = TIER_NONE
    }
    this.eraseObject(o)
  }

  private end(req: PutEndRequest): void {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    if (typeof req.key !== 'string') fail('INVALID_PARAMS', 'key must be a string')
    validateChecksum(req.checksum)
    const target = this.target(req.target)
    const o = this.lookupWriting(req.key)
    if (o === undefined) fail('OBJECT_NOT_FOUND', `no put of ${JSON.stringify(req.key)} in progress`)
    const now = this.clock.now()
    if (target === 'disk') {
      if (o.diskState === TIER_COMPLETE) return
      if (o.diskState !== TIER_PROCESSING) fail('INVALID_WRITE', `key ${JSON.stringify(req.key)} has no disk replica being written`)
      if (o.cid !== req.clientId && !this.ownsMemReplica(o, req.clientId)) fail('ILLEGAL_CLIENT', 'not the writer of this object')
      o.diskState = TIER_COMPLETE
      this.setChecksum(o, req.checksum)
      this.commit(o, now)
      this.afterWrite(o)
      return
    }
    if (o.memState === TIER_COMPLETE) {
      // Idempotent for the writer (a retried PutEnd), ILLEGAL_CLIENT for anyone else, as the original.
      if (!this.mayEndFinished(o, req.clientId)) fail('ILLEGAL_CLIENT', 'not the writer of this object')
      return
    }
    if (o.memState !== TIER_PROCESSING) fail('INVALID_WRITE', `key ${JSON.stringify(req.key)} has no memory replica being written`)
    if (o.cid !== req.clientId) fail('ILLEGAL_CLIENT', 'not the writer of this object')
    this.completeMemory(o, req.checksum, now)
  }

  /** The memory replicas of `o` are written: readable from now on (and queued for disk if it has a disk tier). */
  private completeMemory(o: Obj, checksum: number | undefined, now: number): void {
    o.memState = TIER_COMPLETE
    this.setChecksum(o, checksum)
    const rnow = now - this.epoch
    if (o.lease < rnow) o.lease = rnow
    if ((o.flags & F_WANT_PIN) !== 0 && this.options.softPinTtlMs > 0) {
      if ((o.flags & F_PIN_ACTIVE) === 0) {
        o.flags |= F_PIN_ACTIVE
        this.pinnedCount += 1
      }
      o.pin = rnow + this.options.softPinTtlMs
      this.pinQueue.push(o, o.pin)
    }
    if (this.disk !== undefined && o.diskState === TIER_PROCESSING) this.queueDiskWrite(o)
    this.readable(o)
    this.commit(o, now)
    this.afterWrite(o)
  }

  /** Whether `clientId` wrote this object (for a repeated PutEnd once a replica is complete). */
  private mayEndFinished(o: Obj, clientId: string): boolean {
    if (o.cid !== null) return o.cid === clientId
    return o.wid === 0 || o.wid === writerHash(clientId)
  }

  private revoke(req: PutRevokeRequest): void {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request missing')
    if (typeof req.key !== 'string') fail('INVALID_PARAMS', 'key must be a string')
    const target = this.target(req.target)
    const o = this.lookupWriting(req.key)
    if (o === undefined) fail('OBJECT_NOT_FOUND', `no put of ${JSON.stringify(req.key)} in progress`)
    if (o.cid === null) fail('INVALID_WRITE', `key ${JSON.stringify(req.key)} is not being written`)
    if (target === 'disk') {
      if (o.cid !== req.clientId && !this.ownsMemReplica(o, req.clientId)) fail('ILLEGAL_CLIENT', 'not the writer of this object')
      if (o.diskState !== TIER_PROCESSING) fail('INVALID_WRITE', `key ${JSON.stringify(req.key)} has no disk replica being written`)
      this.dropDisk(o)
      o.diskState = TIER_NONE
    } else {
      if (o.cid !== req.clientId) fail('ILLEGAL_CLIENT', 'not the writer of this object')
      if (o.memState !== TIER_PROCESSING) fail('INVALID_WRITE', `key ${JSON.stringify(req.key)} has no memory replica being written`)
      this.freeMemory(o)
    }
    if (o.memCount === 0 && o.diskState !== TIER_COMPLETE) this.eraseObject(o)
    else this.afterWrite(o)
  }

  private target(t: ReplicaTarget | undefined): ReplicaTarget {
    if (t === undefined || t === 'all' || t === 'memory' || t === 'disk') return t ?? 'all'
    fail('INVALID_PARAMS', `bad replica target ${String(t)}`)
  }

  private setChecksum(o: Obj, checksum: number | undefined): void {
    if (checksum === undefined) return
    o.checksum = checksum | 0
    o.flags |= F_CHECKSUM
  }

  /** After a write step: a put with nothing left in progress forgets its writer (keeps a hash). */
  private afterWrite(o: Obj): void {
    if (o.processing) return
    this.readable(o)
    if (o.cid !== null && typeof o.req === 'string') o.req = requestHash(o.cid, o.req)
    o.cid = null
    if ((o.flags & F_IN_PROCESSING) !== 0) {
      this.processing.delete(o.key)
      o.flags &= ~F_IN_PROCESSING
    }
  }

  private trackProcessing(o: Obj): void {
    if ((o.flags & F_IN_PROCESSING) !== 0) this.processing.delete(o.key)
    this.processing.set(o.key, o)
    o.flags |= F_IN_PROCESSING
  }

  private ownsMemReplica(o: Obj, clientId: string): boolean {
    let owns = false
    this.forEachMem(o, (seg) => {
      if (this.segs[seg].clientId === clientId) owns = true
    })
    return owns
  }

  // --- reads -----------------------------------------------------------------------------------

  getReplicaList(key: string): GetReplicaListResult {
    const o = this.lookup(key)
    if (o === undefined) fail('OBJECT_NOT_FOUND', `key ${JSON.stringify(key)} not found`)
    if (!this.hasComplete(o)) fail('REPLICA_IS_NOT_READY', `key ${JSON.stringify(key)} is being written`)
    const now = this.clock.now()
    const leaseAt = this.grantLease(o, now)
    return this.replicaList(o, leaseAt)
  }

  batchGetReplicaList(keys: string[]): ItemResult<GetReplicaListResult>[] {
    return keys.map((k) => itemOf(() => this.getReplicaList(k)))
  }

  getReplicaListByRegex(regex: string): Map<string, GetReplicaListResult> {
    const chunk = this.scanChunk(regex, {mode: 'replicas'})
    const out = new Map<string, GetReplicaListResult>()
    chunk.keys.forEach((key, i) => out.set(key, chunk.replicas[i]))
    return out
  }

  existKey(key: string): boolean {
    const o = typeof key === 'string' ? this.lookup(key) : undefined
    if (o === undefined || !this.hasComplete(o)) return false
    this.grantLease(o, this.clock.now())
    return true
  }

  batchExistKey(keys: string[]): boolean[] {
    return keys.map((k) => this.existKey(k))
  }

  query(key: string): ObjectInfo {
    const o = this.lookup(key)
    if (o === undefined) fail('OBJECT_NOT_FOUND', `key ${JSON.stringify(key)} not found`)
    return this.info(o, this.clock.now())
  }

  batchQuery(keys: string[]): ItemResult<ObjectInfo>[] {
    return keys.map((k) => itemOf(() => this.query(k)))
  }

  queryByRegex(regex: string): ObjectInfo[] {
    return this.scanChunk(regex, {mode: 'query'}).objects
  }

  /**
   * One chunk of a resumable regex scan (see regex-scan.ts): tests keys from where `cursor` stopped
   * until `budgetMs` or `maxKeys` runs out (neither: to the end) and applies `mode` to each match
   * at once (leases are granted, objects removed, with the clock read once per chunk). Returns the
   * chunk's matches and, unless the scan is complete, the cursor to continue from.
   */
  regexScan(pattern: string, options: RegexScanOptions): RegexScanChunk {
    return this.scanChunk(pattern, options)
  }

  private scanChunk(pattern: string, options: RegexScanOptions): RegexScanChunk {
    if (options === null || typeof options !== 'object' || !SCAN_MODES.has(options.mode)) fail('INVALID_PARAMS', 'regex scan mode must be replicas, query or remove')
    let c = options.cursor as ScanCursor | undefined
    if (c !== undefined) {
      if (!(c instanceof ScanCursor) || c.pattern !== pattern || c.mode !== options.mode) fail('INVALID_PARAMS', 'the cursor belongs to another scan')
      if (c.table !== this.table) fail('UNAVAILABLE', 'the master state was reset during the scan; start it again')
    } else c = new ScanCursor(pattern, options.mode, compileSearchRegex(pattern), this.table)
    const t0 = performance.now()
    const budgetMs = options.budgetMs ?? Infinity
    const maxKeys = options.maxKeys ?? Infinity
    const force = options.force === true
    const dryRun = options.dryRun === true
    const now = this.clock.now()
    const rnow = now - this.epoch
    const out: RegexScanChunk = {keys: [], replicas: [], objects: [], skipped: 0, tested: 0, scanMs: 0}
    const re = c.re
    let stopped = false
    while (c.shard < this.table.shardCount) {
      const it = (c.it ??= this.table.shards[c.shard].entries())
      for (;;) {
        if (out.tested >= maxKeys || (out.tested > 0 && performance.now() - t0 >= budgetMs)) {
          stopped = true
          break
        }
        const r = it.next()
        if (r.done === true) break
        const [key, o] = r.value
        out.tested += 1
        if (!testKey(re, key)) continue
        if (c.mode === 'query') {
          if (this.alive(o)) {
            out.keys.push(key)
            out.objects.push(this.info(o, now))
          }
        } else if (c.mode === 'replicas') {
          if (!this.purge(o) || !this.hasComplete(o)) continue
          out.keys.push(key)
          out.replicas.push(this.replicaList(o, this.grantLease(o, now)))
        } else {
          if (!this.purge(o)) continue
          if (o.processing || (!force && o.lease > rnow)) {
            out.skipped += 1
            continue
          }
          out.keys.push(key)
          if (!dryRun) this.eraseObject(o)
        }
      }
      if (stopped) break
      c.it = undefined
      c.shard += 1
    }
    c.scanMs += performance.now() - t0
    out.scanMs = c.scanMs
    if (c.shard < this.table.shardCount) out.next = c
    return out
  }

  listKeys(req: ListKeysRequest = {}): ListKeysPage {
    const limit = req.limit ?? DEFAULT_LIST_LIMIT
    if (!Number.isSafeInteger(limit) || limit < 1) fail('INVALID_PARAMS', `limit must be a positive integer, not ${limit}`)
    const re = req.regex !== undefined && req.regex !== '' ? compileSearchRegex(req.regex) : undefined
    const prefix = req.prefix ?? ''
    const after = req.after !== undefined && req.after !== '' ? req.after : undefined
    const startShard = after === undefined ? 0 : this.table.shardOf(after)
    let lastKey: string | undefined
    const keys: string[] = []
    const t0 = req.budgetMs === undefined ? 0 : performance.now()
    for (let s = startShard; s < this.table.shardCount; s++) {
      const shard = this.table.shards[s]
      if (shard.size === 0) continue
      if (req.budgetMs !== undefined && s > startShard && performance.now() - t0 >= req.budgetMs) {
        // Out of time: continue after the last key of the previous non-empty shard scanned.
        if (lastKey !== undefined) return {keys, next: lastKey}
      }
      const matched: string[] = []
      let last: string | undefined
      for (const [key, o] of shard) {
        if (last === undefined || key > last) last = key
        if (s === startShard && after !== undefined && !(key > after)) continue
        if (prefix !== '' && !key.startsWith(prefix)) continue
        if (re !== undefined && !testKey(re, key)) continue
        if (!this.readableNow(o)) continue
        matched.push(key)
      }
      if (last !== undefined && !(s === startShard && after !== undefined && !(last > after))) lastKey = last
      if (matched.length === 0) continue
      if (keys.length === limit) return {keys, next: keys[keys.length - 1]}
      matched.sort()
      for (const k of matched) {
        if (keys.length === limit) return {keys, next: keys[keys.length - 1]}
        keys.push(k)
      }
    }
    return {keys}
  }

  // --- removal ---------------------------------------------------------------------------------

  remove(req: RemoveRequest): void {
    if (req === null || typeof req !== 'object' || typeof req.key !== 'string') fail('INVALID_PARAMS', 'key must be a string')
    const o = this.lookup(req.key)
    if (o === undefined) fail('OBJECT_NOT_FOUND', `key ${JSON.stringify(req.key)} not found`)
    if (o.processing) fail('REPLICA_IS_NOT_READY', `key ${JSON.stringify(req.key)} is being written`)
    if (req.force !== true && o.lease > this.clock.now() - this.epoch) fail('OBJECT_HAS_LEASE', `key ${JSON.stringify(req.key)} is leased`)
    this.eraseObject(o)
  }

  batchRemove(keys: string[], force?: boolean): ItemResult<void>[] {
    return keys.map((key) => itemOf(() => this.remove({key, force})))
  }

  removeByRegex(req: RemoveByRegexRequest): RemoveManyResult {
    if (req === null || typeof req !== 'object') fail('INVALID_PARAMS', 'request must be an object')
    const chunk = this.scanChunk(req.regex, {mode: 'remove', force: req.force === true, dryRun: req.dryRun === true})
    return {removed: chunk.keys.length, skipped: chunk.skipped, keys: chunk.keys}
  }

  removeAll(req: RemoveAllRequest): RemoveManyResult {
    return this.removeMany(() => true, req?.force === true, req?.dryRun === true)
  }

  private removeMany(match: (key: string) => boolean, force: boolean, dryRun: boolean): RemoveManyResult {
    const rnow = this.clock.now() - this.epoch
    const keys: string[] = []
    let skipped = 0
    for (const shard of this.table.shards) {
      for (const [key, o] of shard) {
        if (!match(key) || !this.purge(o)) continue
        if (o.processing || (!force && o.lease > rnow)) {
          skipped += 1
          continue
        }
        keys.push(key)
        if (!dryRun) this.eraseObject(o)
      }
    }
    return {removed: keys.length, skipped, keys}
  }

  // --- segments --------------------------------------------------------------------------------

  mountSegment(req: MountSegmentRequest): MountSegmentResult {
    if (req === null || typeof req !== 'object' || !isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    validateDescriptor(req.segment)
    const now = this.clock.now()
    this.mountInternal(req.clientId, req.segment, now)
    this.touchClient(req.clientId, now)
    return {viewVersion: this.view}
  }

  reMountSegment(req: ReMountSegmentRequest): void {
    if (req === null || typeof req !== 'object' || !isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    if (!Array.isArray(req.segments)) fail('INVALID_PARAMS', 'segments must be a list')
    for (const d of req.segments) {
      validateDescriptor(d)
      const known = this.segById.get(d.id)
      if (known !== undefined && !known.sameIdentity(req.clientId, d)) {
        fail('INVALID_PARAMS', `segment ${d.id} is mounted with another identity or owner`)
      }
    }
    const now = this.clock.now()
    for (const d of req.segments) {
      if (this.segById.has(d.id)) continue
      try {
        this.mountInternal(req.clientId, d, now)
      } catch (err) {
        // As the original: a segment that cannot be re-mounted is skipped, the others go on.
        if (!isMooncakeError(err)) throw err
      }
    }
    const c = this.touchClient(req.clientId, now)
    c.ok = true
  }

  unmountSegment(req: UnmountSegmentRequest): void {
    if (req === null || typeof req !== 'object' || !isNonEmptyString(req.name)) fail('INVALID_PARAMS', 'segment name must be non-empty')
    const seg = this.segByName.get(req.name)
    if (seg === undefined) {
      if (req.clientId !== undefined) return // the owner's unmount is idempotent
      fail('SEGMENT_NOT_FOUND', `segment ${JSON.stringify(req.name)} is not mounted`)
    }
    if (req.clientId !== undefined && req.clientId !== seg.clientId) fail('ILLEGAL_CLIENT', `segment ${JSON.stringify(req.name)} belongs to another client`)
    const operator = req.clientId === undefined
    const now = this.clock.now()
    if (req.drain === true) {
      if (seg.status === 'DRAINING') return
      const timeout = req.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS
      if (!(typeof timeout === 'number' && timeout >= 0)) fail('INVALID_PARAMS', `bad drain timeout ${timeout}`)
      seg.status = 'DRAINING'
      seg.drainDeadline = now + timeout
      seg.drainByOperator = operator
      this.draining.add(seg)
      this.rebuildOk()
      return
    }
    this.unmountNow(seg, operator ? 'operator' : 'owner', now)
  }

  getAllSegments(): SegmentInfo[] {
    const out: SegmentInfo[] = []
    for (const s of this.segByName.values()) {
      const a = s.allocator!
      out.push({
        name: s.name,
        id: s.id,
        clientId: s.clientId,
        endpoints: [...s.endpoints],
        hostId: s.hostId,
        capacity: s.capacity,
        used: a.used,
        status: s.status,
        lastPingAt: this.clients.get(s.clientId)?.lastPingAt ?? s.mountedAt,
        fragmentation: a.fragmentation(),
      })
    }
    return out
  }

  querySegments(name: string): SegmentUsage {
    const s = this.segByName.get(name)
    if (s === undefined) fail('SEGMENT_NOT_FOUND', `segment ${JSON.stringify(name)} is not mounted`)
    return {name: s.name, capacity: s.capacity, used: s.allocator!.used}
  }

  private mountInternal(clientId: string, d: SegmentDescriptor, now: number): void {
    if (this.tombstones.has(d.id)) fail('SEGMENT_UNMOUNTED', `segment ${JSON.stringify(d.name)} was unmounted by an operator`)
    const existing = this.segByName.get(d.name)
    if (existing !== undefined) {
      if (existing.id === d.id && existing.clientId === clientId) {
        if (existing.status !== 'OK') fail('UNAVAILABLE_IN_CURRENT_STATUS', `segment ${JSON.stringify(d.name)} is ${existing.status}`)
        return
      }
      fail('SEGMENT_ALREADY_EXISTS', `segment name ${JSON.stringify(d.name)} is mounted by another client`)
    }
    if (this.segById.has(d.id)) fail('INVALID_PARAMS', `segment id ${d.id} is mounted under another name`)
    const seg = new Segment(this.segs.length, clientId, d, now, ALIGNMENT)
    this.segs.push(seg)
    this.segByName.set(seg.name, seg)
    this.segById.set(seg.id, seg)
    const c = this.touchClient(clientId, now)
    c.segments.add(seg)
    this.rebuildOk()
    if (this.onMutation !== undefined) this.onMutation({type: 'segmentMounted', clientId, segment: {...d, endpoints: [...d.endpoints]}})
  }

  /** Drops a segment at once: its replicas are gone, leases notwithstanding (S4). */
  private unmountNow(seg: Segment, reason: Reason, now: number, syncSweep = true): void {
    if (seg.allocator === null) return
    seg.allocator = null
    seg.status = 'UNMOUNTING'
    this.segByName.delete(seg.name)
    this.segById.delete(seg.id)
    this.draining.delete(seg)
    this.clients.get(seg.clientId)?.segments.delete(seg)
    this.rebuildOk()
    if (reason === 'operator') this.addTombstone(seg, now)
    if (this.onMutation !== undefined) {
      this.onMutation({type: 'segmentUnmounted', name: seg.name, id: seg.id, clientId: seg.clientId, reason})
    }
    this.sweepShard = 0
    this.m.sweepPending = true
    // Replicas on the segment are unreadable from now on (lookups purge them); erasing the objects
    // left without replicas happens here for a small table, else in bounded steps of tick().
    if (syncSweep && this.table.size <= SYNC_SWEEP_LIMIT) this.sweep(Infinity)
  }

  private rebuildOk(): void {
    this.okSegs = [...this.segByName.values()].filter((s) => s.status === 'OK')
  }

  private addTombstone(seg: Segment, now: number): void {
    this.tombstones.set(seg.id, {clientId: seg.clientId, name: seg.name, at: now})
    this.tombstonesByClient.set(seg.clientId, (this.tombstonesByClient.get(seg.clientId) ?? 0) + 1)
    while (this.tombstones.size > MAX_TOMBSTONES) this.dropOldestTombstone()
  }

  private dropOldestTombstone(): void {
    const first = this.tombstones.entries().next()
    if (first.done === true) return
    const [id, t] = first.value
    this.tombstones.delete(id)
    const n = (this.tombstonesByClient.get(t.clientId) ?? 1) - 1
    if (n <= 0) this.tombstonesByClient.delete(t.clientId)
    else this.tombstonesByClient.set(t.clientId, n)
  }

  // --- liveness --------------------------------------------------------------------------------

  ping(req: PingRequest): PingResult {
    if (req === null || typeof req !== 'object' || !isNonEmptyString(req.clientId)) fail('INVALID_PARAMS', 'clientId must be non-empty')
    const now = this.clock.now()
    const c = this.touchClient(req.clientId, now)
    if (this.disk !== undefined && Array.isArray(req.diskResults)) this.applyDiskResults(req.diskResults)
    if (c.segments.size === 0 && this.tombstonesByClient.has(req.clientId)) return {viewVersion: this.view, status: 'UNMOUNTED'}
    const res: PingResult = {viewVersion: this.view, status: c.ok ? 'OK' : 'NEED_REMOUNT'}
    if (this.disk !== undefined && c.ok) {
      const tasks = this.diskTasksFor(req.clientId, now)
      if (tasks.length > 0) res.diskTasks = tasks
    }
    return res
  }

  private touchClient(clientId: string, now: number): ClientRecord {
    let c = this.clients.get(clientId)
    if (c === undefined) {
      c = new ClientRecord(clientId, now, this.options.clientTtlMs)
      this.clients.set(clientId, c)
    } else {
      c.deadline = Math.max(c.deadline, now + this.options.clientTtlMs)
      c.lastPingAt = now
    }
    return c
  }

  private expireClient(c: ClientRecord, now: number): void {
    this.clients.delete(c.id)
    this.m.expiredClients += 1
    const names = [...c.segments].map((s) => s.name)
    for (const seg of [...c.segments]) this.unmountNow(seg, 'expired', now, false)
    if (this.disk !== undefined) this.requeueDiskTasks(c.id)
    if (names.length > 0) {
      this.onNotice?.(
        `client ${c.id} sent no ping for ${now - c.lastPingAt} ms (client TTL ${this.options.clientTtlMs} ms): ` +
          `segment${names.length > 1 ? 's' : ''} ${names.map((n) => JSON.stringify(n)).join(', ')} unmounted, their replicas dropped`,
      )
    }
  }

  // --- misc ------------------------------------------------------------------------------------

  serviceReady(): ServiceReadyResult {
    return {version: this.version, protocolVersion: PROTOCOL_VERSION, viewVersion: this.view}
  }

  stats(): MasterStats {
    this.expirePins(this.clock.now() - this.epoch, Infinity)
    let capacity = 0
    let used = 0
    for (const s of this.segByName.values()) {
      capacity += s.capacity
      used += s.allocator!.used
    }
    return {
      capacity,
      used,
      keys: this.table.size,
      softPinnedKeys: this.pinnedCount,
      clients: this.clients.size,
      segments: this.segByName.size,
    }
  }

  /** Counters and timings of the background work. */
  metrics(): MasterServiceMetrics {
    return {...this.m, evictionInProgress: this.round !== null}
  }

  // --- background work -------------------------------------------------------------------------

  /** Whether background work is pending (an adapter may tick sooner). */
  needsTick(): boolean {
    if (this.round !== null || this.needEviction || this.m.sweepPending || this.draining.size > 0) return true
    if (this.processing.size > 0 || this.discarded.size > 0 || this.reservations.size > 0 || this.pinQueue.length > 0 || this.clients.size > 0) return true
    return this.usedRatio() > this.options.evictionHighWatermarkRatio
  }

  /**
   * One bounded step of background work: client expiry (after extending every deadline by the
   * reported loop lag, or by the gap since the previous tick when that is unusually long), drain
   * completion, zombie-put release, soft-pin expiry, the sweep after an unmount and eviction.
   */
  tick(opts: {loopLagMs?: number} = {}): void {
    const t0 = performance.now()
    const now = this.clock.now()
    const rnow = now - this.epoch
    let stall = Math.max(0, opts.loopLagMs ?? 0)
    if (this.lastTickAt !== undefined) {
      const gap = now - this.lastTickAt
      if (gap > this.maxTickGapMs) stall = Math.max(stall, gap)
    }
    this.lastTickAt = now
    if (stall > 0) for (const c of this.clients.values()) c.deadline += stall
    for (const c of [...this.clients.values()]) if (now > c.deadline) this.expireClient(c, now)

    for (const seg of [...this.draining]) {
      if (now >= seg.maxLease || now >= seg.drainDeadline) this.unmountNow(seg, seg.drainByOperator ? 'operator' : 'owner', now, false)
    }
    while (this.tombstones.size > 0) {
      const first = this.tombstones.values().next().value as Tombstone
      if (now - first.at < TOMBSTONE_TTL_MS) break
      this.dropOldestTombstone()
    }

    const budget = {ops: TICK_MAX_OPS, until: t0 + TICK_BUDGET_MS}
    this.releaseZombies(rnow, budget)
    this.discarded.drain(rnow, 4096, (seg, h) => this.releaseDiscarded(seg, h))
    for (const r of this.reservations.values()) {
      if (r.releaseAt > rnow) break
      this.dropReservation(r)
    }
    this.expirePins(rnow, 4096)
    if (this.m.sweepPending) this.sweep(SWEEP_PER_TICK)
    this.evictStep(rnow, budget)

    const ms = performance.now() - t0
    this.m.lastTickMs = ms
    if (ms > this.m.maxTickMs) this.m.maxTickMs = ms
  }

  /**
   * Runs one whole eviction round now (the original's BatchEvict(target, lower)), regardless of the
   * watermark: pass 1 evicts ceil(base*target) lease-expired, non-soft-pinned objects, oldest lease
   * first; then expired zombie space is released; pass 2 evicts more (soft-pinned last, if allowed)
   * while ceil(base*lower) - evicted - released > 0.
   */
  runEviction(target: number, lower: number): EvictionResult {
    const rnow = this.clock.now() - this.epoch
    this.expirePins(rnow, Infinity)
    this.round = null
    const released0 = this.m.releasedZombieReplicas
    this.startRound(target, lower)
    const before = this.m.evictedObjects
    const budget = {ops: Infinity, until: Infinity}
    while (this.round !== null) this.evictStep(rnow, budget, true)
    return {evicted: this.m.evictedObjects - before, released: this.m.releasedZombieReplicas - released0}
  }

  private usedRatio(): number {
    let capacity = 0
    let used = 0
    for (const s of this.segByName.values()) {
      capacity += s.capacity
      used += s.allocator!.used
    }
    return capacity === 0 ? 0 : used / capacity
  }

  private startRound(target: number, lower: number): void {
    const base = this.plainHeap.size + this.pinnedHeap.size
    this.m.evictionRounds += 1
    if (base === 0) {
      this.needEviction = false
      return
    }
    const want1 = Math.ceil(base * target - 1e-9)
    this.round = {base, target, lower, want1, evicted: 0, phase: 1, want2: 0}
  }

  private evictStep(rnow: number, budget: Budget, force = false): void {
    if (this.round === null && !force) {
      const ratio = this.usedRatio()
      const wm = this.options.evictionHighWatermarkRatio
      const er = this.options.evictionRatio
      if (ratio > wm || (this.needEviction && er > 0)) {
        const target = Math.max(er, ratio - wm + er)
        const lower = Math.max(target * 0.5, ratio - wm)
        this.startRound(target, lower)
      }
    }
    const r = this.round
    if (r === null) return
    let n = 0
    if (r.phase === 1) {
      while (r.evicted < r.want1) {
        if (budget.ops <= 0 || ((++n & 15) === 0 && performance.now() > budget.until)) return
        const o = this.plainHeap.popExpired(rnow, budget)
        if (o === null) {
          if (budget.ops <= 0) return
          break
        }
        if (this.evictObject(o)) r.evicted += 1
      }
      const released = this.discarded.drain(rnow, Infinity, (seg, h) => this.releaseDiscarded(seg, h))
      r.want2 = Math.ceil(r.base * r.lower - 1e-9) - r.evicted - released
      r.phase = 2
    }
    while (r.want2 > 0) {
      if (budget.ops <= 0 || ((++n & 15) === 0 && performance.now() > budget.until)) return
      let o = this.plainHeap.popExpired(rnow, budget)
      if (o === null && budget.ops > 0 && this.options.allowEvictSoftPinnedObjects) o = this.pinnedHeap.popExpired(rnow, budget)
      if (o === null) {
        if (budget.ops <= 0) return
        break
      }
      if (this.evictObject(o)) {
        r.evicted += 1
        r.want2 -= 1
      }
    }
    if (r.evicted > 0) {
      this.needEviction = false
      this.m.successfulEvictions += 1
    }
    this.round = null
  }

  /** Synchronous eviction of a PutStart that found no space [ours]: bounded, oldest lease first. */
  private evictForSpace(size: number, now: number): void {
    const t0 = this.wallNow()
    const rnow = now - this.epoch
    this.expirePins(rnow, 4096)
    const budget: Budget = {ops: SYNC_EVICT_MAX_OBJECTS * 16, until: Infinity}
    let evicted = 0
    // Dry run first: take lease-expired objects (oldest first) until some segment's free bytes
    // plus theirs could hold the put; if that never happens, put them back and evict nothing.
    const taken: Obj[] = []
    const gain = new Map<Segment, number>()
    let feasible = false
    while (!feasible && taken.length < SYNC_EVICT_MAX_OBJECTS && budget.ops > 0) {
      let o = this.plainHeap.popExpired(rnow, budget)
      if (o === null && budget.ops > 0 && this.options.allowEvictSoftPinnedObjects) o = this.pinnedHeap.popExpired(rnow, budget)
      if (o === null) break
      taken.push(o)
      this.forEachMem(o, (idx, h) => {
        const seg = this.segs[idx]
        const a = seg.allocator
        if (a === null || seg.status !== 'OK') return
        const g = (gain.get(seg) ?? 0) + a.sizeOf(h)
        gain.set(seg, g)
        if (a.free + g >= a.alignedSize(size)) feasible = true
      })
    }
    if (!feasible) {
      for (const o of taken) if ((o.flags & F_DEAD) === 0) this.readable(o)
      this.m.syncEvictions += 1
      return
    }
    for (const o of taken) {
      if (this.evictObject(o)) evicted += 1
    }
    while (evicted < SYNC_EVICT_MAX_OBJECTS && budget.ops > 0) {
      if (this.okSegs.some((seg) => seg.status === 'OK' && seg.allocator !== null && seg.allocator.canAlloc(size))) break
      let o = this.plainHeap.popExpired(rnow, budget)
      if (o === null && budget.ops > 0 && this.options.allowEvictSoftPinnedObjects) o = this.pinnedHeap.popExpired(rnow, budget)
      if (o === null) break
      let fits = false
      const freed = this.evictObject(o, (seg) => {
        if (!fits && seg.status === 'OK' && seg.allocator!.canAlloc(size)) fits = true
      })
      if (freed) evicted += 1
      if (fits) break
    }
    this.m.syncEvictions += 1
    if (evicted > 0) this.m.successfulEvictions += 1
    const ms = this.wallNow() - t0
    if (ms > this.m.maxSyncEvictMs) this.m.maxSyncEvictMs = ms
  }

  /** Evicts the memory replicas of an object popped from an eviction heap. */
  private evictObject(o: Obj, onFreed?: (seg: Segment) => void): boolean {
    if ((o.flags & F_DEAD) !== 0 || !this.purge(o)) return false
    if (o.memState !== TIER_COMPLETE || o.memCount === 0) return false
    this.m.evictedBytes += o.size * o.memCount
    this.forEachMem(o, (idx, h) => {
      const seg = this.segs[idx]
      seg.allocator!.release(h)
      onFreed?.(seg)
    })
    o.seg = -1
    o.more = null
    o.memState = TIER_NONE
    this.m.evictedObjects += 1
    if (o.diskState === TIER_COMPLETE) this.commit(o, this.clock.now())
    else this.eraseObject(o)
    return true
  }

  private releaseZombies(rnow: number, budget: Budget): void {
    const timeout = this.options.putStartReleaseTimeoutMs
    let n = 0
    for (const o of this.processing.values()) {
      if (o.start + timeout > rnow || budget.ops <= 0) break
      if (((++n & 63) === 0 && performance.now() > budget.until)) break
      budget.ops -= 1
      if (!this.purge(o)) continue
      if (o.memState === TIER_PROCESSING) {
        this.m.releasedZombieReplicas += o.memCount
        this.freeMemory(o)
      }
      if (o.diskState === TIER_PROCESSING) {
        this.dropDisk(o)
        o.diskState = TIER_NONE
      }
      if (o.memCount === 0 && o.diskState !== TIER_COMPLETE) this.eraseObject(o)
      else this.afterWrite(o)
    }
  }

  private releaseDiscarded(seg: number, h: number): void {
    const a = this.segs[seg].allocator
    if (a !== null && a.isAllocated(h)) a.release(h)
    this.m.releasedZombieReplicas += 1
  }

  private expirePins(rnow: number, max: number): void {
    this.pinQueue.drain(rnow, max, (o, deadline) => {
      if ((o.flags & (F_DEAD | F_PIN_ACTIVE)) !== F_PIN_ACTIVE || o.pin !== deadline) return
      o.flags &= ~F_PIN_ACTIVE
      this.pinnedCount -= 1
      if (o.hi >= 0 && (o.flags & F_IN_PINNED_HEAP) !== 0) {
        this.pinnedHeap.remove(o)
        o.flags &= ~F_IN_PINNED_HEAP
        this.plainHeap.push(o)
      }
    })
  }

  /** Purges replicas on unmounted segments, `max` objects at most per call. */
  private sweep(max: number): void {
    let seen = 0
    while (this.sweepShard >= 0 && this.sweepShard < this.table.shardCount) {
      const shard = this.table.shards[this.sweepShard]
      seen += shard.size
      for (const o of shard.values()) this.purge(o)
      this.sweepShard += 1
      if (seen >= max) return
    }
    this.sweepShard = -1
    this.m.sweepPending = false
  }

  // --- object state funnels --------------------------------------------------------------------

  private insertObject(o: Obj): void {
    this.table.insert(o)
  }

  /** Removes an object and frees its live space. */
  private eraseObject(o: Obj): void {
    if ((o.flags & F_DEAD) !== 0) return
    this.unreadable(o)
    this.freeMemory(o)
    this.dropDisk(o)
    if ((o.flags & F_IN_PROCESSING) !== 0) this.processing.delete(o.key)
    if ((o.flags & F_PIN_ACTIVE) !== 0) this.pinnedCount -= 1
    o.flags = (o.flags & ~(F_IN_PROCESSING | F_PIN_ACTIVE)) | F_DEAD
    this.table.delete(o)
    if (this.onMutation !== undefined) this.onMutation({type: 'objectRemoved', key: o.key})
  }

  /** Reports the committed state of an object (objectCommitted). */
  private commit(o: Obj, now: number): void {
    if (this.onMutation === undefined) return
    const replicas: CommittedReplica[] = []
    if (o.memState === TIER_COMPLETE) {
      this.forEachMem(o, (idx, h, id) => {
        const seg = this.segs[idx]
        replicas.push({id, segment: seg.name, offset: seg.allocator!.offsetOf(h), length: o.size})
      })
    }
    this.onMutation({
      type: 'objectCommitted',
      key: o.key,
      size: o.size,
      version: o.version,
      checksum: (o.flags & F_CHECKSUM) !== 0 ? o.checksum >>> 0 : undefined,
      replicas,
      diskReplicaId: o.diskState === TIER_COMPLETE ? o.did : undefined,
      softPinExpiresAt: this.pinDeadline(o, now),
    })
  }

  /** Puts a newly readable object into an eviction heap. */
  private readable(o: Obj): void {
    if (o.hi >= 0 || o.memState !== TIER_COMPLETE || o.memCount === 0) return
    // Not evictable while its owner copies the memory replica to disk (settling makes it readable).
    if (o.diskState === TIER_PROCESSING && this.disk !== undefined) return
    if ((o.flags & F_PIN_ACTIVE) !== 0) {
      o.flags |= F_IN_PINNED_HEAP
      this.pinnedHeap.push(o)
    } else {
      o.flags &= ~F_IN_PINNED_HEAP
      this.plainHeap.push(o)
    }
  }

  /** Takes an object out of the eviction heaps (it stopped being evictable). */
  private unreadable(o: Obj): void {
    if (o.hi < 0) return
    if ((o.flags & F_IN_PINNED_HEAP) !== 0) this.pinnedHeap.remove(o)
    else this.plainHeap.remove(o)
    o.flags &= ~F_IN_PINNED_HEAP
  }

  /** Frees every live memory replica of an object. */
  private freeMemory(o: Obj): void {
    if (o.seg < 0) return
    this.unreadable(o)
    this.forEachMem(o, (idx, h) => {
      const a = this.segs[idx].allocator
      if (a !== null) a.release(h)
    })
    o.seg = -1
    o.h = -1
    o.more = null
    o.memState = TIER_NONE
  }

  private forEachMem(o: Obj, fn: (seg: number, handle: number, id: number) => void): void {
    if (o.seg < 0) return
    fn(o.seg, o.h, o.rid)
    const more = o.more
    if (more !== null) for (let i = 0; i < more.length; i += 3) fn(more[i], more[i + 1], more[i + 2])
  }

  /**
   * lookup() for PutEnd / PutRevoke: an object being written is in `processing` (a live object
   * under its key in the table, as long as it is there), found without touching the big table.
   */
  private lookupWriting(key: string): Obj | undefined {
    const o = typeof key === 'string' ? this.processing.get(key) : undefined
    if (o === undefined) return this.lookup(key)
    return this.purge(o) ? o : undefined
  }

  /** The object under a key, after dropping replicas on unmounted segments (undefined if none is left). */
  private lookup(key: string): Obj | undefined {
    if (typeof key !== 'string') return undefined
    const o = this.table.get(key)
    if (o === undefined) return undefined
    return this.purge(o) ? o : undefined
  }

  /** Drops replicas on unmounted segments; erases the object when nothing valid remains. */
  private purge(o: Obj): boolean {
    if ((o.flags & F_DEAD) !== 0) return false
    if (o.seg < 0) return true
    let dead = this.segs[o.seg].allocator === null
    const more = o.more
    if (more !== null) for (let i = 0; i < more.length && !dead; i += 3) dead = this.segs[more[i]].allocator === null
    if (!dead) return true
    const keep: number[] = []
    this.forEachMem(o, (seg, h, id) => {
      if (this.segs[seg].allocator !== null) keep.push(seg, h, id)
    })
    if (keep.length === 0) {
      this.unreadable(o)
      o.seg = -1
      o.h = -1
      o.more = null
      o.memState = TIER_NONE
      if (o.diskState !== TIER_COMPLETE) {
        this.eraseObject(o)
        return false
      }
      this.commit(o, this.clock.now())
      return true
    }
    o.seg = keep[0]
    o.h = keep[1]
    o.rid = keep[2]
    o.more = keep.length > 3 ? keep.slice(3) : null
    if (o.memState === TIER_COMPLETE) this.commit(o, this.clock.now())
    return true
  }

  /** Alive, without mutating anything (for iterations that must not purge). */
  private alive(o: Obj): boolean {
    if ((o.flags & F_DEAD) !== 0) return false
    if (o.diskState !== TIER_NONE) return true
    return this.liveMem(o) > 0
  }

  private liveMem(o: Obj): number {
    let n = 0
    this.forEachMem(o, (seg) => {
      if (this.segs[seg].allocator !== null) n += 1
    })
    return n
  }

  private hasComplete(o: Obj): boolean {
    return (o.memState === TIER_COMPLETE && o.seg >= 0) || o.diskState === TIER_COMPLETE
  }

  /** Readable without purging (ListKeys). */
  private readableNow(o: Obj): boolean {
    if ((o.flags & F_DEAD) !== 0) return false
    if (o.diskState === TIER_COMPLETE) return true
    return o.memState === TIER_COMPLETE && this.liveMem(o) > 0
  }

  /** Grants or extends the read lease (max(old, now + ttl)); returns the absolute deadline. */
  private grantLease(o: Obj, now: number): number {
    const want = now - this.epoch + this.options.leaseTtlMs
    if (o.lease < want) o.lease = want
    o.flags |= F_LEASED
    const abs = o.lease + this.epoch
    this.forEachMem(o, (idx) => {
      const seg = this.segs[idx]
      if (seg.maxLease < abs) seg.maxLease = abs
    })
    return abs
  }

  private pinDeadline(o: Obj, now: number): number | null {
    if ((o.flags & F_PIN_ACTIVE) === 0) return null
    const abs = o.pin + this.epoch
    return abs > now ? abs : null
  }

  // --- result builders -------------------------------------------------------------------------

  private memLocation(seg: Segment, h: number, length: number, ops: 'r' | 'w', expiresAt: number): MemoryLocation {
    const offset = seg.allocator!.offsetOf(h)
    const loc: MemoryLocation = {segment: seg.name, endpoints: seg.endpoints, hostId: seg.hostId, offset, length}
    if (this.mintGrant !== undefined && seg.grantKey !== undefined && seg.grantKey !== '') {
      loc.grant = this.mintGrant(seg.grantKey, {segment: seg.name, offset, length, ops, expiresAt})
    }
    return loc
  }

  private diskPath(o: Obj): string {
    if (this.disk !== undefined) return this.disk.pathOf(o.key, o.version)
    const h = createHash('sha256').update(o.key).digest('hex')
    const root = this.options.rootFsDir!.replace(/\/+$/, '')
    return `${root}/${this.options.clusterId}/${h.slice(0, 2)}/${h.slice(2, 4)}/${h}`
  }

  // --- disk tier (issue 6; disk-tier.ts, docs/disk-tier.md) ----------------------------------

  /** Whether (key, version) has a COMPLETE disk replica (restart scan). */
  diskReplicaLive(key: string, version: number): boolean {
    const o = this.table.get(key)
    return o !== undefined && (o.flags & F_DEAD) === 0 && o.version === version && o.diskState === TIER_COMPLETE
  }

  /** Drops the COMPLETE disk replica (key, version) (quota): the object goes if nothing else is left. */
  evictDiskReplica(key: string, version: number): void {
    const o = this.table.get(key)
    if (o === undefined || (o.flags & F_DEAD) !== 0 || o.version !== version || o.diskState !== TIER_COMPLETE) return
    this.dropDisk(o)
    o.diskState = TIER_NONE
    if (o.memCount === 0) this.eraseObject(o)
    else this.commit(o, this.clock.now())
  }

  /** Deletes the file of the object's current disk replica (before its state or version changes). */
  private dropDisk(o: Obj): void {
    if (this.disk !== undefined && o.diskState !== TIER_NONE) this.disk.deleteFile(o.key, o.version)
  }

  /** Memory PutEnd: the owner of the first memory replica will write the disk replica. */
  private queueDiskWrite(o: Obj): void {
    const owner = o.seg >= 0 ? this.segs[o.seg].clientId : undefined
    if (owner !== undefined && this.disk!.enqueue(owner, o.key, o.version, o.size, (e) => this.evictDiskReplica(e.key, e.version))) return
    this.dropDisk(o)
    o.diskState = TIER_NONE
  }

  private diskTasksFor(clientId: string, now: number): DiskTask[] {
    return this.disk!.takeTasks(clientId, now, (key, version) => {
      const o = this.lookup(key)
      if (o === undefined || o.version !== version || o.diskState !== TIER_PROCESSING || o.memState !== TIER_COMPLETE || o.seg < 0) return undefined
      const seg = this.segs[o.seg]
      if (seg.clientId !== clientId) return {reassign: seg.clientId}
      const task: DiskTask = {key, version, segment: seg.name, offset: seg.allocator!.offsetOf(o.h), length: o.size, path: this.diskPath(o)}
      if ((o.flags & F_CHECKSUM) !== 0) task.checksum = o.checksum >>> 0
      return task
    })
  }

  /** An owner died: its queued disk writes go to the owner of the next memory replica, if any. */
  private requeueDiskTasks(clientId: string): void {
    for (const {key, version} of this.disk!.takeQueue(clientId)) {
      const o = this.lookup(key)
      if (o === undefined || o.version !== version || o.diskState !== TIER_PROCESSING) continue
      if (o.seg >= 0 && o.memState === TIER_COMPLETE) this.disk!.requeue(this.segs[o.seg].clientId, key, version)
      else {
        this.dropDisk(o)
        o.diskState = TIER_NONE
        if (o.memCount === 0) this.eraseObject(o)
        else this.afterWrite(o)
      }
    }
  }

  /** Outcomes of disk writes reported by an owner's Ping. A stale report only deletes its file. */
  private applyDiskResults(results: readonly DiskTaskResult[]): void {
    const disk = this.disk!
    const now = this.clock.now()
    for (const r of results) {
      if (r === null || typeof r !== 'object' || typeof r.key !== 'string' || !Number.isSafeInteger(r.version)) continue
      const o = this.lookup(r.key)
      if (o === undefined || o.version !== r.version || o.diskState !== TIER_PROCESSING) {
        if (!this.diskReplicaLive(r.key, r.version)) disk.deleteFile(r.key, r.version)
        continue
      }
      const crc = typeof r.checksum === 'number' ? r.checksum >>> 0 : undefined
      const ok = r.ok === true && crc !== undefined && ((o.flags & F_CHECKSUM) === 0 || crc === o.checksum >>> 0)
      if (ok) {
        o.diskState = TIER_COMPLETE
        if ((o.flags & F_CHECKSUM) === 0) this.setChecksum(o, crc)
        disk.written(o.key, o.version, o.size)
        this.commit(o, now)
      } else {
        disk.counters.failed++
        this.dropDisk(o)
        o.diskState = TIER_NONE
      }
      if (o.memCount === 0 && o.diskState !== TIER_COMPLETE) this.eraseObject(o)
      else this.afterWrite(o)
    }
  }

  private putResult(o: Obj, requested: number, now: number): PutStartResult {
    const status = o.memState === TIER_COMPLETE ? 'COMPLETE' : 'PROCESSING'
    const expiresAt = now + this.options.putStartDiscardTimeoutMs
    const replicas: ReplicaDescriptor[] = []
    // Every put answers this: no closure (forEachMem).
    if (o.seg >= 0) {
      replicas.push({id: o.rid, type: 'memory', status, memory: this.memLocation(this.segs[o.seg], o.h, o.size, 'w', expiresAt)})
      const more = o.more
      if (more !== null) {
        for (let i = 0; i < more.length; i += 3) {
          replicas.push({id: more[i + 2], type: 'memory', status, memory: this.memLocation(this.segs[more[i]], more[i + 1], o.size, 'w', expiresAt)})
        }
      }
    }
    if (o.diskState !== TIER_NONE) {
      replicas.push({
        id: o.did,
        type: 'disk',
        status: o.diskState === TIER_COMPLETE ? 'COMPLETE' : 'PROCESSING',
        disk: {path: this.diskPath(o), size: o.size},
      })
    }
    return {replicas, version: o.version, requestedReplicas: requested}
  }

  private replicaList(o: Obj, leaseAt: number): GetReplicaListResult {
    const replicas: ReplicaDescriptor[] = []
    if (o.memState === TIER_COMPLETE) {
      this.forEachMem(o, (idx, h, id) => {
        replicas.push({id, type: 'memory', status: 'COMPLETE', memory: this.memLocation(this.segs[idx], h, o.size, 'r', leaseAt)})
      })
    }
    if (o.diskState === TIER_COMPLETE) {
      replicas.push({id: o.did, type: 'disk', status: 'COMPLETE', disk: {path: this.diskPath(o), size: o.size}})
    }
    const res: GetReplicaListResult = {
      replicas,
      size: o.size,
      version: o.version,
      leaseTtlMs: this.options.leaseTtlMs,
      leaseExpiresAt: leaseAt,
    }
    if ((o.flags & F_CHECKSUM) !== 0) res.checksum = o.checksum >>> 0
    return res
  }

  private info(o: Obj, now: number): ObjectInfo {
    const replicas: ReplicaInfo[] = []
    const status = o.memState === TIER_COMPLETE ? 'COMPLETE' : 'PROCESSING'
    this.forEachMem(o, (idx) => {
      const seg = this.segs[idx]
      if (seg.allocator === null) return
      replicas.push({type: 'memory', status, segment: seg.name, endpoint: seg.endpoints[0]})
    })
    if (o.diskState !== TIER_NONE) {
      replicas.push({type: 'disk', status: o.diskState === TIER_COMPLETE ? 'COMPLETE' : 'PROCESSING', path: this.diskPath(o)})
    }
    const res: ObjectInfo = {
      key: o.key,
      size: o.size,
      version: o.version,
      replicas,
      leaseExpiresAt: (o.flags & F_LEASED) !== 0 ? o.lease + this.epoch : 0,
      softPinExpiresAt: this.pinDeadline(o, now),
    }
    if ((o.flags & F_CHECKSUM) !== 0) res.checksum = o.checksum >>> 0
    return res
  }
}

const SCAN_MODES: ReadonlySet<string> = new Set<RegexScanMode>(['replicas', 'query', 'remove'])

/** Where a regex scan stopped: a live iterator over one shard of the table it scans. */
class ScanCursor implements RegexScanCursor {
  shard = 0
  it: Iterator<[string, Obj]> | undefined
  scanMs = 0
  constructor(
    readonly pattern: string,
    readonly mode: RegexScanMode,
    readonly re: RegExp,
    readonly table: ObjectTable,
  ) {}
}
