/**
 * The master's Prometheus metrics (S16), with the original's names (reference section 9):
 * point-in-time gauges read from the service in collect() callbacks, per-RPC counters and
 * latency histograms recorded by `instrumentService`, and eviction/zombie counters mirrored
 * from `MasterService.metrics()`. Every metric lives in the MasterMetrics' own Registry (never
 * prom-client's global one), so several masters in one process do not collide.
 *
 * Labels are bounded: `method` (an RPC name), `code` (an ErrorCode name) and `segment` (a
 * mounted segment). Nothing is ever labelled by key or client id.
 */
import {performance} from 'node:perf_hooks'

import {collectDefaultMetrics, Counter, Gauge, Registry} from 'prom-client'

import {isMooncakeError, MooncakeError} from '../errors.js'
import type {ItemResult, MasterCalls, MasterStats, PutCommitRequest, PutStartRequest, PutStartResult, SegmentInfo} from '../master/api.js'
import type {RegexScanChunk, RegexScanOptions} from '../master/regex-scan.js'
import type {MasterService, MasterServiceMetrics} from '../master/service.js'
import {FastHistogram} from './fast-histogram.js'

/** Buckets of master_value_size_bytes, as the original: 4K, 64K, 256K, 1M, 4M, 16M, 64M. */
export const VALUE_SIZE_BUCKETS = [4096, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864]
/** Buckets of master_rpc_duration_seconds: the service answers in microseconds, so they start at 5 µs. */
export const RPC_DURATION_BUCKETS = [5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1, 0.5, 2]

type Kind = 'single' | 'batch' | 'batchBool'

/**
 * Every MasterCalls method with its metric op name (the original's where it has one) and how
 * its outcome is counted. `single` calls count requests/failures; batch calls count requests,
 * failures (every item failed, or the call threw), partial successes, items and failed items.
 */
export const MASTER_OPS = {
  putStart: {op: 'put_start', kind: 'single'},
  putEnd: {op: 'put_end', kind: 'single'},
  putRevoke: {op: 'put_revoke', kind: 'single'},
  batchPutStart: {op: 'batch_put_start', kind: 'batch'},
  batchPutEnd: {op: 'batch_put_end', kind: 'batch'},
  batchPutRevoke: {op: 'batch_put_revoke', kind: 'batch'},
  reserveSpace: {op: 'reserve_space', kind: 'single'},
  batchPutCommit: {op: 'batch_put_commit', kind: 'batch'},
  releaseSpace: {op: 'release_space', kind: 'single'},
  upsertStart: {op: 'upsert_start', kind: 'single'},
  upsertEnd: {op: 'upsert_end', kind: 'single'},
  upsertRevoke: {op: 'upsert_revoke', kind: 'single'},
  getReplicaList: {op: 'get_replica_list', kind: 'single'},
  batchGetReplicaList: {op: 'batch_get_replica_list', kind: 'batch'},
  getReplicaListByRegex: {op: 'get_replica_list_by_regex', kind: 'single'},
  existKey: {op: 'exist_key', kind: 'single'},
  batchExistKey: {op: 'batch_exist_key', kind: 'batchBool'},
  query: {op: 'query', kind: 'single'},
  batchQuery: {op: 'batch_query', kind: 'batch'},
  queryByRegex: {op: 'query_by_regex', kind: 'single'},
  remove: {op: 'remove', kind: 'single'},
  batchRemove: {op: 'batch_remove', kind: 'batch'},
  removeByRegex: {op: 'remove_by_regex', kind: 'single'},
  removeAll: {op: 'remove_all', kind: 'single'},
  mountSegment: {op: 'mount_segment', kind: 'single'},
  reMountSegment: {op: 'remount_segment', kind: 'single'},
  unmountSegment: {op: 'unmount_segment', kind: 'single'},
  getAllSegments: {op: 'get_all_segments', kind: 'single'},
  querySegments: {op: 'query_segments', kind: 'single'},
  listKeys: {op: 'get_all_keys', kind: 'single'},
  ping: {op: 'ping', kind: 'single'},
  serviceReady: {op: 'service_ready', kind: 'single'},
  stats: {op: 'stats', kind: 'single'},
} as const satisfies Partial<Record<keyof MasterCalls, {op: string; kind: Kind}>>

export type MasterOpName = (typeof MASTER_OPS)[keyof typeof MASTER_OPS]['op']

interface Inc {
  inc(value?: number): void
}

interface OpCounters {
  requests: Inc
  failures: Inc
  duration: {observe(value: number): void}
  /** Batch only. */
  partial?: Inc
  items?: Inc
  failedItems?: Inc
}

/** What the gauges read, computed once per scrape. */
interface Snapshot {
  at: number
  stats: MasterStats
  segments: SegmentInfo[]
}

export interface MasterMetricsOptions {
  /** Register prom-client's process and event-loop metrics (process_*, nodejs_*). @default true */
  defaultMetrics?: boolean
}

/**
 * The master's metric registry. Create one per master; `registry.metrics()` is the /metrics
 * body. The service passed is only read (stats(), getAllSegments(), metrics()); RPC counters
 * need the calls to go through `instrumentService(service, this)`.
 */
export class MasterMetrics {
  readonly registry = new Registry()
  readonly valueSize: FastHistogram
  readonly rpcDuration: FastHistogram<'method'>
  readonly rpcErrors: Counter<'method' | 'code'>
  readonly putStartAllocFailures: Counter
  readonly putStartPartialAllocations: Counter
  private readonly ops = new Map<string, OpCounters>()
  private snapshot: Snapshot | undefined

  constructor(
    readonly service: MasterService,
    options: MasterMetricsOptions = {},
  ) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this
    const registers = [this.registry]
    const gauge = (name: string, help: string, read: (s: Snapshot) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(self.read()))
        },
      })
    gauge('master_allocated_bytes', 'Bytes allocated in all mounted segments', (s) => s.stats.used)
    gauge('master_total_capacity_bytes', 'Bytes contributed by all mounted segments', (s) => s.stats.capacity)
    gauge('master_key_count', 'Objects in the master (any state)', (s) => s.stats.keys)
    gauge('master_soft_pin_key_count', 'Objects currently soft-pinned', (s) => s.stats.softPinnedKeys)
    gauge('master_active_clients', 'Segment owners that pinged within the client TTL', (s) => s.stats.clients)
    gauge('master_segment_count', 'Mounted segments', (s) => s.stats.segments)
    const perSegment = (name: string, help: string, read: (seg: SegmentInfo) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['segment'],
        registers,
        collect() {
          // Reset first: an unmounted segment's series must disappear.
          this.reset()
          for (const seg of self.read().segments) this.set({segment: seg.name}, read(seg))
        },
      })
    perSegment('segment_allocated_bytes', 'Bytes allocated in a segment', (s) => s.used)
    perSegment('segment_total_capacity_bytes', 'Bytes contributed by a segment', (s) => s.capacity)

    // Mirrors of the service's own counters (monotonic there; a counter here).
    const mirror = (name: string, help: string, read: (m: MasterServiceMetrics) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(read(self.service.metrics()))
        },
      })
    mirror('master_attempted_evictions_total', 'Eviction rounds started (background and inside PutStart)', (m) => m.evictionRounds + m.syncEvictions)
    mirror('master_successful_evictions_total', 'Eviction rounds that evicted at least one object', (m) => m.successfulEvictions)
    mirror('master_evicted_key_count', 'Objects whose memory replicas were evicted', (m) => m.evictedObjects)
    mirror('master_evicted_size_bytes', 'Bytes of memory replicas freed by eviction (object size times memory replicas)', (m) => m.evictedBytes)
    mirror('master_put_start_discard_cnt', 'Unfinished puts taken over by a new PutStart (after putStartDiscardTimeout) or an upsert', (m) => m.discardedPuts)
    mirror('master_put_start_release_cnt', 'Replicas of unfinished puts released after putStartReleaseTimeout', (m) => m.releasedZombieReplicas)
    mirror('master_expired_clients_total', 'Segment owners declared dead (silent for clientTtl)', (m) => m.expiredClients)
    new Gauge({
      name: 'master_tick_duration_max_seconds',
      help: 'Longest background tick so far',
      registers,
      collect() {
        this.set(self.service.metrics().maxTickMs / 1000)
      },
    })

    // FastHistogram: observed per committed key and per RPC (fast-histogram.ts).
    this.valueSize = new FastHistogram({
      name: 'master_value_size_bytes',
      help: 'Sizes of values accepted by PutStart',
      buckets: VALUE_SIZE_BUCKETS,
      registers,
    })
    this.rpcDuration = new FastHistogram({
      name: 'master_rpc_duration_seconds',
      help: 'Time the master spent in an RPC (service time, without gRPC decoding)',
      labelNames: ['method'],
      buckets: RPC_DURATION_BUCKETS,
      registers,
    })
    this.rpcErrors = new Counter({
      name: 'master_rpc_errors_total',
      help: 'Failed RPCs by method and ErrorCode',
      labelNames: ['method', 'code'],
      registers,
    })
    this.putStartAllocFailures = new Counter({
      name: 'master_put_start_alloc_failures_total',
      help: 'PutStarts refused for lack of space (NO_AVAILABLE_HANDLE)',
      registers,
    })
    this.putStartPartialAllocations = new Counter({
      name: 'master_put_start_partial_allocations_total',
      help: 'PutStarts that placed fewer replicas than asked',
      registers,
    })

    for (const {op, kind} of Object.values(MASTER_OPS)) {
      const batch = kind !== 'single'
      const counter = (suffix: string, help: string): Inc => new Counter({name: `master_${op}_${suffix}`, help, registers})
      const c: OpCounters = {
        requests: counter('requests_total', `${op} requests`),
        failures: counter('failures_total', batch ? `${op} requests where every item (or the call) failed` : `${op} requests that failed`),
        duration: this.rpcDuration.labels({method: op}),
      }
      if (batch) {
        c.partial = counter('partial_successes_total', `${op} requests where some items failed`)
        c.items = counter('items_total', `items in ${op} requests`)
        c.failedItems = counter('failed_items_total', `failed items in ${op} requests`)
      }
      this.ops.set(op, c)
    }
    // Pre-create the latency series of the data-path RPCs so dashboards show them from the start.
    for (const op of ['put_start', 'put_end', 'get_replica_list', 'exist_key', 'remove', 'ping']) this.rpcDuration.zero({method: op})

    if (options.defaultMetrics !== false) collectDefaultMetrics({register: this.registry})
  }

  /** The gauges' view of the service, computed at most once per scrape (50 ms). */
  private read(): Snapshot {
    const now = performance.now()
    if (this.snapshot === undefined || now - this.snapshot.at > 50) {
      this.snapshot = {at: now, stats: this.service.stats(), segments: this.service.getAllSegments()}
    }
    return this.snapshot
  }

  /** Prometheus text (exposition format 0.0.4). */
  async text(): Promise<string> {
    this.snapshot = undefined
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** Counters of one op (for instrumentService). */
  counters(op: string): OpCounters {
    const c = this.ops.get(op)
    if (c === undefined) throw new MooncakeError('INTERNAL_ERROR', `no metrics for op ${op}`)
    return c
  }
}

function errorCode(err: unknown): string {
  return isMooncakeError(err) ? err.code : 'INTERNAL_ERROR'
}

/**
 * Wraps the service so every call is counted and timed: `master_<op>_requests_total`,
 * `master_<op>_failures_total`, batch item counters, `master_rpc_duration_seconds{method}`,
 * `master_rpc_errors_total{method,code}`, `master_value_size_bytes` and the PutStart allocation
 * counters. Returns an object implementing MasterCalls (calls are forwarded synchronously;
 * results and errors are untouched; a method missing from MASTER_OPS is forwarded uncounted).
 */
export function instrumentService(service: MasterService, metrics: MasterMetrics): MasterCalls {
  const out: Record<string, unknown> = {}
  for (const [method, {op, kind}] of Object.entries(MASTER_OPS) as [keyof MasterCalls, {op: string; kind: Kind}][]) {
    const fn = (service[method] as (...args: unknown[]) => unknown).bind(service)
    const c = metrics.counters(op)
    const failed = (err: unknown, items: number) => {
      c.failures.inc()
      if (items > 0) c.failedItems?.inc(items)
      metrics.rpcErrors.inc({method: op, code: errorCode(err)})
    }
    let call: (...args: unknown[]) => unknown
    if (kind === 'single') {
      call = (...args) => {
        c.requests.inc()
        const t0 = performance.now()
        try {
          return fn(...args)
        } catch (err) {
          failed(err, 0)
          throw err
        } finally {
          c.duration.observe((performance.now() - t0) / 1000)
        }
      }
    } else {
      call = (...args) => {
        c.requests.inc()
        const n = Array.isArray(args[0]) ? args[0].length : 0
        c.items!.inc(n)
        const t0 = performance.now()
        let result: unknown
        try {
          result = fn(...args)
        } catch (err) {
          failed(err, n)
          throw err
        } finally {
          c.duration.observe((performance.now() - t0) / 1000)
        }
        // batchExistKey answers false for a missing key: that is an answer, not a failed item.
        if (kind === 'batch') {
          const results = result as ItemResult<unknown>[]
          let bad = 0
          let code: string | undefined
          for (const r of results) {
            if (!r.ok) {
              bad += 1
              code ??= r.code
            }
          }
          if (bad > 0) {
            c.failedItems!.inc(bad)
            if (bad === results.length) {
              c.failures.inc()
              metrics.rpcErrors.inc({method: op, code: code ?? 'INTERNAL_ERROR'})
            } else c.partial!.inc()
          }
        }
        return result
      }
    }
    out[method] = call
  }

  // PutStart: value sizes, allocation failures, partial placements.
  const putLike = (single: (req: PutStartRequest) => PutStartResult) => (req: PutStartRequest) => {
    try {
      const res = single(req)
      observePut(metrics, req, res)
      return res
    } catch (err) {
      if (isMooncakeError(err, 'NO_AVAILABLE_HANDLE')) metrics.putStartAllocFailures.inc()
      throw err
    }
  }
  out.putStart = putLike(out.putStart as MasterCalls['putStart'])
  out.upsertStart = putLike(out.upsertStart as MasterCalls['upsertStart'])
  const batchStart = out.batchPutStart as MasterCalls['batchPutStart']
  out.batchPutStart = (reqs: PutStartRequest[]) => {
    const results = batchStart(reqs)
    results.forEach((r, i) => {
      if (r.ok) observePut(metrics, reqs[i]!, r.value)
      else if (r.code === 'NO_AVAILABLE_HANDLE') metrics.putStartAllocFailures.inc()
    })
    return results
  }
  // Objects committed into reserved space are puts too: their sizes count the same.
  const batchCommit = out.batchPutCommit as MasterCalls['batchPutCommit']
  out.batchPutCommit = (reqs: PutCommitRequest[]) => {
    const results = batchCommit(reqs)
    results.forEach((r, i) => {
      if (r.ok) metrics.valueSize.observe(reqs[i]!.size)
    })
    return results
  }
  // Chunked regex scans (the gRPC handlers, src/lib/master/regex-scan.ts): one request per scan,
  // counted at its first chunk under the op of its mode; the duration is the scanning time.
  const scanOps: Record<string, string> = {replicas: MASTER_OPS.getReplicaListByRegex.op, query: MASTER_OPS.queryByRegex.op, remove: MASTER_OPS.removeByRegex.op}
  out.regexScan = (pattern: string, options: RegexScanOptions): RegexScanChunk => {
    const c = metrics.counters(scanOps[options?.mode] ?? MASTER_OPS.queryByRegex.op)
    if (options?.cursor === undefined) c.requests.inc()
    try {
      const chunk = service.regexScan(pattern, options)
      if (chunk.next === undefined) c.duration.observe(chunk.scanMs / 1000)
      return chunk
    } catch (err) {
      c.failures.inc()
      metrics.rpcErrors.inc({method: scanOps[options?.mode] ?? MASTER_OPS.queryByRegex.op, code: errorCode(err)})
      throw err
    }
  }
  // A call added to MasterCalls later and not listed in MASTER_OPS still works (uncounted).
  return new Proxy(out, {
    get(target, prop) {
      if (prop in target) return target[prop as string]
      const v = (service as unknown as Record<string | symbol, unknown>)[prop]
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(service) : v
    },
  }) as unknown as MasterCalls
}

function observePut(metrics: MasterMetrics, req: PutStartRequest, res: PutStartResult): void {
  metrics.valueSize.observe(req.size)
  let memory = 0
  for (const r of res.replicas) if (r.type === 'memory') memory++
  if (memory < res.requestedReplicas) metrics.putStartPartialAllocations.inc()
}

