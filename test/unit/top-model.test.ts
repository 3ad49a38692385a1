// The pure data model of `mooncake top`: snapshots, rates from counter deltas, rows, bars, lines.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {parsePrometheusText} from '../../src/lib/metrics/parse.js'
import {
  bar,
  computeRates,
  failPercent,
  formatRate,
  formatRows,
  pingLevel,
  readCounters,
  sparkline,
  statHeader,
  statLine,
  TopModel,
  type TopSample,
} from '../../src/lib/top/model.js'
import {httpAddressFor} from '../../src/lib/top/source.js'

function fakeSample(at: number, c: {put?: number; putFail?: number; get?: number; batchGet?: number; rm?: number; evicted?: number} = {}, segments = defaultSegments(at)): TopSample {
  const text = [
    'master_total_capacity_bytes 2097152',
    'master_allocated_bytes 524288',
    'master_key_count 42',
    'master_soft_pin_key_count 3',
    'master_active_clients 2',
    `master_put_start_requests_total ${c.put ?? 0}`,
    `master_put_start_failures_total ${c.putFail ?? 0}`,
    `master_get_replica_list_requests_total ${c.get ?? 0}`,
    `master_batch_get_replica_list_items_total ${c.batchGet ?? 0}`,
    `master_remove_requests_total ${c.rm ?? 0}`,
    `master_evicted_key_count ${c.evicted ?? 0}`,
    'master_successful_evictions_total 0',
  ].join('\n')
  return {
    at,
    health: {status: 'ok', role: 'leader', leader: '127.0.0.1:50051', ready: true, version: '0.1.0', uptime: 192, time: at, viewVersion: 1},
    segments: {now: at, clientTtlMs: 10_000, segments},
    metrics: parsePrometheusText(text),
  }
}

function defaultSegments(now: number) {
  const seg = (name: string, endpoint: string, capacity: number, used: number, pingAgo: number) => ({
    name,
    id: `id-${name}`,
    clientId: `c-${name}`,
    endpoints: [endpoint],
    hostId: 'h',
    capacity,
    used,
    status: 'OK' as const,
    lastPingAt: now - pingAgo,
    fragmentation: 0,
  })
  return [seg('seg-b', '10.0.0.2:7001', 1 << 20, 3 << 18, 400), seg('seg-a', '10.0.0.1:7001', 1 << 20, 1 << 18, 9_000)]
}

test('snapshot has exactly the SPEC keys; rates need two samples', () => {
  const m = new TopModel('127.0.0.1:50051')
  m.update(fakeSample(1_000, {put: 100, get: 10}))
  const s1 = m.snapshot()
  assert.equal(Object.keys(s1), ['master', 'role', 'capacity', 'used', 'keys', 'softPinnedKeys', 'clients', 'segments', 'rates'])
  assert.equal(
    [s1.master, s1.role, s1.capacity, s1.used, s1.keys, s1.softPinnedKeys, s1.clients],
    ['127.0.0.1:50051', 'leader', 2097152, 524288, 42, 3, 2],
  )
  assert.equal(Object.keys(s1.segments[0]!), ['name', 'endpoint', 'capacity', 'used', 'status', 'lastPingMs'])
  assert.is(s1.segments.find((s) => s.name === 'seg-a')!.lastPingMs, 9_000)
  assert.is(s1.rates.put, 0)
  assert.is(m.hasRates, false)
  m.update(fakeSample(3_000, {put: 300, putFail: 10, get: 30, batchGet: 20, rm: 4, evicted: 8}))
  const r = m.snapshot().rates
  assert.is(r.put, 100)
  assert.is(r.putFailed, 5)
  assert.is(r.get, 20) // (20 + 20) / 2 s
  assert.is(r.remove, 2)
  assert.is(r.evictedKeys, 4)
  assert.equal(m.history.put, [100])
})

test('a counter that went down (master restarted) counts from zero', () => {
  const prev = readCounters(fakeSample(0, {put: 1000}).metrics)
  const cur = readCounters(fakeSample(0, {put: 30}).metrics)
  assert.is(computeRates(prev, cur, 1).put, 30)
  assert.is(computeRates(undefined, cur, 1).put, 0)
  assert.is(computeRates(prev, cur, 0).put, 0)
})

test('rows: sort, reverse, filter, ping levels against the client TTL', () => {
  const m = new TopModel('m')
  m.update(fakeSample(0))
  const segs = m.snapshot().segments
  assert.equal(formatRows(segs).map((r) => r.name), ['seg-a', 'seg-b'])
  assert.equal(formatRows(segs, {reverse: true}).map((r) => r.name), ['seg-b', 'seg-a'])
  assert.equal(formatRows(segs, {sort: 'used'}).map((r) => r.name), ['seg-b', 'seg-a'])
  assert.equal(formatRows(segs, {sort: 'ping'}).map((r) => r.name), ['seg-a', 'seg-b'])
  assert.equal(formatRows(segs, {filter: '10.0.0.2'}).map((r) => r.name), ['seg-b'])
  assert.equal(formatRows(segs, {filter: 'SEG-A'}).map((r) => r.name), ['seg-a'])
  const [a, b] = formatRows(segs, {clientTtlMs: 10_000}, 8)
  assert.is(a!.level, 'crit')
  assert.match(a!.lastPing, /^9\.0s ! ttl 10\.0s$/)
  assert.is(b!.level, 'ok')
  assert.is(b!.lastPing, '0.4s')
  assert.is(b!.usedBar, '██████░░')
  assert.is(b!.usedPercent, '75.0%')
  assert.is(b!.size, '1.00 MiB')
  assert.is(pingLevel(5_000, 10_000), 'warn')
  assert.is(pingLevel(4_999, 10_000), 'ok')
})

test('bars, sparklines, rates and percentages', () => {
  assert.is(bar(0.5, 10), '█████░░░░░')
  assert.is(bar(1.7, 4), '████')
  assert.is(bar(NaN, 3), '░░░')
  assert.is(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8), '▁▂▃▄▅▆▇█')
  assert.is(sparkline([0, 0], 4), '  ▁▁')
  assert.is(sparkline([5, 5, 5], 3), '███')
  assert.is(formatRate(0), '0')
  assert.is(formatRate(0.5), '0.5')
  assert.is(formatRate(7), '7')
  assert.is(formatRate(12.4), '12')
  assert.is(formatRate(4100), '4.1k')
  assert.is(formatRate(18_700), '19k')
  assert.is(formatRate(1_200_000), '1.2M')
  assert.is(failPercent(0, 0), '-')
  assert.is(failPercent(200, 1), '0.5%')
})

test('stat lines (non-terminal output) line up under the header', () => {
  const m = new TopModel('m')
  m.update(fakeSample(0))
  const header = statHeader()
  const first = statLine(m.snapshot(), m.hasRates)
  assert.match(header, /keys\s+used\s+capacity\s+mem%\s+clients\s+segments\s+put\/s\s+get\/s\s+rm\/s\s+fail\/s\s+evict\/s/)
  assert.match(first, /^\s+42\s+512 KiB\s+2\.00 MiB\s+25\.0%\s+2\s+2\s+-\s+-\s+-\s+-\s+-$/)
  assert.is(first.length, header.length)
  m.update(fakeSample(1000, {put: 5}))
  assert.match(statLine(m.snapshot(), m.hasRates), /\s5\s+0\s+0\s+0\s+0$/)
})

test('the HTTP address defaults to the --master host with port 9003', () => {
  assert.is(httpAddressFor('127.0.0.1:50051'), '127.0.0.1:9003')
  assert.is(httpAddressFor('10.1.2.3:6000', '10.1.2.3:9100'), '10.1.2.3:9100')
  assert.is(httpAddressFor('x:1', 'otherhost'), 'otherhost:9003')
  assert.is(httpAddressFor('[::1]:50051'), '[::1]:9003')
  assert.is(httpAddressFor('master.local'), 'master.local:9003')
})

test.run()
