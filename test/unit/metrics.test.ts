// Metric values after a known sequence of calls on a real MasterService wrapped by
// instrumentService, read back through the Prometheus text and the parser `top` uses.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import type {MasterCalls} from '../../src/lib/master/api.js'
import {ClientMetrics} from '../../src/lib/metrics/client.js'
import {instrumentService, MASTER_OPS, MasterMetrics} from '../../src/lib/metrics/master.js'
import {histogramQuantile, parsePrometheusText, quantileOfBuckets} from '../../src/lib/metrics/parse.js'
import {KiB, MiB, mount, setup} from './master/helpers.js'

function fresh(options: Parameters<typeof setup>[0] = {}) {
  const ctx = setup({leaseTtlMs: 1000, ...options})
  const metrics = new MasterMetrics(ctx.svc, {defaultMetrics: false})
  const calls = instrumentService(ctx.svc, metrics)
  return {...ctx, metrics, calls}
}

async function scrape(metrics: MasterMetrics) {
  return parsePrometheusText(await metrics.text())
}

function throws(fn: () => unknown, code: string): void {
  try {
    fn()
  } catch (err) {
    assert.is((err as {code?: string}).code, code)
    return
  }
  assert.unreachable(`expected ${code}`)
}

test('counters of an op MASTER_OPS does not list: INTERNAL_ERROR', () => {
  const {metrics} = fresh()
  assert.ok(metrics.counters(MASTER_OPS.putStart.op).requests)
  throws(() => metrics.counters('no_such_op'), 'INTERNAL_ERROR')
})

let rid = 0
const startPut = (calls: MasterCalls, key: string, size: number, clientId = 'writer') => calls.putStart({clientId, requestId: `r${++rid}`, key, size})
const put = (calls: MasterCalls, key: string, size: number) => {
  startPut(calls, key, size)
  calls.putEnd({clientId: 'writer', key})
}

test('every MasterCalls method is wrapped and answers like the service', () => {
  const {svc, calls} = fresh()
  for (const name of Object.keys(MASTER_OPS)) assert.type((calls as unknown as Record<string, unknown>)[name], 'function', name)
  mount(svc, 'seg-a', MiB)
  put(calls, 'k', 100)
  assert.equal(calls.query('k'), svc.query('k'))
  assert.equal(calls.stats(), svc.stats())
})

test('per-RPC counters, batch counters, value sizes and latency after a known sequence', async () => {
  const {svc, metrics, calls} = fresh()
  mount(svc, 'seg-a', MiB, {clientId: 'owner-a'})
  calls.mountSegment({clientId: 'owner-b', segment: {id: 'id-b', name: 'seg-b', endpoints: ['h:2'], size: 2 * MiB, hostId: 'h'}})

  put(calls, 'k1', 5000) // 4K < 5000 <= 64K
  put(calls, 'k2', 100 * KiB) // 64K < . <= 256K
  throws(() => startPut(calls, 'k1', 10), 'OBJECT_ALREADY_EXISTS')
  throws(() => startPut(calls, 'k3', 0), 'INVALID_PARAMS')
  calls.getReplicaList('k1')
  throws(() => calls.getReplicaList('missing'), 'OBJECT_NOT_FOUND')
  assert.is(calls.existKey('k1'), true)
  assert.is(calls.existKey('missing'), false)
  calls.query('k2')
  calls.remove({key: 'k2'})
  throws(() => calls.remove({key: 'k2'}), 'OBJECT_NOT_FOUND')
  // k1 is under lease: remove refuses.
  throws(() => calls.remove({key: 'k1'}), 'OBJECT_HAS_LEASE')

  const started = calls.batchPutStart([
    {clientId: 'writer', requestId: 'b1', key: 'k3', size: 1000},
    {clientId: 'writer', requestId: 'b2', key: 'k1', size: 1000},
  ])
  assert.equal(started.map((r) => r.ok), [true, false])
  const ended = calls.batchPutEnd([{clientId: 'writer', key: 'k3'}])
  assert.equal(ended.map((r) => r.ok), [true])
  // Reserved space: a committed object counts as a put of its size; a refused one does not.
  const reserved = calls.reserveSpace({clientId: 'writer', size: 64 * KiB})
  const at = reserved.memory.offset
  const committed = calls.batchPutCommit([
    {clientId: 'writer', reservationId: reserved.reservationId, key: 'r1', offset: at, size: 2000},
    {clientId: 'writer', reservationId: reserved.reservationId, key: 'k1', offset: at + 4 * KiB, size: 10},
  ])
  assert.equal(committed.map((r) => r.ok), [true, false])
  calls.releaseSpace({clientId: 'writer', reservationId: reserved.reservationId})
  calls.batchGetReplicaList(['nope1', 'nope2'])
  assert.equal(calls.batchExistKey(['k1', 'nope']), [true, false])
  calls.ping({clientId: 'owner-a'})
  calls.ping({clientId: 'owner-a'})

  const m = await scrape(metrics)
  const v = (name: string, labels: Record<string, string> = {}) => m.get(name, labels)

  assert.is(v('master_put_start_requests_total'), 4)
  assert.is(v('master_put_start_failures_total'), 2)
  assert.is(v('master_put_end_requests_total'), 2)
  assert.is(v('master_put_end_failures_total'), 0)
  assert.is(v('master_get_replica_list_requests_total'), 1 + 1)
  assert.is(v('master_get_replica_list_failures_total'), 1)
  assert.is(v('master_exist_key_requests_total'), 2)
  assert.is(v('master_exist_key_failures_total'), 0)
  assert.is(v('master_remove_requests_total'), 3)
  assert.is(v('master_remove_failures_total'), 2)
  assert.is(v('master_query_requests_total'), 1)
  assert.is(v('master_mount_segment_requests_total'), 1, 'seg-a was mounted on the service directly')
  assert.is(v('master_ping_requests_total'), 2)
  assert.is(v('master_remove_all_requests_total'), 0)

  assert.is(v('master_batch_put_start_requests_total'), 1)
  assert.is(v('master_batch_put_start_items_total'), 2)
  assert.is(v('master_batch_put_start_failed_items_total'), 1)
  assert.is(v('master_batch_put_start_partial_successes_total'), 1)
  assert.is(v('master_batch_put_start_failures_total'), 0)
  assert.is(v('master_batch_put_end_requests_total'), 1)
  assert.is(v('master_batch_put_end_failed_items_total'), 0)
  assert.is(v('master_batch_get_replica_list_failures_total'), 1, 'every item failed: the batch counts as failed')
  assert.is(v('master_batch_get_replica_list_partial_successes_total'), 0)
  assert.is(v('master_batch_get_replica_list_failed_items_total'), 2)
  assert.is(v('master_batch_exist_key_items_total'), 2)
  assert.is(v('master_batch_exist_key_failed_items_total'), 0, 'a missing key is an answer, not a failure')

  assert.is(v('master_rpc_errors_total', {method: 'put_start', code: 'OBJECT_ALREADY_EXISTS'}), 1)
  assert.is(v('master_rpc_errors_total', {method: 'put_start', code: 'INVALID_PARAMS'}), 1)
  assert.is(v('master_rpc_errors_total', {method: 'remove', code: 'OBJECT_HAS_LEASE'}), 1)
  assert.is(v('master_rpc_duration_seconds_count', {method: 'put_start'}), 4)
  assert.is(v('master_rpc_duration_seconds_count', {method: 'ping'}), 2)
  assert.is(v('master_rpc_duration_seconds_bucket', {method: 'ping', le: '+Inf'}), 2)
  assert.ok(histogramQuantile(m, 'master_rpc_duration_seconds', 0.99, {method: 'put_start'})! < 0.5)

  assert.is(v('master_batch_put_commit_items_total'), 2)
  assert.is(v('master_batch_put_commit_failed_items_total'), 1)
  assert.is(v('master_reserve_space_requests_total'), 1)
  assert.is(v('master_release_space_requests_total'), 1)

  // Value sizes: 5000, 100 KiB, 1000 (batch) and 2000 (committed) were accepted.
  assert.is(v('master_value_size_bytes_count'), 4)
  assert.is(v('master_value_size_bytes_bucket', {le: '4096'}), 2)
  assert.is(v('master_value_size_bytes_bucket', {le: '65536'}), 3)
  assert.is(v('master_value_size_bytes_bucket', {le: '262144'}), 4)
  assert.is(v('master_value_size_bytes_sum'), 5000 + 100 * KiB + 1000 + 2000)

  // Point-in-time gauges equal the service's own view.
  const stats = svc.stats()
  assert.is(v('master_key_count'), stats.keys)
  assert.is(v('master_key_count'), 3)
  assert.is(v('master_allocated_bytes'), stats.used)
  assert.is(v('master_total_capacity_bytes'), 3 * MiB)
  assert.is(v('master_active_clients'), stats.clients)
  assert.is(v('master_soft_pin_key_count'), 0)
  assert.is(v('segment_total_capacity_bytes', {segment: 'seg-a'}), MiB)
  assert.is(v('segment_total_capacity_bytes', {segment: 'seg-b'}), 2 * MiB)
  const perSegment = svc.getAllSegments().reduce((n, s) => n + s.used, 0)
  assert.is(m.sum('segment_allocated_bytes'), perSegment)

  // Never labelled by key or client id.
  const forbidden = new Set(['k1', 'k2', 'k3', 'missing', 'nope', 'writer', 'owner-a', 'owner-b'])
  for (const s of m.samples) for (const value of Object.values(s.labels)) assert.not.ok(forbidden.has(value), `${s.name} labelled ${value}`)
})

test('an unmounted segment disappears from the per-segment series', async () => {
  const {svc, metrics, calls} = fresh()
  mount(svc, 'seg-a', MiB)
  mount(svc, 'seg-b', MiB)
  assert.is((await scrape(metrics)).all('segment_total_capacity_bytes').length, 2)
  calls.unmountSegment({name: 'seg-b'})
  const m = await scrape(metrics)
  assert.equal(
    m.all('segment_total_capacity_bytes').map((s) => s.labels.segment),
    ['seg-a'],
  )
  assert.is(m.get('master_unmount_segment_requests_total'), 1)
})

test('soft-pinned keys and value sizes of upserts', async () => {
  const {svc, metrics, calls} = fresh()
  mount(svc, 'seg-a', MiB)
  calls.putStart({clientId: 'writer', requestId: 'p1', key: 'pinned', size: 10, config: {withSoftPin: true}})
  calls.putEnd({clientId: 'writer', key: 'pinned'})
  calls.upsertStart({clientId: 'writer', requestId: 'u1', key: 'pinned', size: 20})
  calls.upsertEnd({clientId: 'writer', key: 'pinned'})
  const m = await scrape(metrics)
  assert.is(m.get('master_upsert_start_requests_total'), 1)
  assert.is(m.get('master_value_size_bytes_count'), 2)
  assert.is(m.get('master_soft_pin_key_count'), svc.stats().softPinnedKeys)
})

test('eviction counters: a PutStart into a full pool evicts synchronously; the background loop evicts above the watermark', async () => {
  const {svc, metrics, calls, clock} = fresh({evictionHighWatermarkRatio: 0.5, evictionRatio: 0.25})
  mount(svc, 'seg-a', 64 * KiB)
  let m = await scrape(metrics)
  assert.is(m.get('master_attempted_evictions_total'), 0)
  assert.is(m.get('master_successful_evictions_total'), 0)
  // 16 objects of 4 KiB fill the segment (no tick runs in between).
  for (let i = 0; i < 16; i++) put(calls, `fill${i}`, 4 * KiB)
  clock.advance(10)
  put(calls, 'one-more', 4 * KiB) // no space: synchronous eviction [ours]
  m = await scrape(metrics)
  assert.ok(m.get('master_attempted_evictions_total')! >= 1)
  assert.is(m.get('master_successful_evictions_total'), 1)
  const evicted = m.get('master_evicted_key_count')!
  assert.ok(evicted >= 1)
  assert.is(m.get('master_put_start_alloc_failures_total'), 0)

  // Above the 50 % watermark, the background loop runs a round on the next ticks.
  for (let i = 0; i < 20 && svc.metrics().evictedObjects === evicted; i++) svc.tick()
  for (let i = 0; i < 20 && svc.metrics().evictionInProgress; i++) svc.tick()
  m = await scrape(metrics)
  assert.ok(m.get('master_evicted_key_count')! > evicted)
  assert.is(m.get('master_successful_evictions_total'), 2)
  assert.is(m.get('master_evicted_key_count'), svc.metrics().evictedObjects)
})

test('master_evicted_size_bytes counts the memory freed by eviction (size x memory replicas), exactly', async () => {
  const {svc, metrics, calls, clock} = fresh({evictionHighWatermarkRatio: 0.99, evictionRatio: 0.05})
  mount(svc, 'seg-a', MiB)
  mount(svc, 'seg-b', MiB)
  // 10 objects of 5000 bytes with 2 replicas, and 4 of 3000 bytes with 1 replica.
  for (let i = 0; i < 10; i++) {
    calls.putStart({clientId: 'writer', requestId: `two${i}`, key: `two${i}`, size: 5000, config: {replicaNum: 2}})
    calls.putEnd({clientId: 'writer', key: `two${i}`})
  }
  for (let i = 0; i < 4; i++) put(calls, `one${i}`, 3000)
  let m = await scrape(metrics)
  assert.is(m.get('master_evicted_size_bytes'), 0)
  clock.advance(2000) // every lease (1 s) expired
  // target 1.0: every evictable object goes.
  const r = svc.runEviction(1, 1)
  assert.is(r.evicted, 14)
  m = await scrape(metrics)
  assert.is(m.get('master_evicted_key_count'), 14)
  assert.is(m.get('master_evicted_size_bytes'), 10 * 5000 * 2 + 4 * 3000)
  assert.is(svc.metrics().evictedBytes, 10 * 5000 * 2 + 4 * 3000)
})

test('master_put_start_discard_cnt counts unfinished puts taken over, not the refused ones', async () => {
  const {svc, metrics, calls, clock} = fresh({putStartDiscardTimeoutMs: 1000, putStartReleaseTimeoutMs: 5000})
  mount(svc, 'seg-a', MiB)
  startPut(calls, 'z', 100, 'crashed-writer')
  startPut(calls, 'u', 100, 'crashed-writer')
  clock.advance(500)
  // Within putStartDiscardTimeout the key stays busy: nothing is discarded.
  throws(() => startPut(calls, 'z', 100, 'writer'), 'OBJECT_ALREADY_EXISTS')
  assert.is((await scrape(metrics)).get('master_put_start_discard_cnt'), 0)
  clock.advance(600)
  startPut(calls, 'z', 100, 'writer') // takes the zombie over
  calls.putEnd({clientId: 'writer', key: 'z'})
  // An upsert preempts an unfinished put at once.
  calls.upsertStart({clientId: 'writer', requestId: 'up1', key: 'u', size: 200})
  calls.upsertEnd({clientId: 'writer', key: 'u'})
  // A complete object replaced by an upsert is not a discarded put.
  calls.upsertStart({clientId: 'writer', requestId: 'up2', key: 'z', size: 300})
  calls.upsertEnd({clientId: 'writer', key: 'z'})
  const m = await scrape(metrics)
  assert.is(m.get('master_put_start_discard_cnt'), 2)
  assert.is(svc.metrics().discardedPuts, 2)
})

test('NO_AVAILABLE_HANDLE counts as an allocation failure', async () => {
  const {svc, metrics, calls} = fresh()
  mount(svc, 'seg-a', 64 * KiB)
  throws(() => startPut(calls, 'huge', MiB), 'NO_AVAILABLE_HANDLE')
  const m = await scrape(metrics)
  assert.is(m.get('master_put_start_alloc_failures_total'), 1)
  assert.is(m.get('master_rpc_errors_total', {method: 'put_start', code: 'NO_AVAILABLE_HANDLE'}), 1)
})

test('default metrics are registered in the master registry (not the global one)', async () => {
  const {svc} = setup()
  const a = new MasterMetrics(svc)
  const b = new MasterMetrics(svc)
  const text = await a.text()
  assert.match(text, /process_cpu_user_seconds_total/)
  assert.match(text, /nodejs_eventloop_lag_seconds/)
  assert.ok((await b.text()).includes('master_key_count'))
})

test('ClientMetrics records operations, bytes, retries, fallbacks and pings', async () => {
  const c = new ClientMetrics({labels: {role: 'client'}})
  c.recordOperation('put', 0.002)
  c.recordOperation('get', 0.004)
  c.recordOperation('get', 0.5, 'OBJECT_NOT_FOUND')
  c.recordTransfer('put', 'tcp', 1 << 20, 0.001)
  c.recordTransfer('get', 'local', 4096)
  c.recordRetry('get', 'RPC_FAIL')
  c.recordReplicaFallback('CHECKSUM_MISMATCH')
  c.recordServed('read', 100)
  c.recordPing('OK', 0.0004)
  c.recordRemount()
  c.addGauge('mooncake_client_open_connections', 'open data connections', () => 3)
  const m = parsePrometheusText(await c.text())
  assert.is(m.get('mooncake_client_operations_total', {op: 'get', result: 'ok'}), 1)
  assert.is(m.get('mooncake_client_operations_total', {op: 'get', result: 'OBJECT_NOT_FOUND'}), 1)
  assert.is(m.get('mooncake_client_bytes_total', {op: 'put', path: 'tcp'}), 1 << 20)
  assert.is(m.get('mooncake_client_bytes_total', {op: 'get', path: 'local'}), 4096)
  assert.is(m.get('mooncake_client_retries_total', {op: 'get', code: 'RPC_FAIL'}), 1)
  assert.is(m.get('mooncake_client_replica_fallbacks_total', {code: 'CHECKSUM_MISMATCH'}), 1)
  assert.is(m.get('mooncake_segment_served_bytes_total', {direction: 'read'}), 100)
  assert.is(m.get('mooncake_segment_pings_total', {result: 'OK'}), 1)
  assert.is(m.get('mooncake_segment_remounts_total'), 1)
  assert.is(m.get('mooncake_client_open_connections'), 3)
  assert.is(m.get('mooncake_client_operations_total', {op: 'put'}), 1)
  assert.is(m.all('mooncake_client_operations_total')[0]!.labels.role, 'client')
})

test('every metric the Grafana dashboard queries is exported', async () => {
  const {readFileSync} = await import('node:fs')
  const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    panels: {targets?: {expr: string}[]}[]
  }
  const {svc, metrics, calls} = fresh()
  mount(svc, 'seg-a', MiB)
  put(calls, 'x', 100)
  throws(() => calls.getReplicaList('missing'), 'OBJECT_NOT_FOUND') // master_rpc_errors_total appears with its first error
  const exported = new Set((await scrape(new MasterMetrics(svc))).samples.map((s) => s.name))
  for (const s of (await scrape(metrics)).samples) exported.add(s.name)
  const used = new Set<string>()
  for (const p of dashboard.panels) for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)) used.add(m[1]!)
  assert.ok(used.size > 20)
  const missing = [...used].filter((n) => !exported.has(n))
  assert.equal(missing, [], `queried but not exported: ${missing.join(', ')}`)
})

test('parser: labels with escapes, +Inf, comments; quantiles interpolate like PromQL', () => {
  const m = parsePrometheusText(
    [
      '# HELP x_total a thing',
      '# TYPE x_total counter',
      'x_total{a="q\\"uo}te",b="2"} 7',
      'y 1.5e3',
      'h_bucket{le="0.1"} 5',
      'h_bucket{le="0.2"} 10',
      'h_bucket{le="+Inf"} 10',
      '',
    ].join('\n'),
  )
  assert.is(m.get('x_total', {a: 'q"uo}te'}), 7)
  assert.is(m.get('y'), 1500)
  assert.is(histogramQuantile(m, 'h', 0.5), 0.1)
  assert.ok(Math.abs(histogramQuantile(m, 'h', 0.75)! - 0.15) < 1e-9)
  assert.is(quantileOfBuckets([], 0.5), undefined)
  assert.is(quantileOfBuckets([[Infinity, 0]], 0.5), undefined)
})

test.run()
