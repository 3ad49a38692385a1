/**
 * Metrics of the client library and of segment owners (bytes moved, latency, retries, replica
 * fallbacks, pings). Each ClientMetrics has its own prom-client Registry; a process that wants
 * to expose it serves `text()` (see `startMetricsServer`). Every record* method is cheap and
 * safe to call on hot paths; labels take only bounded values (op, transport, result, ErrorCode).
 */
import {collectDefaultMetrics, Counter, Gauge, Histogram, Registry} from 'prom-client'

import type {ServedStats} from '../client/data-path.js'
import {startHttpServer, type HttpRoute, type RunningHttp} from '../master/http.js'

export type ClientOp = 'put' | 'get' | 'remove' | 'exist' | 'query' | 'list'
/** How bytes moved (S14). */
export type TransferPath = 'local' | 'tcp' | 'file'

/** Seconds; client operations span sub-millisecond local copies to multi-second 4 GiB transfers. */
export const CLIENT_DURATION_BUCKETS = [1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Bytes per operation: 4 KiB to 4 GiB. */
export const CLIENT_SIZE_BUCKETS = [4096, 65_536, 1_048_576, 4_194_304, 16_777_216, 67_108_864, 268_435_456, 1_073_741_824, 4_294_967_296]

export interface ClientMetricsOptions {
  /** Register prom-client's process and event-loop metrics in this registry too. @default false */
  defaultMetrics?: boolean
  /** Constant labels on every series (e.g. `{role: 'segment'}`); keep them bounded. @default none */
  labels?: Record<string, string>
}

export class ClientMetrics {
  readonly registry = new Registry()
  private readonly ops: Counter<'op' | 'result'>
  private readonly opDuration: Histogram<'op'>
  private readonly bytes: Counter<'op' | 'path'>
  private readonly sizes: Histogram<'op'>
  private readonly transferDuration: Histogram<'op' | 'path'>
  private readonly retries: Counter<'op' | 'code'>
  private readonly fallbacks: Counter<'code'>
  private readonly servedBytes: Counter<'direction'>
  private readonly servedRequests: Counter
  /** Cumulative counters of data servers (read at scrape time), with what was last added from each. */
  private readonly servedSources = new Set<{read: () => ServedStats; seen: ServedStats}>()
  private readonly pings: Counter<'result'>
  private readonly pingDuration: Histogram
  private readonly remounts: Counter
  private readonly leaseRenewals: Counter

  constructor(options: ClientMetricsOptions = {}) {
    if (options.labels) this.registry.setDefaultLabels(options.labels)
    const registers = [this.registry]
    this.ops = new Counter({
      name: 'mooncake_client_operations_total',
      help: 'Client operations by op and result (ok or an ErrorCode name)',
      labelNames: ['op', 'result'],
      registers,
    })
    this.opDuration = new Histogram({
      name: 'mooncake_client_operation_duration_seconds',
      help: 'Duration of whole client operations (master calls and transfers)',
      labelNames: ['op'],
      buckets: CLIENT_DURATION_BUCKETS,
      registers,
    })
    this.bytes = new Counter({
      name: 'mooncake_client_bytes_total',
      help: 'Value bytes moved by this client, by op (put/get) and path (local, tcp, file)',
      labelNames: ['op', 'path'],
      registers,
    })
    this.sizes = new Histogram({
      name: 'mooncake_client_value_size_bytes',
      help: 'Sizes of values put and got',
      labelNames: ['op'],
      buckets: CLIENT_SIZE_BUCKETS,
      registers,
    })
    this.transferDuration = new Histogram({
      name: 'mooncake_client_transfer_duration_seconds',
      help: 'Duration of the data-plane part of an operation (one replica write or one read)',
      labelNames: ['op', 'path'],
      buckets: CLIENT_DURATION_BUCKETS,
      registers,
    })
    this.retries = new Counter({
      name: 'mooncake_client_retries_total',
      help: 'Retried master calls or transfers, by op and the ErrorCode that caused the retry',
      labelNames: ['op', 'code'],
      registers,
    })
    this.fallbacks = new Counter({
      name: 'mooncake_client_replica_fallbacks_total',
      help: 'Reads that abandoned a replica for another one (or the disk copy), by ErrorCode',
      labelNames: ['code'],
      registers,
    })
    this.leaseRenewals = new Counter({
      name: 'mooncake_client_lease_renewals_total',
      help: 'Lease renewals during long reads',
      registers,
    })
    const self = this
    this.servedBytes = new Counter({
      name: 'mooncake_segment_served_bytes_total',
      help: 'Bytes other clients read from (direction=read) or wrote to (direction=write) this segment over TCP',
      labelNames: ['direction'],
      registers,
      collect() {
        self.syncServed()
      },
    })
    this.servedRequests = new Counter({
      name: 'mooncake_segment_served_requests_total',
      help: 'Transfer requests served by this segment owner over TCP',
      registers,
      collect() {
        self.syncServed()
      },
    })
    this.pings = new Counter({
      name: 'mooncake_segment_pings_total',
      help: 'Liveness pings of this segment owner by result (OK, NEED_REMOUNT, UNMOUNTED, or an ErrorCode)',
      labelNames: ['result'],
      registers,
    })
    this.pingDuration = new Histogram({
      name: 'mooncake_segment_ping_duration_seconds',
      help: 'Round-trip time of liveness pings',
      buckets: [1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    })
    this.remounts = new Counter({
      name: 'mooncake_segment_remounts_total',
      help: 'Re-mounts after NEED_REMOUNT (master restart or failover)',
      registers,
    })
    if (options.defaultMetrics) collectDefaultMetrics({register: this.registry})
  }

  /** One whole client operation finished (`result`: 'ok' or the ErrorCode name). */
  recordOperation(op: ClientOp, seconds: number, result = 'ok'): void {
    this.ops.inc({op, result})
    this.opDuration.observe({op}, seconds)
  }

  /** Value bytes moved for one put or get, and how long the data plane took. */
  recordTransfer(op: 'put' | 'get', path: TransferPath, bytes: number, seconds?: number): void {
    this.recordBytes(op, path, bytes, seconds)
    this.recordValueSize(op, bytes)
  }

  /** Bytes moved by one data-plane transfer (a slice, or a batch of small values) and how long it took. */
  recordBytes(op: 'put' | 'get', path: TransferPath, bytes: number, seconds?: number): void {
    this.bytes.inc({op, path}, bytes)
    if (seconds !== undefined) this.transferDuration.observe({op, path}, seconds)
  }

  /** The size of one value put or got (once per value, whatever the replicas and slices). */
  recordValueSize(op: 'put' | 'get', bytes: number): void {
    this.sizes.observe({op}, bytes)
  }

  /** A master call or transfer is retried because of `code`. */
  recordRetry(op: ClientOp, code: string): void {
    this.retries.inc({op, code})
  }

  /** A read gave up a replica (CHECKSUM_MISMATCH, TRANSFER_FAIL, ...) and tries another one. */
  recordReplicaFallback(code: string): void {
    this.fallbacks.inc({code})
  }

  recordLeaseRenewal(): void {
    this.leaseRenewals.inc()
  }

  /** A segment owner served a transfer of `bytes` (a remote read of, or write into, its memory). */
  recordServed(direction: 'read' | 'write', bytes: number): void {
    this.servedBytes.inc({direction}, bytes)
    this.servedRequests.inc()
  }

  /**
   * Follows a data server's cumulative counters (e.g. the transfer engine's): at each scrape,
   * what grew since the last one is added to the served series. The returned function adds
   * the last growth and stops following it (call it before the server closes).
   */
  trackServed(read: () => ServedStats): () => void {
    const source = {read, seen: {bytesRead: 0, bytesWritten: 0, requests: 0}}
    this.servedSources.add(source)
    return () => {
      this.syncOne(source)
      this.servedSources.delete(source)
    }
  }

  private syncServed(): void {
    for (const s of this.servedSources) this.syncOne(s)
  }

  private syncOne(source: {read: () => ServedStats; seen: ServedStats}): void {
    let now: ServedStats
    try {
      now = source.read()
    } catch {
      return
    }
    const {seen} = source
    // A counter that went backwards was restarted: count from its new start.
    const grow = (a: number, b: number) => (a >= b ? a - b : a)
    const read = grow(now.bytesRead, seen.bytesRead)
    const written = grow(now.bytesWritten, seen.bytesWritten)
    const requests = grow(now.requests, seen.requests)
    if (read > 0) this.servedBytes.inc({direction: 'read'}, read)
    if (written > 0) this.servedBytes.inc({direction: 'write'}, written)
    if (requests > 0) this.servedRequests.inc(requests)
    source.seen = {...now}
  }

  /** A liveness ping finished: `result` is the ping status, or the ErrorCode of a failed ping. */
  recordPing(result: string, seconds: number): void {
    this.pings.inc({result})
    this.pingDuration.observe(seconds)
  }

  recordRemount(): void {
    this.remounts.inc()
  }

  /**
   * A point-in-time value read at scrape time (e.g. the engine's open connections or the
   * segment's capacity). `name` should start with `mooncake_client_` or `mooncake_segment_`.
   */
  addGauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read())
      },
    })
  }

  /** Prometheus text (exposition format 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

/** Serves `/metrics` (and `/health`) of a ClientMetrics on host:port (0 = a free port). */
export async function startMetricsServer(metrics: ClientMetrics, host = '127.0.0.1', port = 0): Promise<RunningHttp> {
  const routes = new Map<string, HttpRoute>([
    ['/metrics', async () => ({status: 200, contentType: metrics.contentType, body: await metrics.text()})],
    ['/health', () => ({status: 200, contentType: 'application/json', body: '{"status":"ok"}\n'})],
  ])
  return startHttpServer(host, port, routes)
}
