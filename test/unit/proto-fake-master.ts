// A small in-memory MasterCalls for wire tests that must not depend on the real MasterService.
import type {
  GetReplicaListResult,
  ItemResult,
  ListKeysRequest,
  MasterCalls,
  ObjectInfo,
  PutCommitRequest,
  PutStartRequest,
  PutStartResult,
  ReserveSpaceRequest,
  ReserveSpaceResult,
  SegmentInfo,
} from '../../src/lib/master/api.js'
import {MooncakeError} from '../../src/lib/errors.js'

function item<T>(fn: () => T): ItemResult<T> {
  try {
    return {ok: true, value: fn()}
  } catch (err) {
    const e = err as MooncakeError
    return {ok: false, code: e.code, message: e.message}
  }
}

export class FakeMaster implements MasterCalls {
  readonly objects = new Map<string, {size: number; complete: boolean; owner: string; checksum?: number}>()
  readonly segments = new Map<string, SegmentInfo>()
  calls: string[] = []

  #obj(key: string) {
    const o = this.objects.get(key)
    if (!o) throw new MooncakeError('OBJECT_NOT_FOUND', `no object ${key}`)
    return o
  }

  putStart(req: PutStartRequest): PutStartResult {
    this.calls.push('putStart')
    if (req.size <= 0) throw new MooncakeError('INVALID_PARAMS', 'size must be positive')
    if (this.objects.has(req.key)) throw new MooncakeError('OBJECT_ALREADY_EXISTS', `${req.key} exists`)
    this.objects.set(req.key, {size: req.size, complete: false, owner: req.clientId})
    return {
      replicas: [
        {
          id: 1,
          type: 'memory',
          status: 'PROCESSING',
          memory: {segment: 's', endpoints: ['127.0.0.1:1'], hostId: 'h', offset: 0, length: req.size, grant: new Uint8Array([1, 2, 3])},
        },
      ],
      version: 1,
      requestedReplicas: req.config?.replicaNum ?? 1,
    }
  }
  putEnd(req: {clientId: string; key: string; checksum?: number}): void {
    const o = this.#obj(req.key)
    if (o.owner !== req.clientId) throw new MooncakeError('ILLEGAL_CLIENT', 'not yours')
    o.complete = true
    o.checksum = req.checksum
  }
  putRevoke(req: {clientId: string; key: string}): void {
    this.#obj(req.key)
    this.objects.delete(req.key)
  }
  batchPutStart(reqs: PutStartRequest[]) {
    return reqs.map((r) => item(() => this.putStart(r)))
  }
  batchPutEnd(reqs: {clientId: string; key: string}[]) {
    return reqs.map((r) => item(() => this.putEnd(r)))
  }
  batchPutRevoke(reqs: {clientId: string; key: string}[]) {
    return reqs.map((r) => item(() => this.putRevoke(r)))
  }
  reserveSpace(req: ReserveSpaceRequest): ReserveSpaceResult {
    this.calls.push('reserveSpace')
    if (req.size <= 0) throw new MooncakeError('INVALID_PARAMS', 'size must be positive')
    return {reservationId: 7, memory: {segment: 's', endpoints: ['127.0.0.1:1'], hostId: 'h', offset: 64, length: req.size, grant: new Uint8Array([4, 5])}, alignment: 8, expiresAt: 1234}
  }
  batchPutCommit(reqs: PutCommitRequest[]) {
    return reqs.map((r) =>
      item(() => {
        if (this.objects.has(r.key)) throw new MooncakeError('OBJECT_ALREADY_EXISTS', `${r.key} exists`)
        this.objects.set(r.key, {size: r.size, complete: true, owner: r.clientId, checksum: r.checksum})
      }),
    )
  }
  releaseSpace(req: {clientId: string; reservationId: number}): void {
    this.calls.push(`releaseSpace ${req.reservationId}`)
  }
  upsertStart(req: PutStartRequest) {
    this.objects.delete(req.key)
    return this.putStart(req)
  }
  upsertEnd(req: {clientId: string; key: string}) {
    this.putEnd(req)
  }
  upsertRevoke(req: {clientId: string; key: string}) {
    this.putRevoke(req)
  }
  getReplicaList(key: string): GetReplicaListResult {
    const o = this.#obj(key)
    if (!o.complete) throw new MooncakeError('REPLICA_IS_NOT_READY', 'being written')
    const r: GetReplicaListResult = {
      replicas: [{id: 1, type: 'disk', status: 'COMPLETE', disk: {path: '/x', size: o.size}}],
      size: o.size,
      version: 1,
      leaseTtlMs: 10_000,
      leaseExpiresAt: 123,
    }
    if (o.checksum !== undefined) r.checksum = o.checksum
    return r
  }
  batchGetReplicaList(keys: string[]) {
    return keys.map((k) => item(() => this.getReplicaList(k)))
  }
  getReplicaListByRegex(regex: string) {
    const re = new RegExp(regex)
    const out = new Map<string, GetReplicaListResult>()
    for (const k of this.objects.keys()) if (re.test(k)) out.set(k, this.getReplicaList(k))
    return out
  }
  existKey(key: string) {
    return this.objects.get(key)?.complete === true
  }
  batchExistKey(keys: string[]) {
    return keys.map((k) => this.existKey(k))
  }
  query(key: string): ObjectInfo {
    const o = this.#obj(key)
    return {key, size: o.size, version: 1, replicas: [{type: 'memory', status: 'COMPLETE', segment: 's', endpoint: 'e'}], leaseExpiresAt: 0, softPinExpiresAt: null}
  }
  batchQuery(keys: string[]) {
    return keys.map((k) => item(() => this.query(k)))
  }
  queryByRegex(regex: string) {
    const re = new RegExp(regex)
    return [...this.objects.keys()].filter((k) => re.test(k)).map((k) => this.query(k))
  }
  remove(req: {key: string}) {
    this.#obj(req.key)
    this.objects.delete(req.key)
  }
  batchRemove(keys: string[]) {
    return keys.map((k) => item(() => this.remove({key: k})))
  }
  removeByRegex(req: {regex: string; dryRun?: boolean}) {
    const re = new RegExp(req.regex)
    const keys = [...this.objects.keys()].filter((k) => re.test(k))
    if (!req.dryRun) for (const k of keys) this.objects.delete(k)
    return {removed: keys.length, skipped: 0, keys}
  }
  removeAll(req: {dryRun?: boolean}) {
    return this.removeByRegex({regex: '', dryRun: req.dryRun})
  }
  mountSegment(req: {clientId: string; segment: {id: string; name: string; endpoints: string[]; size: number; hostId: string}}) {
    const had = this.segments.get(req.segment.name)
    if (had && had.clientId !== req.clientId) throw new MooncakeError('SEGMENT_ALREADY_EXISTS', 'taken')
    const s = req.segment
    this.segments.set(s.name, {name: s.name, id: s.id, clientId: req.clientId, endpoints: s.endpoints, hostId: s.hostId, capacity: s.size, used: 0, status: 'OK', lastPingAt: 1, fragmentation: 0.25})
    return {viewVersion: 7}
  }
  reMountSegment(req: {clientId: string; segments: {id: string; name: string; endpoints: string[]; size: number; hostId: string}[]}) {
    for (const segment of req.segments) this.mountSegment({clientId: req.clientId, segment})
  }
  drainUntil = 0
  unmountSegment(req: {name: string; drain?: boolean}) {
    const s = this.segments.get(req.name)
    if (!s) throw new MooncakeError('SEGMENT_NOT_FOUND', req.name)
    if (req.drain) {
      s.status = 'DRAINING'
      setTimeout(() => this.segments.delete(req.name), 150)
    } else this.segments.delete(req.name)
  }
  getAllSegments() {
    return [...this.segments.values()]
  }
  querySegments(name: string) {
    const s = this.segments.get(name)
    if (!s) throw new MooncakeError('SEGMENT_NOT_FOUND', name)
    return {name, capacity: s.capacity, used: s.used}
  }
  listKeys(req: ListKeysRequest) {
    const limit = req.limit ?? 10_000
    const all = [...this.objects.keys()].filter((k) => (!req.prefix || k.startsWith(req.prefix)) && (!req.after || k > req.after)).sort()
    const keys = all.slice(0, limit)
    return all.length > limit ? {keys, next: keys[keys.length - 1]} : {keys}
  }
  ping() {
    return {viewVersion: 7, status: 'NEED_REMOUNT' as const}
  }
  serviceReady() {
    return {version: '0.0.0-fake', protocolVersion: 1, viewVersion: 7}
  }
  stats() {
    return {capacity: 10, used: 2, keys: this.objects.size, softPinnedKeys: 0, clients: 1, segments: this.segments.size}
  }
}
