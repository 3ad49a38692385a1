// The master's HTTP port through a real started master: /metrics after gRPC calls, /health,
// /query_key (no lease), /get_all_segments, 404 and 405.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {parsePrometheusText} from '../../src/lib/metrics/parse.js'
import {enableLinearRegex} from '../../src/lib/regex-engine.js'
import {rejects, segment} from './master-grpc-helpers.js'

enableLinearRegex()

let master: RunningMaster
let client: MasterClient
const C = 'owner-1'
let rid = 0

const url = (path: string) => `http://${master.httpAddress}${path}`
const metrics = async () => parsePrometheusText(await (await fetch(url('/metrics'))).text())

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: 0, leaseTtlMs: 60_000})
  client = await connectMaster({address: master.address, timeoutMs: 5_000})
  await client.mountSegment({clientId: C, segment: segment('seg-a', 1 << 20)})
})

test.after(async () => {
  client?.close()
  await master?.close()
})

test('/metrics counts gRPC calls, with the original names and RPC latency histograms', async () => {
  const before = await metrics()
  assert.is(before.get('master_mount_segment_requests_total'), 1)
  const put = async (key: string, size: number) => {
    await client.putStart({clientId: C, requestId: `r${rid++}`, key, size})
    await client.putEnd({clientId: C, key})
  }
  await put('a', 1000)
  await put('b', 200_000)
  await rejects(client.putStart({clientId: C, requestId: `r${rid++}`, key: 'a', size: 10}), 'OBJECT_ALREADY_EXISTS')
  await client.getReplicaList('a')
  await rejects(client.getReplicaList('zz'), 'OBJECT_NOT_FOUND')
  await client.batchExistKey(['a', 'zz'])
  await client.remove({key: 'b'})
  await client.ping({clientId: C})

  const res = await fetch(url('/metrics'))
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /text\/plain; version=0\.0\.4/)
  const m = parsePrometheusText(await res.text())
  assert.is(m.get('master_put_start_requests_total'), 3)
  assert.is(m.get('master_put_start_failures_total'), 1)
  assert.is(m.get('master_put_end_requests_total'), 2)
  assert.is(m.get('master_get_replica_list_requests_total'), 2)
  assert.is(m.get('master_get_replica_list_failures_total'), 1)
  assert.is(m.get('master_batch_exist_key_requests_total'), 1)
  assert.is(m.get('master_batch_exist_key_items_total'), 2)
  assert.is(m.get('master_remove_requests_total'), 1)
  assert.is(m.get('master_ping_requests_total'), 1)
  assert.is(m.get('master_key_count'), 1)
  assert.is(m.get('master_total_capacity_bytes'), 1 << 20)
  assert.ok(m.get('master_allocated_bytes')! >= 1000)
  assert.is(m.get('segment_allocated_bytes', {segment: 'seg-a'}), m.get('master_allocated_bytes'))
  assert.is(m.get('master_active_clients'), 1)
  assert.is(m.get('master_value_size_bytes_count'), 2)
  assert.is(m.get('master_rpc_duration_seconds_count', {method: 'put_start'}), 3)
  assert.is(m.get('master_rpc_errors_total', {method: 'get_replica_list', code: 'OBJECT_NOT_FOUND'}), 1)
  assert.ok(m.has('nodejs_eventloop_lag_seconds'), 'default metrics')
  assert.ok(m.has('process_resident_memory_bytes'), 'default metrics')
})

test('/health: status, role, leader, ready, version, uptime and the master clock', async () => {
  const res = await fetch(url('/health'))
  assert.is(res.status, 200)
  const h = (await res.json()) as Record<string, unknown>
  const ready = await client.serviceReady()
  assert.is(h.status, 'ok')
  assert.is(h.role, 'leader')
  assert.is(h.leader, master.address)
  assert.is(h.ready, true)
  assert.is(h.version, ready.version)
  assert.type(h.uptime, 'number')
  assert.ok((h.uptime as number) >= 0)
  assert.ok(Math.abs((h.time as number) - Date.now()) < 5_000)
})

test('/query_key answers metadata without granting a lease; 404 with the error code when missing', async () => {
  await client.putStart({clientId: C, requestId: `r${rid++}`, key: 'q', size: 64})
  await client.putEnd({clientId: C, key: 'q'})
  const first = await client.query('q')
  assert.is(first.leaseExpiresAt, 0, 'PutEnd grants no lease')
  const res = await fetch(url('/query_key?key=q'))
  assert.is(res.status, 200)
  const body = (await res.json()) as {success: boolean; data: {key: string; size: number; leaseExpiresAt: number; replicas: {segment: string}[]}}
  assert.is(body.success, true)
  assert.is(body.data.key, 'q')
  assert.is(body.data.size, 64)
  assert.is(body.data.replicas[0]!.segment, 'seg-a')
  assert.is((await client.query('q')).leaseExpiresAt, 0, '/query_key granted a lease')
  // A key under a lease keeps exactly the same deadline.
  const leased = (await client.getReplicaList('q')).leaseExpiresAt
  await fetch(url('/query_key?key=q'))
  assert.is((await client.query('q')).leaseExpiresAt, leased)

  const missing = await fetch(url('/query_key?key=nope'))
  assert.is(missing.status, 404)
  const err = (await missing.json()) as {success: boolean; error: {code: string}}
  assert.equal([err.success, err.error.code], [false, 'OBJECT_NOT_FOUND'])
  const bad = await fetch(url('/query_key'))
  assert.is(bad.status, 400)
  assert.is(((await bad.json()) as {error: {code: string}}).error.code, 'INVALID_PARAMS')
  // Special characters in keys arrive intact.
  await client.putStart({clientId: C, requestId: `r${rid++}`, key: 'a b&c=d/é', size: 8})
  await client.putEnd({clientId: C, key: 'a b&c=d/é'})
  const odd = await fetch(url(`/query_key?key=${encodeURIComponent('a b&c=d/é')}`))
  assert.is(((await odd.json()) as {data: {key: string}}).data.key, 'a b&c=d/é')
})

test('/get_all_segments lists segments with the master clock and client TTL', async () => {
  const res = await fetch(url('/get_all_segments'))
  assert.is(res.status, 200)
  const doc = (await res.json()) as {now: number; clientTtlMs: number; segments: {name: string; capacity: number; endpoints: string[]; lastPingAt: number; status: string}[]}
  assert.is(doc.clientTtlMs, 10_000)
  assert.is(doc.segments.length, 1)
  assert.is(doc.segments[0]!.name, 'seg-a')
  assert.is(doc.segments[0]!.capacity, 1 << 20)
  assert.is(doc.segments[0]!.status, 'OK')
  assert.ok(doc.now >= doc.segments[0]!.lastPingAt)
})

test('unknown paths are 404, other methods than GET are 405, HEAD works', async () => {
  assert.is((await fetch(url('/nope'))).status, 404)
  const post = await fetch(url('/metrics'), {method: 'POST'})
  assert.is(post.status, 405)
  assert.is(post.headers.get('allow'), 'GET, HEAD')
  assert.is((await fetch(url('/query_key?key=q'), {method: 'DELETE'})).status, 405)
  const head = await fetch(url('/health'), {method: 'HEAD'})
  assert.is(head.status, 200)
  assert.is(await head.text(), '')
})

test('scraping does not count as RPCs and changes nothing', async () => {
  const a = await metrics()
  await fetch(url('/get_all_segments'))
  await fetch(url('/query_key?key=q'))
  const b = await metrics()
  assert.is(b.get('master_get_all_segments_requests_total'), a.get('master_get_all_segments_requests_total'))
  assert.is(b.get('master_query_requests_total'), a.get('master_query_requests_total'))
  assert.is(b.get('master_key_count'), a.get('master_key_count'))
})

test.run()
