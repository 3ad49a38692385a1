/**
 * The wire format of the hot batch rpcs (BatchPutStart, BatchPutEnd, BatchPutCommit; on the client also the
 * answers of GetReplicaList and BatchGetReplicaList) read and written straight
 * from and into the api.ts types, on both sides: the master decodes (and validates, exactly as
 * grpc-codec.ts decodePutStartRequest / decodePutEndRequest would) into PutStartRequest[] and
 * encodes ItemResult[] without the proto-loader-shaped objects of the generic path, and the
 * client does the reverse. About half of the per-key allocations of a batch put go away.
 *
 * Same bytes as the compiled codec (fast-codec.ts) for the same message, same decoded values, same
 * INVALID_PARAMS messages: test/unit/proto-batch-wire.test.ts checks the field numbers below against
 * mooncake.proto and compares both paths on random messages. Any other message goes the generic way.
 */
import type {
  DiskLocation,
  GetReplicaListResult,
  ItemResult,
  MemoryLocation,
  PutCommitRequest,
  PutEndRequest,
  PutStartRequest,
  PutStartResult,
  ReplicaDescriptor,
  ReplicaStatus,
  ReplicaTarget,
  ReplicateConfig,
} from './api.js'
import {type ErrorCodeName, isErrorCodeName, MooncakeError} from '../errors.js'
import * as wire from '../proto/wire.js'
import {errorValue} from './grpc-errors.js'
import {batch, invalid, MALFORMED, type Malformed, text, u64} from './grpc-validate.js'

/** Field numbers and enum values of mooncake.proto used here (checked against the .proto by the tests). */
export const WIRE = {
  PutStartRequest: {clientId: 1, requestId: 2, key: 3, size: 4, config: 5, hostId: 6},
  ReplicateConfig: {replicaNum: 1, withSoftPin: 2, preferredSegments: 3, preferredSegment: 4, preferAllocInSameNode: 5},
  PutEndRequest: {clientId: 1, key: 2, checksum: 3, target: 4},
  PutCommitRequest: {clientId: 1, reservationId: 2, key: 3, offset: 4, size: 5, checksum: 6},
  BatchPutStartRequest: {items: 1},
  BatchPutEndRequest: {items: 1},
  BatchPutCommitRequest: {items: 1},
  BatchPutStartResponse: {items: 1},
  PutStartItem: {value: 1, error: 2},
  PutStartResponse: {replicas: 1, version: 2, requestedReplicas: 3},
  GetReplicaListResponse: {replicas: 1, size: 2, version: 3, checksum: 4, leaseTtlMs: 5, leaseExpiresAt: 6},
  GetReplicaListItem: {value: 1, error: 2},
  BatchGetReplicaListResponse: {items: 1},
  ReplicaDescriptor: {id: 1, type: 2, status: 3, memory: 4, disk: 5},
  MemoryLocation: {segment: 1, endpoints: 2, hostId: 3, offset: 4, length: 5, grant: 6},
  DiskLocation: {path: 1, size: 2},
  ItemError: {code: 1, message: 2, value: 3},
  BatchVoidResponse: {items: 1},
  VoidItem: {ok: 1, error: 2},
  ReplicaType: {REPLICA_TYPE_MEMORY: 1, REPLICA_TYPE_DISK: 2},
  ReplicaStatus: {REPLICA_STATUS_PROCESSING: 1, REPLICA_STATUS_COMPLETE: 2, REPLICA_STATUS_REMOVED: 3, REPLICA_STATUS_FAILED: 4},
  ReplicaTarget: {REPLICA_TARGET_ALL: 1, REPLICA_TARGET_MEMORY: 2, REPLICA_TARGET_DISK: 3},
} as const

// Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
const LD = (n: number) => (n << 3) | 2
const VI = (n: number) => n << 3
const F = WIRE

const STATUS_VALUE: Record<ReplicaStatus, number> = {PROCESSING: 1, COMPLETE: 2, REMOVED: 3, FAILED: 4}
const STATUS_OF: readonly ReplicaStatus[] = ['FAILED', 'PROCESSING', 'COMPLETE', 'REMOVED', 'FAILED']
const TARGET_VALUE: Record<ReplicaTarget, number> = {all: 1, memory: 2, disk: 3}
const TARGET_OF: readonly (ReplicaTarget | undefined)[] = [undefined, 'all', 'memory', 'disk']

/** A batch request decoded into api.ts types (the handler passes `items` to the service as they are). */
export class DecodedBatch<T> {
  constructor(readonly items: T[]) {}
}

/** A batch answer the method's responseSerialize encodes straight from the ItemResults. */
export class BatchResults<T> {
  constructor(readonly items: ItemResult<T>[]) {}
}

function malformed(err: unknown): Malformed {
  if (err instanceof wire.InvalidUtf8) return {[MALFORMED]: 'a string field is not valid UTF-8'}
  return {[MALFORMED]: `malformed request: ${err instanceof Error ? err.message : String(err)}`}
}

/** A request whose fields decode but do not validate: the first item's reason, as the handler would throw it. */
function refused(reason: string): Malformed {
  return {[MALFORMED]: reason}
}

const reasonOf = (err: unknown) => (err instanceof MooncakeError ? err.message : String(err))

// --- both sides: the shapes every message shares -----------------------------------------------

/**
 * The number of the next field of the message ending at `end` that the caller reads (1 to
 * `last`: every message here numbers its fields from 1 without gaps), or 0 at its end. Any other
 * field is skipped, as an unknown field must be.
 */
function field(end: number, last: number): number {
  while (wire.pos() < end) {
    const t = wire.r32()
    const n = t >>> 3
    if (n >= 1 && n <= last) return n
    wire.skip(t & 7)
  }
  return 0
}

/** The items (field 1) of the batch message in `buf`, each read by `readItem(end, arg)`. */
function readRepeated<T, A>(buf: Buffer, strictUtf8: boolean, readItem: (end: number, arg: A) => T, arg: A): T[] {
  const items: T[] = []
  wire.read(buf, strictUtf8)
  try {
    const end = buf.length
    while (field(end, 1) !== 0) items.push(readItem(wire.rlen(), arg))
  } finally {
    wire.done()
  }
  return items
}

/** An embedded message: its tag, then what `write(v)` writes, behind its length. */
function nested<T>(tag: number, write: (v: T) => void, v: T): void {
  wire.u32(tag)
  const st = wire.ldStart()
  write(v)
  wire.ldEnd(st)
}

/** A batch message of `items` (field 1), each written by `write`. */
function writeRepeated<T>(tag: number, items: readonly T[], write: (v: T) => void): Buffer {
  wire.begin()
  for (const item of items) nested(tag, write, item)
  return wire.finish()
}

/** A uint64 field, left out at its default (0). */
function optU64(tag: number, v: number): void {
  if (v === 0) return
  wire.u32(tag)
  wire.u64(v)
}

/** A string field, left out at its default (''); the client's odd values as String() makes them. */
function optStr(tag: number, v: unknown): void {
  if (v === undefined || v === null || v === '') return
  wire.u32(tag)
  wire.str(typeof v === 'string' ? v : String(v))
}

/** A repeated string field: every element, empty ones too. */
function strs(tag: number, list: readonly unknown[]): void {
  for (const s of list) {
    wire.u32(tag)
    wire.str(typeof s === 'string' ? s : String(s))
  }
}

/** A bool field, left out at its default (false). */
function optTrue(tag: number, v: unknown): void {
  if (!v) return
  wire.u32(tag)
  wire.u32(1)
}

// --- master: requests ----------------------------------------------------------------------------

interface RawConfig {
  replicaNum: number | undefined
  withSoftPin: boolean
  preferredSegments: string[]
  preferredSegment: string
  preferAllocInSameNode: boolean
}

function readConfig(end: number): RawConfig {
  const c: RawConfig = {replicaNum: undefined, withSoftPin: false, preferredSegments: [], preferredSegment: '', preferAllocInSameNode: false}
  for (let f: number; (f = field(end, F.ReplicateConfig.preferAllocInSameNode)) !== 0; ) {
    switch (f) {
      case F.ReplicateConfig.replicaNum:
        c.replicaNum = wire.r32()
        break
      case F.ReplicateConfig.withSoftPin:
        c.withSoftPin = wire.r32() !== 0
        break
      case F.ReplicateConfig.preferredSegments:
        c.preferredSegments.push(wire.rstr())
        break
      case F.ReplicateConfig.preferredSegment:
        c.preferredSegment = wire.rstr()
        break
      case F.ReplicateConfig.preferAllocInSameNode:
        c.preferAllocInSameNode = wire.r32() !== 0
    }
  }
  return c
}

/** grpc-codec.ts decodeConfigRequest on the raw fields. */
function validConfig(c: RawConfig): ReplicateConfig {
  const out: ReplicateConfig = {
    withSoftPin: c.withSoftPin,
    preferredSegments: batch<string>(c.preferredSegments, 'config.preferredSegments').map((s) => text(s, 'config.preferredSegments[]')),
    preferAllocInSameNode: c.preferAllocInSameNode,
  }
  if (c.replicaNum !== undefined) out.replicaNum = c.replicaNum
  const single = text(c.preferredSegment, 'config.preferredSegment')
  if (single !== '') out.preferredSegment = single
  return out
}

// The first item that does not validate (its reason), while decoding goes on: bytes that do not
// decode at all take precedence, as they did when validation ran after decoding.
let firstInvalid: string | undefined

/** `out` once `check(out, a, b)` (which completes it) has run, unless an earlier item failed; its failure is kept. */
function validated<O, A, B>(out: O, check: (out: O, a: A, b: B) => void, a: A, b: B): O {
  if (firstInvalid !== undefined) return out
  try {
    check(out, a, b)
  } catch (err) {
    firstInvalid = reasonOf(err)
  }
  return out
}

function readPutStart(end: number): PutStartRequest {
  let clientId = ''
  let requestId = ''
  let key = ''
  let size = 0
  let config: RawConfig | null = null
  let hostId = ''
  for (let f: number; (f = field(end, F.PutStartRequest.hostId)) !== 0; ) {
    switch (f) {
      case F.PutStartRequest.clientId:
        clientId = wire.rstrRepeated()
        break
      case F.PutStartRequest.requestId:
        requestId = wire.rstr()
        break
      case F.PutStartRequest.key:
        key = wire.rstr()
        break
      case F.PutStartRequest.size:
        size = wire.r64()
        break
      case F.PutStartRequest.config:
        config = readConfig(wire.rlen())
        break
      case F.PutStartRequest.hostId:
        hostId = wire.rstr()
    }
  }
  return validated({clientId, requestId, key, size}, checkPutStart, config, hostId)
}

/** decodePutStartRequest(r, false): keys are left to the service (one bad key fails its item). */
function checkPutStart(out: PutStartRequest, config: RawConfig | null, hostId: string): void {
  text(out.clientId, 'clientId')
  text(out.requestId, 'requestId')
  u64(out.size, 'size')
  if (config !== null) out.config = validConfig(config)
  if (hostId !== '') out.hostId = text(hostId, 'hostId')
}

function readPutEnd(end: number): PutEndRequest {
  let clientId = ''
  let key = ''
  let checksum: number | undefined
  let target = 0
  for (let f: number; (f = field(end, F.PutEndRequest.target)) !== 0; ) {
    switch (f) {
      case F.PutEndRequest.clientId:
        clientId = wire.rstrRepeated()
        break
      case F.PutEndRequest.key:
        key = wire.rstr()
        break
      case F.PutEndRequest.checksum:
        checksum = wire.r32()
        break
      case F.PutEndRequest.target:
        target = wire.r32() | 0
    }
  }
  const out: PutEndRequest = {clientId, key}
  if (checksum !== undefined) out.checksum = checksum
  return validated(out, checkPutEnd, target, undefined)
}

function checkPutEnd(out: PutEndRequest, target: number): void {
  text(out.clientId, 'clientId')
  if (target !== 0) {
    const named = target > 0 ? TARGET_OF[target] : undefined
    if (named === undefined) throw invalid(`target is not a known ReplicaTarget (got ${target})`)
    out.target = named
  }
}

function readPutCommit(end: number): PutCommitRequest {
  let clientId = ''
  let reservationId = 0
  let key = ''
  let offset = 0
  let size = 0
  let checksum: number | undefined
  for (let f: number; (f = field(end, F.PutCommitRequest.checksum)) !== 0; ) {
    switch (f) {
      case F.PutCommitRequest.clientId:
        clientId = wire.rstrRepeated()
        break
      case F.PutCommitRequest.reservationId:
        reservationId = wire.r64()
        break
      case F.PutCommitRequest.key:
        key = wire.rstr()
        break
      case F.PutCommitRequest.offset:
        offset = wire.r64()
        break
      case F.PutCommitRequest.size:
        size = wire.r64()
        break
      case F.PutCommitRequest.checksum:
        checksum = wire.r32()
    }
  }
  const out: PutCommitRequest = {clientId, reservationId, key, offset, size}
  if (checksum !== undefined) out.checksum = checksum
  return validated(out, checkPutCommit, undefined, undefined)
}

/** grpc-codec.ts decodePutCommitRequest: keys are left to the service. */
function checkPutCommit(out: PutCommitRequest): void {
  text(out.clientId, 'clientId')
  u64(out.reservationId, 'reservationId')
  u64(out.offset, 'offset')
  u64(out.size, 'size')
}

function decodeBatch<T>(buf: Buffer, readItem: (end: number) => T): DecodedBatch<T> | Malformed {
  let items: T[]
  firstInvalid = undefined
  try {
    items = readRepeated(buf, true, readItem, undefined)
  } catch (err) {
    return malformed(err)
  }
  try {
    batch(items, 'items')
  } catch (err) {
    return refused(reasonOf(err))
  }
  return firstInvalid === undefined ? new DecodedBatch(items) : refused(firstInvalid)
}

/** The master's BatchPutStart requestDeserialize: validated PutStartRequests, or why not. */
export function decodeBatchPutStartRequest(buf: Buffer): DecodedBatch<PutStartRequest> | Malformed {
  return decodeBatch(buf, readPutStart)
}

/** The master's BatchPutEnd requestDeserialize: validated PutEndRequests, or why not. */
export function decodeBatchPutEndRequest(buf: Buffer): DecodedBatch<PutEndRequest> | Malformed {
  return decodeBatch(buf, readPutEnd)
}

/** The master's BatchPutCommit requestDeserialize: validated PutCommitRequests, or why not. */
export function decodeBatchPutCommitRequest(buf: Buffer): DecodedBatch<PutCommitRequest> | Malformed {
  return decodeBatch(buf, readPutCommit)
}

// --- master: answers -------------------------------------------------------------------------------

function writeItemError(e: {code: ErrorCodeName; message: string}): void {
  wire.u32(LD(F.ItemError.code))
  wire.str(e.code)
  optStr(LD(F.ItemError.message), e.message)
  const value = errorValue(e.code) | 0
  if (value !== 0) {
    wire.u32(VI(F.ItemError.value))
    wire.s32(value)
  }
}

/**
 * Encoded fields 1-3 of a MemoryLocation (segment, endpoints, host), which every replica on a
 * segment shares, by segment name: checked against the strings at each use, so a remount with
 * other endpoints is never answered with stale ones.
 */
interface SegmentPrefix {
  endpoints: string[]
  hostId: string
  bytes: Buffer
}
const prefixes = new Map<string, SegmentPrefix>()
const MAX_PREFIXES = 4096

function samePrefix(p: SegmentPrefix, m: MemoryLocation): boolean {
  if (p.hostId !== m.hostId) return false
  const a = p.endpoints
  const b = m.endpoints
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function writeMemory(m: MemoryLocation): void {
  const cached = prefixes.get(m.segment)
  if (cached !== undefined && samePrefix(cached, m)) wire.raw(cached.bytes)
  else {
    const from = wire.mark()
    optStr(LD(F.MemoryLocation.segment), m.segment)
    strs(LD(F.MemoryLocation.endpoints), m.endpoints)
    optStr(LD(F.MemoryLocation.hostId), m.hostId)
    if (prefixes.size >= MAX_PREFIXES) prefixes.clear()
    prefixes.set(m.segment, {endpoints: m.endpoints.slice(), hostId: m.hostId, bytes: wire.copy(from)})
  }
  optU64(VI(F.MemoryLocation.offset), m.offset)
  optU64(VI(F.MemoryLocation.length), m.length)
  if (m.grant !== undefined && m.grant.length !== 0) {
    wire.u32(LD(F.MemoryLocation.grant))
    wire.bytes(m.grant)
  }
}

function writeDisk(d: DiskLocation): void {
  optStr(LD(F.DiskLocation.path), d.path)
  optU64(VI(F.DiskLocation.size), d.size)
}

function writeReplica(r: ReplicaDescriptor): void {
  optU64(VI(F.ReplicaDescriptor.id), r.id)
  wire.u32(VI(F.ReplicaDescriptor.type))
  wire.u32(r.type === 'disk' ? F.ReplicaType.REPLICA_TYPE_DISK : F.ReplicaType.REPLICA_TYPE_MEMORY)
  wire.u32(VI(F.ReplicaDescriptor.status))
  wire.u32(STATUS_VALUE[r.status])
  if (r.memory) nested(LD(F.ReplicaDescriptor.memory), writeMemory, r.memory)
  else if (r.disk) nested(LD(F.ReplicaDescriptor.disk), writeDisk, r.disk)
}

function writePutStartResult(r: PutStartResult): void {
  for (const replica of r.replicas) nested(LD(F.PutStartResponse.replicas), writeReplica, replica)
  optU64(VI(F.PutStartResponse.version), r.version)
  if ((r.requestedReplicas | 0) !== 0) {
    wire.u32(VI(F.PutStartResponse.requestedReplicas))
    wire.u32(r.requestedReplicas >>> 0)
  }
}

function writePutStartItem(item: ItemResult<PutStartResult>): void {
  if (item.ok) nested(LD(F.PutStartItem.value), writePutStartResult, item.value)
  else nested(LD(F.PutStartItem.error), writeItemError, item)
}

/** BatchPutStartResponse bytes of the service's results. */
export function encodeBatchPutStartResults(items: ItemResult<PutStartResult>[]): Buffer {
  return writeRepeated(LD(F.BatchPutStartResponse.items), items, writePutStartItem)
}

const OK_ITEM = Buffer.from([LD(F.BatchVoidResponse.items), 2, LD(F.VoidItem.ok), 0])

function writeVoidFailure(item: {code: ErrorCodeName; message: string}): void {
  nested(LD(F.VoidItem.error), writeItemError, item)
}

/** BatchVoidResponse bytes of the service's results. */
export function encodeBatchVoidResults(items: ItemResult<void>[]): Buffer {
  wire.begin()
  for (const item of items) {
    if (item.ok) wire.raw(OK_ITEM)
    else nested(LD(F.BatchVoidResponse.items), writeVoidFailure, item)
  }
  return wire.finish()
}

// --- client: requests ------------------------------------------------------------------------------

/** A value the fast encoders do not handle (not a plain safe integer, ...): the caller encodes generically. */
export class NotPlain extends Error {}

const isPlainU64 = (v: unknown): v is number => typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v

function writeConfig(c: ReplicateConfig): void {
  if (c.replicaNum !== undefined && c.replicaNum !== null) {
    if (typeof c.replicaNum !== 'number') throw new NotPlain()
    wire.u32(VI(F.ReplicateConfig.replicaNum))
    wire.u32(c.replicaNum >>> 0)
  }
  optTrue(VI(F.ReplicateConfig.withSoftPin), c.withSoftPin)
  const preferred = c.preferredSegments ?? []
  if (!Array.isArray(preferred)) throw new NotPlain()
  strs(LD(F.ReplicateConfig.preferredSegments), preferred)
  optStr(LD(F.ReplicateConfig.preferredSegment), c.preferredSegment)
  optTrue(VI(F.ReplicateConfig.preferAllocInSameNode), c.preferAllocInSameNode)
}

function writePutStart(r: PutStartRequest): void {
  if (r === null || typeof r !== 'object') throw new NotPlain()
  optStr(LD(F.PutStartRequest.clientId), r.clientId)
  optStr(LD(F.PutStartRequest.requestId), r.requestId)
  optStr(LD(F.PutStartRequest.key), r.key)
  const size = r.size as unknown
  if (size !== undefined && size !== null) {
    if (!isPlainU64(size)) throw new NotPlain()
    optU64(VI(F.PutStartRequest.size), size)
  }
  if (r.config) {
    if (typeof r.config !== 'object') throw new NotPlain()
    nested(LD(F.PutStartRequest.config), writeConfig, r.config)
  }
  optStr(LD(F.PutStartRequest.hostId), r.hostId)
}

function writePutEnd(r: PutEndRequest): void {
  if (r === null || typeof r !== 'object') throw new NotPlain()
  optStr(LD(F.PutEndRequest.clientId), r.clientId)
  optStr(LD(F.PutEndRequest.key), r.key)
  const checksum = r.checksum as unknown
  if (checksum !== undefined && checksum !== null) {
    if (typeof checksum !== 'number') throw new NotPlain()
    wire.u32(VI(F.PutEndRequest.checksum))
    wire.u32(checksum >>> 0)
  }
  const target = r.target === undefined ? undefined : TARGET_VALUE[r.target]
  if (target !== undefined) {
    wire.u32(VI(F.PutEndRequest.target))
    wire.u32(target)
  }
}

function writePutCommit(r: PutCommitRequest): void {
  if (r === null || typeof r !== 'object') throw new NotPlain()
  const {reservationId, offset, size} = r as unknown as Record<string, unknown>
  if (!isPlainU64(reservationId) || !isPlainU64(offset) || !isPlainU64(size)) throw new NotPlain()
  optStr(LD(F.PutCommitRequest.clientId), r.clientId)
  optU64(VI(F.PutCommitRequest.reservationId), reservationId)
  optStr(LD(F.PutCommitRequest.key), r.key)
  optU64(VI(F.PutCommitRequest.offset), offset)
  optU64(VI(F.PutCommitRequest.size), size)
  const checksum = r.checksum as unknown
  if (checksum !== undefined && checksum !== null) {
    if (typeof checksum !== 'number') throw new NotPlain()
    wire.u32(VI(F.PutCommitRequest.checksum))
    wire.u32(checksum >>> 0)
  }
}

/** The client's BatchPutStartRequest bytes (as encodePutStartRequest + the compiled codec); NotPlain for odd values. */
export function encodeBatchPutStartRequest(reqs: readonly PutStartRequest[]): Buffer {
  return writeRepeated(LD(F.BatchPutStartRequest.items), reqs, writePutStart)
}

/** The client's BatchPutEndRequest bytes (as encodePutEndRequest + the compiled codec); NotPlain for odd values. */
export function encodeBatchPutEndRequest(reqs: readonly PutEndRequest[]): Buffer {
  return writeRepeated(LD(F.BatchPutEndRequest.items), reqs, writePutEnd)
}

/** The client's BatchPutCommitRequest bytes (as encodePutCommitRequest + the compiled codec); NotPlain for odd values. */
export function encodeBatchPutCommitRequest(reqs: readonly PutCommitRequest[]): Buffer {
  return writeRepeated(LD(F.BatchPutCommitRequest.items), reqs, writePutCommit)
}

// --- client: answers -------------------------------------------------------------------------------

function readItemError(end: number): {code: string; message: string} {
  let code = ''
  let message = ''
  for (let f: number; (f = field(end, F.ItemError.value)) !== 0; ) {
    if (f === F.ItemError.code) code = wire.rstr()
    else if (f === F.ItemError.message) message = wire.rstr()
    else wire.r32()
  }
  return {code, message}
}

const EMPTY_ITEM = 'the master sent an empty batch item'

/**
 * The segment, endpoints and host of the last MemoryLocation read, with their bytes: every
 * replica on a segment repeats them (the master writes them first), so the next one on the same
 * segment reuses these strings and this array instead of decoding its own copies.
 */
let lastPrefix: {bytes: Buffer; segment: string; endpoints: string[]; hostId: string} | undefined

function readMemory(end: number): MemoryLocation {
  let segment = ''
  let endpoints: string[] = []
  let hostId = ''
  let offset = 0
  let length = 0
  let grant: Buffer | undefined
  const start = wire.pos()
  const cached = lastPrefix !== undefined && start + lastPrefix.bytes.length <= end && wire.skipIfNext(lastPrefix.bytes)
  if (cached) {
    segment = lastPrefix!.segment
    endpoints = lastPrefix!.endpoints
    hostId = lastPrefix!.hostId
  }
  let prefixEnd = -1
  let late = false
  // Its own loop, not field(): where unknown fields stand decides whether the prefix is remembered.
  while (wire.pos() < end) {
    const at = wire.pos()
    const t = wire.r32()
    // Fields 1-3 first, then only others: that prefix is worth remembering.
    if (t >>> 3 > F.MemoryLocation.hostId) {
      if (prefixEnd < 0) prefixEnd = at
    } else if (prefixEnd >= 0) late = true
    switch (t >>> 3) {
      case F.MemoryLocation.segment:
        segment = wire.rstr()
        break
      case F.MemoryLocation.endpoints:
        // Never add to the remembered array (other results hold it).
        if (endpoints === lastPrefix?.endpoints) endpoints = endpoints.slice()
        endpoints.push(wire.rstr())
        break
      case F.MemoryLocation.hostId:
        hostId = wire.rstr()
        break
      case F.MemoryLocation.offset:
        offset = wire.r64()
        break
      case F.MemoryLocation.length:
        length = wire.r64()
        break
      case F.MemoryLocation.grant:
        grant = wire.rbytes()
        break
      default:
        wire.skip(t & 7)
    }
  }
  if (!cached && prefixEnd > start && !late) rememberPrefix(start, prefixEnd, segment, endpoints, hostId)
  const out: MemoryLocation = {segment, endpoints, hostId, offset, length}
  if (grant !== undefined && grant.length > 0) out.grant = grant
  return out
}

function rememberPrefix(start: number, end: number, segment: string, endpoints: string[], hostId: string): void {
  const at = wire.pos()
  // Only a prefix made of fields 1-3 alone, each once and length-delimited (the master's order
  // and form), can stand for them. Another wire type is read as length-delimited all the same
  // (so does the generic decoder), but such a sender is not the master: nothing is remembered.
  wire.seek(start)
  let plain = true
  let last = 0
  while (wire.pos() < end && plain) {
    const t = wire.r32()
    const field = t >>> 3
    plain = (t & 7) === 2 && field >= last && field >= 1 && field <= 3 && !(field === last && field !== F.MemoryLocation.endpoints)
    last = field
    if (plain) wire.skip(2)
  }
  if (plain && wire.pos() === end) lastPrefix = {bytes: wire.copyRange(start, end), segment, endpoints, hostId}
  wire.seek(at)
}

function readDisk(end: number): DiskLocation {
  let path = ''
  let size = 0
  for (let f: number; (f = field(end, F.DiskLocation.size)) !== 0; ) {
    if (f === F.DiskLocation.path) path = wire.rstr()
    else size = wire.r64()
  }
  return {path, size}
}

function readReplica(end: number): ReplicaDescriptor {
  let id = 0
  let type = 0
  let status = 0
  let memory: MemoryLocation | undefined
  let disk: DiskLocation | undefined
  for (let f: number; (f = field(end, F.ReplicaDescriptor.disk)) !== 0; ) {
    switch (f) {
      case F.ReplicaDescriptor.id:
        id = wire.r64()
        break
      case F.ReplicaDescriptor.type:
        type = wire.r32() | 0
        break
      case F.ReplicaDescriptor.status:
        status = wire.r32() | 0
        break
      case F.ReplicaDescriptor.memory:
        memory = readMemory(wire.rlen())
        break
      case F.ReplicaDescriptor.disk:
        disk = readDisk(wire.rlen())
    }
  }
  // Unknown values come from a newer master: the most cautious meaning (as grpc-codec.ts).
  const out: ReplicaDescriptor = {
    id,
    type: type === F.ReplicaType.REPLICA_TYPE_DISK ? 'disk' : 'memory',
    status: (status > 0 && status < STATUS_OF.length ? STATUS_OF[status] : undefined) ?? 'FAILED',
  }
  if (memory !== undefined) out.memory = memory
  if (disk !== undefined) out.disk = disk
  return out
}

function readPutStartResult(end: number): PutStartResult {
  const replicas: ReplicaDescriptor[] = []
  let version = 0
  let requestedReplicas = 0
  for (let f: number; (f = field(end, F.PutStartResponse.requestedReplicas)) !== 0; ) {
    if (f === F.PutStartResponse.replicas) replicas.push(readReplica(wire.rlen()))
    else if (f === F.PutStartResponse.version) version = wire.r64()
    else requestedReplicas = wire.r32()
  }
  return {replicas, version, requestedReplicas}
}

function readReplicaList(end: number): GetReplicaListResult {
  const replicas: ReplicaDescriptor[] = []
  let size = 0
  let version = 0
  let checksum: number | undefined
  let leaseTtlMs = 0
  let leaseExpiresAt = 0
  for (let f: number; (f = field(end, F.GetReplicaListResponse.leaseExpiresAt)) !== 0; ) {
    switch (f) {
      case F.GetReplicaListResponse.replicas:
        replicas.push(readReplica(wire.rlen()))
        break
      case F.GetReplicaListResponse.size:
        size = wire.r64()
        break
      case F.GetReplicaListResponse.version:
        version = wire.r64()
        break
      case F.GetReplicaListResponse.checksum:
        checksum = wire.r32() >>> 0
        break
      case F.GetReplicaListResponse.leaseTtlMs:
        leaseTtlMs = wire.r64()
        break
      case F.GetReplicaListResponse.leaseExpiresAt:
        leaseExpiresAt = wire.r64()
    }
  }
  const out: GetReplicaListResult = {replicas, size, version, leaseTtlMs, leaseExpiresAt}
  if (checksum !== undefined) out.checksum = checksum
  return out
}

/** An Empty message: its (unknown) fields are skipped. */
function readEmpty(end: number): void {
  field(end, 0)
}

// PutStartItem, GetReplicaListItem and VoidItem number alike: the value (or ok) 1, the error 2.
const ITEM: {value: typeof F.PutStartItem.value & typeof F.VoidItem.ok; error: typeof F.PutStartItem.error & typeof F.VoidItem.error} = F.PutStartItem

/** A PutStartItem or a VoidItem (as grpc-codec.ts decodeItem), its value read by `readValue`. */
function readItem<T>(end: number, readValue: (end: number) => T): ItemResult<T> {
  let out: ItemResult<T> | undefined
  for (let f: number; (f = field(end, ITEM.error)) !== 0; ) {
    if (f === ITEM.value) out = {ok: true, value: readValue(wire.rlen())}
    else {
      const e = readItemError(wire.rlen())
      out = {ok: false, code: isErrorCodeName(e.code) ? e.code : 'INTERNAL_ERROR', message: e.message}
    }
  }
  return out ?? {ok: false, code: 'INTERNAL_ERROR', message: EMPTY_ITEM}
}

/** The client's BatchPutStart responseDeserialize: the items as grpc-codec.ts decodeItem(decodePutStartResult) gives them. */
export function decodeBatchPutStartResults(buf: Buffer): ItemResult<PutStartResult>[] {
  return readRepeated(buf, false, readItem, readPutStartResult)
}

/** The client's BatchVoidResponse responseDeserialize: the items as grpc-codec.ts decodeVoidItems gives them. */
export function decodeBatchVoidResults(buf: Buffer): ItemResult<void>[] {
  return readRepeated(buf, false, readItem<void>, readEmpty)
}

/** The client's BatchGetReplicaList responseDeserialize: the items as grpc-codec.ts decodeItem(decodeReplicaList) gives them (GetReplicaListItem numbers its value and error as PutStartItem does). */
export function decodeBatchGetReplicaListResults(buf: Buffer): ItemResult<GetReplicaListResult>[] {
  return readRepeated(buf, false, readItem, readReplicaList)
}

/** The client's GetReplicaList responseDeserialize: what grpc-codec.ts decodeReplicaList gives. */
export function decodeReplicaListResponse(buf: Buffer): GetReplicaListResult {
  wire.read(buf, false)
  try {
    return readReplicaList(buf.length)
  } finally {
    wire.done()
  }
}
