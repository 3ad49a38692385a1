/**
 * The master's API as TypeScript types: the contract between MasterService (in process), the
 * gRPC adapter (src/lib/proto/mooncake.proto mirrors these shapes) and the client library.
 * Sizes and offsets are byte counts (safe integers); times are Unix milliseconds.
 */
import type {ErrorCodeName} from '../errors.js'

export type ReplicaStatus = 'PROCESSING' | 'COMPLETE' | 'REMOVED' | 'FAILED'
export type ReplicaType = 'memory' | 'disk'
/** Which replicas a PutEnd/PutRevoke targets. 'all' means every memory replica (not disk), as the original. */
export type ReplicaTarget = 'memory' | 'disk' | 'all'
export type SegmentStatus = 'OK' | 'DRAINING' | 'UNMOUNTING'
/** What Ping tells a segment owner: keep going, re-mount everything, or stop (an operator unmounted it). */
export type ClientStatus = 'OK' | 'NEED_REMOUNT' | 'UNMOUNTED'

/** A per-item outcome of a batch call: one bad key does not fail the batch. */
export type ItemResult<T> = {ok: true; value: T} | {ok: false; code: ErrorCodeName; message: string}

/** What a segment owner contributes. `id` is chosen by the owner per mount (a UUID), `name` is unique in the cluster. */
export interface SegmentDescriptor {
  id: string
  /** Unique cluster-wide; default `HOST:PORT` of the owner's data endpoint. */
  name: string
  /** Data-plane addresses of the owner (`host:port`, one per NIC). */
  endpoints: string[]
  /** Bytes contributed. */
  size: number
  /** Identity of the owner's machine, for same-host reads and same-node placement. */
  hostId: string
  /** Hex key with which the master mints access grants for this segment; absent = no grants required. */
  grantKey?: string
}

export interface MemoryLocation {
  segment: string
  endpoints: string[]
  hostId: string
  offset: number
  length: number
  /** Opaque access grant the owner's data server checks (minted by the master), if the segment uses grants. */
  grant?: Uint8Array
}

export interface DiskLocation {
  /** Absolute path of the file holding the replica. */
  path: string
  size: number
}

export interface ReplicaDescriptor {
  id: number
  type: ReplicaType
  status: ReplicaStatus
  memory?: MemoryLocation
  disk?: DiskLocation
}

export interface ReplicateConfig {
  /** Memory replicas wanted (best effort, at least one). @default 1 */
  replicaNum?: number
  /** Evict only after all others, for softPinTtl. @default false */
  withSoftPin?: boolean
  /** Segments tried first, in order. @default [] */
  preferredSegments?: string[]
  /** Deprecated single form; when non-empty it replaces preferredSegments (as the original). */
  preferredSegment?: string
  /** Prefer a segment on the writer's host (needs hostId in the request). @default false */
  preferAllocInSameNode?: boolean
}

export interface PutStartRequest {
  clientId: string
  /** Unique per logical put: a retried PutStart with the same id returns the same placement. */
  requestId: string
  key: string
  size: number
  config?: ReplicateConfig
  /** The writer's host, for preferAllocInSameNode. */
  hostId?: string
}

export interface PutStartResult {
  /** All PROCESSING; write each, then PutEnd. */
  replicas: ReplicaDescriptor[]
  version: number
  /** How many memory replicas were asked for (replicas may hold fewer: best effort). */
  requestedReplicas: number
}

export interface PutEndRequest {
  clientId: string
  key: string
  /** CRC32C of the whole value, computed by the writer; returned to every reader. */
  checksum?: number
  target?: ReplicaTarget
}

export interface PutRevokeRequest {
  clientId: string
  key: string
  target?: ReplicaTarget
}

export interface GetReplicaListResult {
  /** Readable (COMPLETE) replicas only, memory first. */
  replicas: ReplicaDescriptor[]
  size: number
  version: number
  checksum?: number
  leaseTtlMs: number
  /** The lease deadline after this call (Unix ms). */
  leaseExpiresAt: number
}

export interface ReplicaInfo {
  type: ReplicaType
  status: ReplicaStatus
  segment?: string
  endpoint?: string
  path?: string
}

/** Metadata only; Query never grants a lease. */
export interface ObjectInfo {
  key: string
  size: number
  version: number
  checksum?: number
  replicas: ReplicaInfo[]
  /** Unix ms; 0 when no lease was ever granted. */
  leaseExpiresAt: number
  /** Unix ms, or null when not soft-pinned. */
  softPinExpiresAt: number | null
}

export interface RemoveRequest {
  key: string
  force?: boolean
}

export interface RemoveManyResult {
  removed: number
  skipped: number
  /** The keys removed (or, with dryRun, that would be). */
  keys: string[]
}

export interface RemoveByRegexRequest {
  regex: string
  force?: boolean
  dryRun?: boolean
}

export interface RemoveAllRequest {
  force?: boolean
  dryRun?: boolean
}

export interface MountSegmentRequest {
  clientId: string
  segment: SegmentDescriptor
}

export interface MountSegmentResult {
  viewVersion: number
}

export interface ReMountSegmentRequest {
  clientId: string
  segments: SegmentDescriptor[]
}

export interface UnmountSegmentRequest {
  /** Segment name. */
  name: string
  /** The owner's client id when the owner unmounts; absent when an operator does. */
  clientId?: string
  /** Stop new allocations, then wait (bounded) until no lease is held on its objects. */
  drain?: boolean
  /** Upper bound on the drain wait. @default 30_000 */
  drainTimeoutMs?: number
}

export interface SegmentInfo {
  name: string
  id: string
  clientId: string
  endpoints: string[]
  hostId: string
  capacity: number
  used: number
  status: SegmentStatus
  /** Unix ms of the owner's last ping (or mount). */
  lastPingAt: number
  /** 1 - largestFreeRange/freeBytes (0 = no fragmentation). */
  fragmentation: number
}

export interface SegmentUsage {
  name: string
  capacity: number
  used: number
}

export interface ListKeysRequest {
  prefix?: string
  regex?: string
  /** Resume after this key (exclusive), for paging. */
  after?: string
  /** Page size. @default 10_000 */
  limit?: number
  /**
   * Stop scanning after about this many milliseconds (checked between shards) and return a short
   * page whose `next` continues the listing. @default no limit
   */
  budgetMs?: number
}

export interface ListKeysPage {
  keys: string[]
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

export interface PingRequest {
  clientId: string
  /** Outcomes of disk tasks this owner finished since its last Ping (docs/disk-tier.md). */
  diskResults?: DiskTaskResult[]
}

export interface PingResult {
  viewVersion: number
  status: ClientStatus
  /** Disk replicas this owner should write from its segment memory (docs/disk-tier.md). */
  diskTasks?: DiskTask[]
}

/** Write the value at [offset, offset+length) of `segment` to `path` (disk tier, issue 6). */
export interface DiskTask {
  key: string
  version: number
  segment: string
  offset: number
  length: number
  path: string
  /** The object's CRC32C, when the writer gave one: the owner checks its bytes against it. */
  checksum?: number
}

export interface DiskTaskResult {
  key: string
  version: number
  ok: boolean
  /** CRC32C of the value written (ok). */
  checksum?: number
  /** Why the write failed (not ok). */
  code?: ErrorCodeName
  message?: string
}

export interface ServiceReadyResult {
  /** Package version of the master, for compatibility checks. */
  version: string
  /** Protocol version of mooncake.v1 the master speaks. */
  protocolVersion: number
  viewVersion: number
}

export interface MasterStats {
  capacity: number
  used: number
  keys: number
  softPinnedKeys: number
  clients: number
  segments: number
}

/**
 * A range of one segment held for one client, who places new objects in it itself and commits
 * them (BatchPutCommit) instead of asking PutStart for each [ours]. Default placement, one replica.
 */
export interface ReserveSpaceRequest {
  clientId: string
  /** Bytes wanted; the master may give less, down to minSize, so as not to crowd small segments. */
  size: number
  /** Fewest bytes that are of use (the value about to be written). @default size */
  minSize?: number
  /** The writer's host, for preferAllocInSameNode. */
  hostId?: string
  preferAllocInSameNode?: boolean
}

export interface ReserveSpaceResult {
  reservationId: number
  /** The whole range, with a write grant for all of it (if the segment uses grants). */
  memory: MemoryLocation
  /** Objects start at multiples of this from the segment's start, and take their size rounded up to it. */
  alignment: number
  /** Unix ms: commit before this; the grant ends then and the master frees what is left later. */
  expiresAt: number
}

export interface PutCommitRequest {
  clientId: string
  reservationId: number
  key: string
  /** Offset in the segment (inside the reservation, aligned). */
  offset: number
  size: number
  /** CRC32C of the whole value. */
  checksum?: number
}

export interface ReleaseSpaceRequest {
  clientId: string
  reservationId: number
}

/**
 * Every master call. MasterService implements these synchronously (single-key calls throw
 * MooncakeError); the gRPC client implements `Async<MasterCalls>`.
 */
export interface MasterCalls {
  putStart(req: PutStartRequest): PutStartResult
  putEnd(req: PutEndRequest): void
  putRevoke(req: PutRevokeRequest): void
  batchPutStart(reqs: PutStartRequest[]): ItemResult<PutStartResult>[]
  batchPutEnd(reqs: PutEndRequest[]): ItemResult<void>[]
  batchPutRevoke(reqs: PutRevokeRequest[]): ItemResult<void>[]

  reserveSpace(req: ReserveSpaceRequest): ReserveSpaceResult
  batchPutCommit(reqs: PutCommitRequest[]): ItemResult<void>[]
  releaseSpace(req: ReleaseSpaceRequest): void

  upsertStart(req: PutStartRequest): PutStartResult
  upsertEnd(req: PutEndRequest): void
  upsertRevoke(req: PutRevokeRequest): void

  getReplicaList(key: string): GetReplicaListResult
  batchGetReplicaList(keys: string[]): ItemResult<GetReplicaListResult>[]
  getReplicaListByRegex(regex: string): Map<string, GetReplicaListResult>

  existKey(key: string): boolean
  batchExistKey(keys: string[]): boolean[]

  query(key: string): ObjectInfo
  batchQuery(keys: string[]): ItemResult<ObjectInfo>[]
  queryByRegex(regex: string): ObjectInfo[]

  remove(req: RemoveRequest): void
  batchRemove(keys: string[], force?: boolean): ItemResult<void>[]
  removeByRegex(req: RemoveByRegexRequest): RemoveManyResult
  removeAll(req: RemoveAllRequest): RemoveManyResult

  mountSegment(req: MountSegmentRequest): MountSegmentResult
  reMountSegment(req: ReMountSegmentRequest): void
  /** Immediate unmount (drain=false), or begins a drain; see `drainState`. */
  unmountSegment(req: UnmountSegmentRequest): void
  getAllSegments(): SegmentInfo[]
  querySegments(name: string): SegmentUsage

  listKeys(req: ListKeysRequest): ListKeysPage
  ping(req: PingRequest): PingResult
  serviceReady(): ServiceReadyResult
  stats(): MasterStats
}

/** The same calls, asynchronous: what a remote master client offers. */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never
}

export type MasterApi = Async<MasterCalls>

/** An injectable clock: everything time-based in the master reads it. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = {now: () => Date.now()}

/** Protocol version of mooncake.v1 spoken by this build. */
export const PROTOCOL_VERSION = 1

/**
 * Mints the opaque access grant carried in a MemoryLocation, for segments that have a grant key.
 * The transfer engine's data server verifies it (src/lib/transfer/grant.ts).
 */
export type GrantMinter = (grantKeyHex: string, grant: {segment: string; offset: number; length: number; ops: 'r' | 'w' | 'rw'; expiresAt: number}) => Uint8Array
