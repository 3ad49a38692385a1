/**
 * A deliberately small in-memory MasterApi for UNIT tests of the client (placement by bump
 * allocation over the mounted segments, no eviction): enough to drive put/get/remove/query.
 */
import type {
  GetReplicaListResult,
  ItemResult,
  MasterApi,
  MasterCalls,
  ObjectInfo,
  PutEndRequest,
  PutRevokeRequest,
  PutStartRequest,
  PutStartResult,
  SegmentDescriptor,
} from '../../src/lib/master/api.js'
import {MooncakeError, toMooncakeError} from '../../src/lib/errors.js'

interface Obj {
  key: string
  size: number
  version: number
  checksum?: number
  complete: boolean
  clientId: string
  requestId: string
  replicas: Array<{segment: SegmentDescriptor; offset: number}>
  leaseExpiresAt: number
}

export class FakeMaster {
  readonly segments = new Map<string, {desc: SegmentDescriptor; next: number}>()
  readonly objects = new Map<string, Obj>()
  readonly calls: Record<string, number> = {}
  leaseTtlMs = 10_000
  private version = 0
  status: 'OK' | 'NEED_REMOUNT' | 'UNMOUNTED' = 'OK'

  private count(name: string): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1
  }

  private item<T>(fn: () => T): ItemResult<T> {
    try {
      return {ok: true, value: fn()}
    } catch (err) {
      const e = toMooncakeError(err)
      return {ok: false, code: e.code, message: e.message}
    }
  }

  putStartSync(req: PutStartRequest): PutStartResult {
    const existing = this.objects.get(req.key)
    if (existing) {
      if (!existing.complete && existing.requestId === req.requestId) return this.placement(existing, req)
      throw new MooncakeError('OBJECT_ALREADY_EXISTS', `${req.key} exists`)
    }
    if (req.size <= 0) throw new MooncakeError('INVALID_PARAMS', 'empty value')
    const want = req.config?.replicaNum ?? 1
    const replicas: Obj['replicas'] = []
    for (const s of this.segments.values()) {
      if (replicas.length >= want) break
      if (s.next + req.size > s.desc.size) continue
      replicas.push({segment: s.desc, offset: s.next})
      s.next += Math.ceil(req.size / 64) * 64
    }
    if (replicas.length === 0) throw new MooncakeError('NO_AVAILABLE_HANDLE', 'full')
    const obj: Obj = {key: req.key, size: req.size, version: ++this.version, complete: false, clientId: req.clientId, requestId: req.requestId, replicas, leaseExpiresAt: 0}
    this.objects.set(req.key, obj)
    return this.placement(obj, req)
  }

  private placement(obj: Obj, req: PutStartRequest): PutStartResult {
    return {
      version: obj.version,
      requestedReplicas: req.config?.replicaNum ?? 1,
      replicas: obj.replicas.map((r, i) => ({
        id: i,
        type: 'memory' as const,
        status: 'PROCESSING' as const,
        memory: {segment: r.segment.name, endpoints: r.segment.endpoints, hostId: r.segment.hostId, offset: r.offset, length: obj.size},
      })),
    }
  }

  putEndSync(req: PutEndRequest): void {
    const obj = this.objects.get(req.key)
    if (!obj) throw new MooncakeError('OBJECT_NOT_FOUND', req.key)
    if (obj.clientId !== req.clientId) throw new MooncakeError('ILLEGAL_CLIENT', 'not yours')
    obj.complete = true
    obj.checksum = req.checksum
  }

  putRevokeSync(req: PutRevokeRequest): void {
    const obj = this.objects.get(req.key)
    if (obj && !obj.complete) this.objects.delete(req.key)
  }

  getSync(key: string): GetReplicaListResult {
    const obj = this.objects.get(key)
    if (!obj) throw new MooncakeError('OBJECT_NOT_FOUND', `${key} not found`)
    if (!obj.complete) throw new MooncakeError('REPLICA_IS_NOT_READY', key)
    obj.leaseExpiresAt = Math.max(obj.leaseExpiresAt, Date.now() + this.leaseTtlMs)
    return {
      size: obj.size,
      version: obj.version,
      checksum: obj.checksum,
      leaseTtlMs: this.leaseTtlMs,
      leaseExpiresAt: obj.leaseExpiresAt,
      replicas: obj.replicas
        .filter((r) => this.segments.has(r.segment.name))
        .map((r, i) => ({
          id: i,
          type: 'memory' as const,
          status: 'COMPLETE' as const,
          memory: {segment: r.segment.name, endpoints: r.segment.endpoints, hostId: r.segment.hostId, offset: r.offset, length: obj.size},
        })),
    }
  }

  querySync(key: string): ObjectInfo {
    const obj = this.objects.get(key)
    if (!obj || !obj.complete) throw new MooncakeError('OBJECT_NOT_FOUND', `${key} not found`)
    return {
      key,
      size: obj.size,
      version: obj.version,
      checksum: obj.checksum,
      replicas: obj.replicas.map((r) => ({type: 'memory', status: 'COMPLETE', segment: r.segment.name, endpoint: r.segment.endpoints[0]})),
      leaseExpiresAt: obj.leaseExpiresAt,
      softPinExpiresAt: null,
    }
  }

  /** The MasterApi view, counting calls by name. */
  api(): MasterApi {
    const impl: Partial<MasterCalls> = {
      putStart: (r) => this.putStartSync(r),
      putEnd: (r) => this.putEndSync(r),
      putRevoke: (r) => this.putRevokeSync(r),
      batchPutStart: (rs) => rs.map((r) => this.item(() => this.putStartSync(r))),
      batchPutEnd: (rs) => rs.map((r) => this.item(() => this.putEndSync(r))),
      batchPutRevoke: (rs) => rs.map((r) => this.item(() => this.putRevokeSync(r))),
      upsertStart: (r) => {
        const old = this.objects.get(r.key)
        if (old?.complete) this.objects.delete(r.key)
        return this.putStartSync(r)
      },
      upsertEnd: (r) => this.putEndSync(r),
      upsertRevoke: (r) => this.putRevokeSync(r),
      getReplicaList: (k) => this.getSync(k),
      batchGetReplicaList: (ks) => ks.map((k) => this.item(() => this.getSync(k))),
      existKey: (k) => this.objects.get(k)?.complete === true,
      batchExistKey: (ks) => ks.map((k) => this.objects.get(k)?.complete === true),
      query: (k) => this.querySync(k),
      batchQuery: (ks) => ks.map((k) => this.item(() => this.querySync(k))),
      queryByRegex: (re) => [...this.objects.keys()].filter((k) => new RegExp(re).test(k)).map((k) => this.querySync(k)),
      remove: (r) => {
        const obj = this.objects.get(r.key)
        if (!obj) throw new MooncakeError('OBJECT_NOT_FOUND', r.key)
        if (!r.force && obj.leaseExpiresAt > Date.now()) throw new MooncakeError('OBJECT_HAS_LEASE', r.key)
        this.objects.delete(r.key)
      },
      batchRemove: (ks) => ks.map((k) => this.item(() => void this.objects.delete(k))),
      removeByRegex: (r) => {
        const keys = [...this.objects.keys()].filter((k) => new RegExp(r.regex).test(k))
        if (!r.dryRun) for (const k of keys) this.objects.delete(k)
        return {removed: keys.length, skipped: 0, keys}
      },
      removeAll: (r) => {
        const keys = [...this.objects.keys()]
        if (!r.dryRun) this.objects.clear()
        return {removed: keys.length, skipped: 0, keys}
      },
      listKeys: (r) => {
        const all = [...this.objects.keys()].filter((k) => (r.prefix ? k.startsWith(r.prefix) : true)).sort()
        const from = r.after ? all.findIndex((k) => k > (r.after as string)) : 0
        const limit = r.limit ?? 10_000
        const keys = from < 0 ? [] : all.slice(from, from + limit)
        return {keys, next: from >= 0 && from + limit < all.length ? keys[keys.length - 1] : undefined}
      },
      mountSegment: (r) => {
        const cur = this.segments.get(r.segment.name)
        if (cur && cur.desc.id !== r.segment.id) throw new MooncakeError('SEGMENT_ALREADY_EXISTS', r.segment.name)
        if (!cur) this.segments.set(r.segment.name, {desc: r.segment, next: 0})
        return {viewVersion: 0}
      },
      reMountSegment: (r) => {
        for (const s of r.segments) if (!this.segments.has(s.name)) this.segments.set(s.name, {desc: s, next: 0})
        this.status = 'OK'
      },
      unmountSegment: (r) => {
        if (!this.segments.delete(r.name)) throw new MooncakeError('SEGMENT_NOT_FOUND', r.name)
      },
      ping: () => ({viewVersion: 0, status: this.status}),
      serviceReady: () => ({version: 'fake', protocolVersion: 1, viewVersion: 0}),
    }
    return new Proxy({} as MasterApi, {
      get: (_t, prop: string) => {
        const fn = (impl as Record<string, ((...a: unknown[]) => unknown) | undefined>)[prop]
        if (!fn) return undefined
        return async (...args: unknown[]) => {
          this.count(prop)
          await Promise.resolve()
          return fn(...args)
        }
      },
    })
  }
}
