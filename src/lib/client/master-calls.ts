/**
 * Helpers around the master API for the client: an async facade over an in-process
 * MasterService, deadlines on remote calls, and the coalescing layer that turns concurrent
 * single-key calls into batch RPCs.
 */
import type {
  GetReplicaListResult,
  ItemResult,
  MasterApi,
  MasterCalls,
  ObjectInfo,
  PutCommitRequest,
  PutEndRequest,
  PutRevokeRequest,
  PutStartRequest,
  PutStartResult,
} from '../master/api.js'
import {MooncakeError, toMooncakeError} from '../errors.js'
import {Coalescer} from './coalescer.js'

/**
 * Wraps a synchronous MasterCalls implementation (an in-process MasterService) as a MasterApi:
 * every call returns a Promise, and a thrown error becomes a rejection.
 */
export function asyncMaster(service: MasterCalls): MasterApi {
  return new Proxy({} as MasterApi, {
    get(_target, prop) {
      const fn = (service as unknown as Record<PropertyKey, unknown>)[prop]
      if (typeof fn !== 'function') return undefined
      return (...args: unknown[]) => {
        try {
          return Promise.resolve((fn as (...a: unknown[]) => unknown).apply(service, args))
        } catch (err) {
          return Promise.reject(toMooncakeError(err))
        }
      }
    },
  })
}

/** Rejects with UNAVAILABLE when `promise` does not settle before `deadline` (Unix ms). */
export function withDeadline<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  const remaining = deadline - Date.now()
  if (remaining <= 0) {
    promise.catch(() => {})
    return Promise.reject(new MooncakeError('UNAVAILABLE', `${what}: deadline exceeded before the call was sent`))
  }
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new MooncakeError('UNAVAILABLE', `${what}: the master did not answer within ${remaining} ms (see the timeoutMs option)`))
    }, remaining)
    timer.unref?.()
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err) => {
        clearTimeout(timer)
        reject(toMooncakeError(err))
      },
    )
  })
}

export interface CoalescedMasterOptions {
  coalesce: boolean
  maxInFlight: number
  maxBatchSize: number
}

/** Statistics of the coalescing layer: how many RPCs were sent and how many calls they carried. */
export interface CoalescingStats {
  rpcs: number
  calls: number
}

/** The single-key calls of the hot path, merged into batch RPCs when issued concurrently. */
export class CoalescedMaster {
  readonly stats: Record<'putStart' | 'putEnd' | 'putRevoke' | 'putCommit' | 'getReplicaList' | 'existKey' | 'query', CoalescingStats> = {
    putStart: {rpcs: 0, calls: 0},
    putCommit: {rpcs: 0, calls: 0},
    putEnd: {rpcs: 0, calls: 0},
    putRevoke: {rpcs: 0, calls: 0},
    getReplicaList: {rpcs: 0, calls: 0},
    existKey: {rpcs: 0, calls: 0},
    query: {rpcs: 0, calls: 0},
  }

  private readonly putStartC: Coalescer<PutStartRequest, PutStartResult>
  private readonly putEndC: Coalescer<PutEndRequest, void>
  private readonly putRevokeC: Coalescer<PutRevokeRequest, void>
  private readonly putCommitC: Coalescer<PutCommitRequest, void>
  private readonly getC: Coalescer<string, GetReplicaListResult>
  private readonly existC: Coalescer<string, boolean>
  private readonly queryC: Coalescer<string, ObjectInfo>

  constructor(
    readonly master: MasterApi,
    private readonly options: CoalescedMasterOptions,
  ) {
    const m = master
    this.putStartC = this.make('putStart', (r) => m.batchPutStart(r), (r) => m.putStart(r))
    this.putEndC = this.make('putEnd', (r) => m.batchPutEnd(r), (r) => m.putEnd(r))
    this.putRevokeC = this.make('putRevoke', (r) => m.batchPutRevoke(r), (r) => m.putRevoke(r))
    this.putCommitC = this.make('putCommit', (r) => m.batchPutCommit(r))
    this.getC = this.make('getReplicaList', (k) => m.batchGetReplicaList(k), (k) => m.getReplicaList(k))
    this.existC = this.make(
      'existKey',
      async (keys) => (await m.batchExistKey(keys)).map((value): ItemResult<boolean> => ({ok: true, value})),
      (k) => m.existKey(k),
    )
    this.queryC = this.make('query', (k) => m.batchQuery(k), (k) => m.query(k))
  }

  private make<I, R>(
    name: keyof CoalescedMaster['stats'],
    batch: (items: I[]) => Promise<ItemResult<R>[]>,
    single?: (item: I) => Promise<R>,
  ): Coalescer<I, R> {
    const stats = this.stats[name]
    return new Coalescer<I, R>({
      batch,
      single,
      maxInFlight: this.options.coalesce ? this.options.maxInFlight : Number.MAX_SAFE_INTEGER,
      maxBatchSize: this.options.coalesce ? this.options.maxBatchSize : 1,
      onBatch: (size) => {
        stats.rpcs++
        stats.calls += size
      },
    })
  }

  putStart(req: PutStartRequest): Promise<PutStartResult> {
    return this.putStartC.call(req)
  }

  putEnd(req: PutEndRequest): Promise<void> {
    return this.putEndC.call(req)
  }

  putRevoke(req: PutRevokeRequest): Promise<void> {
    return this.putRevokeC.call(req)
  }

  getReplicaList(key: string): Promise<GetReplicaListResult> {
    return this.getC.call(key)
  }

  /** Many items in one group (merged with concurrent calls); one ItemResult each, never rejects. */
  putStartMany(reqs: PutStartRequest[]): Promise<ItemResult<PutStartResult>[]> {
    return this.putStartC.callMany(reqs)
  }

  putEndMany(reqs: PutEndRequest[]): Promise<ItemResult<void>[]> {
    return this.putEndC.callMany(reqs)
  }

  putRevokeMany(reqs: PutRevokeRequest[]): Promise<ItemResult<void>[]> {
    return this.putRevokeC.callMany(reqs)
  }

  putCommitMany(reqs: PutCommitRequest[]): Promise<ItemResult<void>[]> {
    return this.putCommitC.callMany(reqs)
  }

  getReplicaListMany(keys: string[]): Promise<ItemResult<GetReplicaListResult>[]> {
    return this.getC.callMany(keys)
  }

  existKey(key: string): Promise<boolean> {
    return this.existC.call(key)
  }

  query(key: string): Promise<ObjectInfo> {
    return this.queryC.call(key)
  }
}
