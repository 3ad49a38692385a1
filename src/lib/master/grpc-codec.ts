/**
 * Conversions between mooncake.v1 messages (as @grpc/proto-loader produces them: camelCase,
 * longs as numbers, enums as names, defaults filled in) and the api.ts types. `decode*Request`
 * run on the master and validate; `encode*` build wire messages; `decode*` (no Request) run in
 * the client on answers from a trusted master.
 */
import type {
  ClientStatus,
  DiskLocation,
  GetReplicaListResult,
  ItemResult,
  MemoryLocation,
  MountSegmentRequest,
  ObjectInfo,
  PutCommitRequest,
  PutEndRequest,
  PutRevokeRequest,
  PutStartRequest,
  PutStartResult,
  ReMountSegmentRequest,
  ReleaseSpaceRequest,
  ReplicaDescriptor,
  ReplicaInfo,
  ReplicaStatus,
  ReplicaTarget,
  ReplicaType,
  ReplicateConfig,
  ReserveSpaceRequest,
  ReserveSpaceResult,
  SegmentDescriptor,
  SegmentInfo,
  SegmentStatus,
  UnmountSegmentRequest,
} from './api.js'
import {type ErrorCodeName, isErrorCodeName, MooncakeError} from '../errors.js'
import type * as w from '../proto/generated/index.js'
import {errorValue} from './grpc-errors.js'
import {batch, invalid, key, required, text, u64} from './grpc-validate.js'

// --- enums -----------------------------------------------------------------------------------

const REPLICA_TYPE = {memory: 'REPLICA_TYPE_MEMORY', disk: 'REPLICA_TYPE_DISK'} as const
const REPLICA_STATUS = {
  PROCESSING: 'REPLICA_STATUS_PROCESSING',
  COMPLETE: 'REPLICA_STATUS_COMPLETE',
  REMOVED: 'REPLICA_STATUS_REMOVED',
  FAILED: 'REPLICA_STATUS_FAILED',
} as const
const REPLICA_TARGET = {all: 'REPLICA_TARGET_ALL', memory: 'REPLICA_TARGET_MEMORY', disk: 'REPLICA_TARGET_DISK'} as const
const SEGMENT_STATUS = {
  OK: 'SEGMENT_STATUS_OK',
  DRAINING: 'SEGMENT_STATUS_DRAINING',
  UNMOUNTING: 'SEGMENT_STATUS_UNMOUNTING',
} as const
const CLIENT_STATUS = {
  OK: 'CLIENT_STATUS_OK',
  NEED_REMOUNT: 'CLIENT_STATUS_NEED_REMOUNT',
  UNMOUNTED: 'CLIENT_STATUS_UNMOUNTED',
} as const

function reverse<K extends string, V extends string>(map: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(map).map(([k, v]) => [v as V, k as K]))
}
const REPLICA_TYPE_OF = reverse(REPLICA_TYPE)
const REPLICA_STATUS_OF = reverse(REPLICA_STATUS)
const REPLICA_TARGET_OF = reverse(REPLICA_TARGET)
const SEGMENT_STATUS_OF = reverse(SEGMENT_STATUS)
const CLIENT_STATUS_OF = reverse(CLIENT_STATUS)

// Unknown values in answers come from a newer master; map them to the most cautious meaning.
const replicaType = (v: unknown): ReplicaType => REPLICA_TYPE_OF.get(v as never) ?? 'memory'
const replicaStatus = (v: unknown): ReplicaStatus => REPLICA_STATUS_OF.get(v as never) ?? 'FAILED'
const segmentStatus = (v: unknown): SegmentStatus => SEGMENT_STATUS_OF.get(v as never) ?? 'UNMOUNTING'
export const decodeClientStatus = (v: unknown): ClientStatus => CLIENT_STATUS_OF.get(v as never) ?? 'NEED_REMOUNT'
export const encodeClientStatus = (s: ClientStatus): w.ClientStatus => CLIENT_STATUS[s]

function targetRequest(v: unknown, field: string): ReplicaTarget | undefined {
  if (v === 'REPLICA_TARGET_UNSPECIFIED' || v === 0 || v === undefined) return undefined
  const target = REPLICA_TARGET_OF.get(v as never)
  if (!target) throw invalid(`${field} is not a known ReplicaTarget (got ${String(v)})`)
  return target
}

const encodeTarget = (t: ReplicaTarget | undefined): w.ReplicaTarget =>
  t === undefined ? 'REPLICA_TARGET_UNSPECIFIED' : REPLICA_TARGET[t]

const opt = (s: string): string | undefined => (s === '' ? undefined : s)

// --- items -------------------------------------------------------------------------------------

export function encodeItemError(code: ErrorCodeName, message: string): w.ItemError {
  return {code, message, value: errorValue(code)}
}

/** A batch item as sent: the value or the error. */
interface WireItemIn<V> {
  value?: V
  error?: w.ItemError
}

/** A batch item as received: `result` names the member of the oneof that is set. */
interface WireItem<V> {
  result?: string
  value?: V | null
  ok?: unknown
  error?: w.ItemError__Output | null
}

export function encodeItems<T, V>(items: ItemResult<T>[], encode: (value: T) => V): {items: WireItemIn<V>[]} {
  return {
    items: items.map((item) =>
      item.ok ? {value: encode(item.value)} : {error: encodeItemError(item.code, item.message)},
    ),
  }
}

export function encodeVoidItems(items: ItemResult<void>[]): w.BatchVoidResponse {
  return {items: items.map((item) => (item.ok ? {ok: {}} : {error: encodeItemError(item.code, item.message)}))}
}

export function decodeItem<V, T>(item: WireItem<V>, decode: (value: V) => T): ItemResult<T> {
  if (item.result === 'error' && item.error) {
    const code = isErrorCodeName(item.error.code) ? item.error.code : 'INTERNAL_ERROR'
    return {ok: false, code, message: item.error.message}
  }
  if (item.result === 'value' && item.value) return {ok: true, value: decode(item.value)}
  if (item.result === 'ok') return {ok: true, value: undefined as T}
  return {ok: false, code: 'INTERNAL_ERROR', message: 'the master sent an empty batch item'}
}

export function decodeVoidItems(res: w.BatchVoidResponse__Output): ItemResult<void>[] {
  return res.items.map((item) => decodeItem<never, void>(item, () => undefined))
}

export function itemError(err: unknown): ItemResult<never> {
  const e = err instanceof MooncakeError ? err : new MooncakeError('INTERNAL_ERROR', String(err))
  return {ok: false, code: e.code, message: e.message}
}

// --- replicas ------------------------------------------------------------------------------------

function encodeMemory(m: MemoryLocation): w.MemoryLocation {
  return {
    segment: m.segment,
    endpoints: m.endpoints,
    hostId: m.hostId,
    offset: m.offset,
    length: m.length,
    grant: m.grant ? Buffer.from(m.grant.buffer, m.grant.byteOffset, m.grant.byteLength) : undefined,
  }
}

function decodeMemory(m: w.MemoryLocation__Output): MemoryLocation {
  const out: MemoryLocation = {
    segment: m.segment,
    endpoints: m.endpoints,
    hostId: m.hostId,
    offset: m.offset,
    length: m.length,
  }
  if (m.grant && m.grant.length > 0) out.grant = m.grant
  return out
}

const encodeDisk = (d: DiskLocation): w.DiskLocation => ({path: d.path, size: d.size})
const decodeDisk = (d: w.DiskLocation__Output): DiskLocation => ({path: d.path, size: d.size})

export function encodeReplica(r: ReplicaDescriptor): w.ReplicaDescriptor {
  const out: w.ReplicaDescriptor = {id: r.id, type: REPLICA_TYPE[r.type], status: REPLICA_STATUS[r.status]}
  if (r.memory) out.memory = encodeMemory(r.memory)
  else if (r.disk) out.disk = encodeDisk(r.disk)
  return out
}

export function decodeReplica(r: w.ReplicaDescriptor__Output): ReplicaDescriptor {
  const out: ReplicaDescriptor = {id: r.id, type: replicaType(r.type), status: replicaStatus(r.status)}
  if (r.memory) out.memory = decodeMemory(r.memory)
  if (r.disk) out.disk = decodeDisk(r.disk)
  return out
}

// --- put -----------------------------------------------------------------------------------------

function encodeConfig(c: ReplicateConfig | undefined): w.ReplicateConfig | undefined {
  if (!c) return undefined
  const out: w.ReplicateConfig = {
    withSoftPin: c.withSoftPin ?? false,
    preferredSegments: c.preferredSegments ?? [],
    preferredSegment: c.preferredSegment ?? '',
    preferAllocInSameNode: c.preferAllocInSameNode ?? false,
  }
  if (c.replicaNum !== undefined) out.replicaNum = c.replicaNum
  return out
}

function decodeConfigRequest(c: w.ReplicateConfig__Output | null | undefined): ReplicateConfig | undefined {
  if (!c) return undefined
  const out: ReplicateConfig = {
    withSoftPin: c.withSoftPin,
    preferredSegments: batch<string>(c.preferredSegments, 'config.preferredSegments').map((s) =>
      text(s, 'config.preferredSegments[]'),
    ),
    preferAllocInSameNode: c.preferAllocInSameNode,
  }
  if (c.replicaNum !== undefined && c.replicaNum !== null) out.replicaNum = c.replicaNum
  const single = text(c.preferredSegment, 'config.preferredSegment')
  if (single !== '') out.preferredSegment = single
  return out
}

export function encodePutStartRequest(r: PutStartRequest): w.PutStartRequest {
  return {
    clientId: r.clientId,
    requestId: r.requestId,
    key: r.key,
    size: r.size,
    config: encodeConfig(r.config),
    hostId: r.hostId ?? '',
  }
}

/** Per item of a batch, keys are left to the service so one bad key fails only its item. */
export function decodePutStartRequest(r: w.PutStartRequest__Output, single = true): PutStartRequest {
  const out: PutStartRequest = {
    clientId: text(r.clientId, 'clientId'),
    requestId: text(r.requestId, 'requestId'),
    key: single ? key(r.key) : text(r.key, 'key', Infinity),
    size: u64(r.size, 'size'),
  }
  const config = decodeConfigRequest(r.config)
  if (config) out.config = config
  const hostId = opt(text(r.hostId, 'hostId'))
  if (hostId !== undefined) out.hostId = hostId
  return out
}

export function encodePutStartResult(r: PutStartResult): w.PutStartResponse {
  return {replicas: r.replicas.map(encodeReplica), version: r.version, requestedReplicas: r.requestedReplicas}
}

export function decodePutStartResult(r: w.PutStartResponse__Output): PutStartResult {
  return {replicas: r.replicas.map(decodeReplica), version: r.version, requestedReplicas: r.requestedReplicas}
}

export function encodePutEndRequest(r: PutEndRequest): w.PutEndRequest {
  const out: w.PutEndRequest = {clientId: r.clientId, key: r.key, target: encodeTarget(r.target)}
  if (r.checksum !== undefined) out.checksum = r.checksum
  return out
}

export function decodePutEndRequest(r: w.PutEndRequest__Output, single = true): PutEndRequest {
  const out: PutEndRequest = {
    clientId: text(r.clientId, 'clientId'),
    key: single ? key(r.key) : text(r.key, 'key', Infinity),
  }
  if (r.checksum !== undefined && r.checksum !== null) out.checksum = r.checksum
  const target = targetRequest(r.target, 'target')
  if (target) out.target = target
  return out
}

export function encodeReserveSpaceRequest(r: ReserveSpaceRequest): w.ReserveSpaceRequest {
  return {clientId: r.clientId, size: r.size, hostId: r.hostId ?? '', preferAllocInSameNode: r.preferAllocInSameNode === true, minSize: r.minSize ?? 0}
}

export function decodeReserveSpaceRequest(r: w.ReserveSpaceRequest__Output): ReserveSpaceRequest {
  const out: ReserveSpaceRequest = {clientId: text(r.clientId, 'clientId'), size: u64(r.size, 'size')}
  if (r.hostId !== '') out.hostId = text(r.hostId, 'hostId')
  if (r.preferAllocInSameNode) out.preferAllocInSameNode = true
  const min = u64(r.minSize, 'minSize')
  if (min > 0) out.minSize = min
  return out
}

export function encodeReserveSpaceResult(r: ReserveSpaceResult): w.ReserveSpaceResponse {
  return {reservationId: r.reservationId, memory: encodeMemory(r.memory), alignment: r.alignment, expiresAt: r.expiresAt}
}

export function decodeReserveSpaceResult(r: w.ReserveSpaceResponse__Output): ReserveSpaceResult {
  return {reservationId: r.reservationId, memory: decodeMemory(required(r.memory, 'memory')), alignment: r.alignment, expiresAt: r.expiresAt}
}

export function encodePutCommitRequest(r: PutCommitRequest): w.PutCommitRequest {
  return {clientId: r.clientId, reservationId: r.reservationId, key: r.key, offset: r.offset, size: r.size, checksum: r.checksum}
}

export function decodePutCommitRequest(r: w.PutCommitRequest__Output): PutCommitRequest {
  const out: PutCommitRequest = {
    clientId: text(r.clientId, 'clientId'),
    reservationId: u64(r.reservationId, 'reservationId'),
    key: text(r.key, 'key', Infinity),
    offset: u64(r.offset, 'offset'),
    size: u64(r.size, 'size'),
  }
  if (r.checksum !== undefined && r.checksum !== null) out.checksum = r.checksum
  return out
}

export function decodeReleaseSpaceRequest(r: w.ReleaseSpaceRequest__Output): ReleaseSpaceRequest {
  return {clientId: text(r.clientId, 'clientId'), reservationId: u64(r.reservationId, 'reservationId')}
}

export function encodePutRevokeRequest(r: PutRevokeRequest): w.PutRevokeRequest {
  return {clientId: r.clientId, key: r.key, target: encodeTarget(r.target)}
}

export function decodePutRevokeRequest(r: w.PutRevokeRequest__Output, single = true): PutRevokeRequest {
  const out: PutRevokeRequest = {
    clientId: text(r.clientId, 'clientId'),
    key: single ? key(r.key) : text(r.key, 'key', Infinity),
  }
  const target = targetRequest(r.target, 'target')
  if (target) out.target = target
  return out
}

// --- reads -----------------------------------------------------------------------------------------

export function encodeReplicaList(r: GetReplicaListResult): w.GetReplicaListResponse {
  const out: w.GetReplicaListResponse = {
    replicas: r.replicas.map(encodeReplica),
    size: r.size,
    version: r.version,
    leaseTtlMs: r.leaseTtlMs,
    leaseExpiresAt: r.leaseExpiresAt,
  }
  if (r.checksum !== undefined) out.checksum = r.checksum
  return out
}

export function decodeReplicaList(r: w.GetReplicaListResponse__Output): GetReplicaListResult {
  const out: GetReplicaListResult = {
    replicas: r.replicas.map(decodeReplica),
    size: r.size,
    version: r.version,
    leaseTtlMs: r.leaseTtlMs,
    leaseExpiresAt: r.leaseExpiresAt,
  }
  if (r.checksum !== undefined && r.checksum !== null) out.checksum = r.checksum
  return out
}

export function decodeKeysRequest(r: w.KeysRequest__Output): string[] {
  return batch<string>(r.keys, 'keys')
}

function encodeReplicaInfo(r: ReplicaInfo): w.ReplicaInfo {
  return {
    type: REPLICA_TYPE[r.type],
    status: REPLICA_STATUS[r.status],
    segment: r.segment ?? '',
    endpoint: r.endpoint ?? '',
    path: r.path ?? '',
  }
}

function decodeReplicaInfo(r: w.ReplicaInfo__Output): ReplicaInfo {
  const out: ReplicaInfo = {type: replicaType(r.type), status: replicaStatus(r.status)}
  if (r.segment) out.segment = r.segment
  if (r.endpoint) out.endpoint = r.endpoint
  if (r.path) out.path = r.path
  return out
}

export function encodeObjectInfo(o: ObjectInfo): w.ObjectInfo {
  const out: w.ObjectInfo = {
    key: o.key,
    size: o.size,
    version: o.version,
    replicas: o.replicas.map(encodeReplicaInfo),
    leaseExpiresAt: o.leaseExpiresAt,
  }
  if (o.checksum !== undefined) out.checksum = o.checksum
  if (o.softPinExpiresAt !== null) out.softPinExpiresAt = o.softPinExpiresAt
  return out
}

export function decodeObjectInfo(o: w.ObjectInfo__Output): ObjectInfo {
  const out: ObjectInfo = {
    key: o.key,
    size: o.size,
    version: o.version,
    replicas: o.replicas.map(decodeReplicaInfo),
    leaseExpiresAt: o.leaseExpiresAt,
    softPinExpiresAt: o.softPinExpiresAt ?? null,
  }
  if (o.checksum !== undefined && o.checksum !== null) out.checksum = o.checksum
  return out
}

// --- segments --------------------------------------------------------------------------------------

export function encodeSegment(s: SegmentDescriptor): w.SegmentDescriptor {
  return {
    id: s.id,
    name: s.name,
    endpoints: s.endpoints,
    size: s.size,
    hostId: s.hostId,
    grantKey: s.grantKey ?? '',
  }
}

function decodeSegmentRequest(s: w.SegmentDescriptor__Output | null | undefined, field: string): SegmentDescriptor {
  const seg = required(s, field)
  const out: SegmentDescriptor = {
    id: text(seg.id, `${field}.id`),
    name: text(seg.name, `${field}.name`),
    endpoints: batch<string>(seg.endpoints, `${field}.endpoints`).map((e) => text(e, `${field}.endpoints[]`)),
    size: u64(seg.size, `${field}.size`),
    hostId: text(seg.hostId, `${field}.hostId`),
  }
  const grantKey = opt(text(seg.grantKey, `${field}.grantKey`))
  if (grantKey !== undefined) out.grantKey = grantKey
  return out
}

export function decodeMountSegmentRequest(r: w.MountSegmentRequest__Output): MountSegmentRequest {
  return {clientId: text(r.clientId, 'clientId'), segment: decodeSegmentRequest(r.segment, 'segment')}
}

export function decodeReMountSegmentRequest(r: w.ReMountSegmentRequest__Output): ReMountSegmentRequest {
  return {
    clientId: text(r.clientId, 'clientId'),
    segments: batch<w.SegmentDescriptor__Output>(r.segments, 'segments').map((s) => decodeSegmentRequest(s, 'segments[]')),
  }
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000

export function encodeUnmountSegmentRequest(r: UnmountSegmentRequest): w.UnmountSegmentRequest {
  return {name: r.name, clientId: r.clientId ?? '', drain: r.drain ?? false, drainTimeoutMs: r.drainTimeoutMs ?? 0}
}

export function decodeUnmountSegmentRequest(r: w.UnmountSegmentRequest__Output): UnmountSegmentRequest {
  const out: UnmountSegmentRequest = {name: text(r.name, 'name')}
  const clientId = opt(text(r.clientId, 'clientId'))
  if (clientId !== undefined) out.clientId = clientId
  if (r.drain) {
    out.drain = true
    out.drainTimeoutMs = u64(r.drainTimeoutMs, 'drainTimeoutMs') || DEFAULT_DRAIN_TIMEOUT_MS
  }
  return out
}

export function encodeSegmentInfo(s: SegmentInfo): w.SegmentInfo {
  return {
    name: s.name,
    id: s.id,
    clientId: s.clientId,
    endpoints: s.endpoints,
    hostId: s.hostId,
    capacity: s.capacity,
    used: s.used,
    status: SEGMENT_STATUS[s.status],
    lastPingAt: s.lastPingAt,
    fragmentation: s.fragmentation,
  }
}

export function decodeSegmentInfo(s: w.SegmentInfo__Output): SegmentInfo {
  return {
    name: s.name,
    id: s.id,
    clientId: s.clientId,
    endpoints: s.endpoints,
    hostId: s.hostId,
    capacity: s.capacity,
    used: s.used,
    status: segmentStatus(s.status),
    lastPingAt: s.lastPingAt,
    fragmentation: s.fragmentation,
  }
}

// --- listing -----------------------------------------------------------------------------------------

/** Keys per streamed page when the caller does not say. */
export const DEFAULT_KEY_PAGE = 1000
export const MAX_KEY_PAGE = 10_000

export interface KeyStreamRequest {
  prefix?: string
  regex?: string
  after?: string
  /** Keys in total; Infinity = all. */
  limit: number
  pageSize: number
}

export function decodeGetAllKeysRequest(r: w.GetAllKeysRequest__Output): KeyStreamRequest {
  const out: KeyStreamRequest = {
    limit: u64(r.limit, 'limit') || Infinity,
    pageSize: Math.min(r.pageSize || DEFAULT_KEY_PAGE, MAX_KEY_PAGE),
  }
  const prefix = opt(text(r.prefix, 'prefix'))
  if (prefix !== undefined) out.prefix = prefix
  const regex = opt(text(r.regex, 'regex'))
  if (regex !== undefined) out.regex = regex
  const after = opt(text(r.after, 'after'))
  if (after !== undefined) out.after = after
  return out
}
