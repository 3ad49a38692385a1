// Every Master rpc over real gRPC against the real MasterService, in process: values, ErrorCodes
// and the HTTP health route.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {enableLinearRegex} from '../../src/lib/regex-engine.js'
import {rejects, segment} from './master-grpc-helpers.js'

enableLinearRegex()

let master: RunningMaster
let client: MasterClient
const C = 'client-1'
let rid = 0
const put = (key: string, size = 100, clientId = C) => client.putStart({clientId, requestId: `r${rid++}`, key, size})

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: 0, leaseTtlMs: 1_000})
  client = await connectMaster({address: master.address, timeoutMs: 5_000})
  await client.mountSegment({clientId: C, segment: segment('seg-a')})
})

test.after(async () => {
  client.close()
  await master.close()
})

test('ServiceReady, Stats and /health', async () => {
  const ready = await client.serviceReady()
  assert.is(ready.protocolVersion, 1)
  assert.is(typeof ready.version, 'string')
  const stats = await client.stats()
  assert.is(stats.segments, 1)
  assert.is(stats.capacity, 1 << 20)
  const health = await fetch(`http://${master.httpAddress}/health`)
  const body = (await health.json()) as Record<string, unknown>
  assert.is(body.status, 'ok')
  assert.is(body.role, 'leader')
  assert.is(body.ready, true)
  assert.is(body.version, ready.version)
  assert.is((await fetch(`http://${master.httpAddress}/nope`)).status, 404)
})

test('PutStart / PutEnd / PutRevoke with their errors', async () => {
  const started = await put('obj-1', 100)
  assert.is(started.replicas.length, 1)
  assert.is(started.replicas[0]!.status, 'PROCESSING')
  assert.is(started.replicas[0]!.memory!.segment, 'seg-a')
  await rejects(client.getReplicaList('obj-1'), 'REPLICA_IS_NOT_READY')
  await rejects(client.putEnd({clientId: 'intruder', key: 'obj-1'}), 'ILLEGAL_CLIENT')
  await client.putEnd({clientId: C, key: 'obj-1', checksum: 1234})
  await rejects(put('obj-1'), 'OBJECT_ALREADY_EXISTS')
  await rejects(put('obj-size0', 0), 'INVALID_PARAMS')
  // NO_AVAILABLE_HANDLE is in master-grpc-process.test.ts: here its synchronous eviction would take our objects.
  await rejects(client.putEnd({clientId: C, key: 'never-started'}), 'OBJECT_NOT_FOUND')
  await put('obj-revoked')
  await client.putRevoke({clientId: C, key: 'obj-revoked'})
  assert.is(await client.existKey('obj-revoked'), false)
})

test('a retried PutStart with the same request id is idempotent', async () => {
  const a = await client.putStart({clientId: C, requestId: 'same-id', key: 'obj-idem', size: 64})
  const b = await client.putStart({clientId: C, requestId: 'same-id', key: 'obj-idem', size: 64})
  assert.equal(b, a)
  await client.putEnd({clientId: C, key: 'obj-idem'})
})

test('Batch PutStart / PutEnd / PutRevoke give a result per item', async () => {
  const starts = await client.batchPutStart([
    {clientId: C, requestId: 'b1', key: 'batch-1', size: 10},
    {clientId: C, requestId: 'b2', key: 'obj-1', size: 10},
    {clientId: C, requestId: 'b3', key: 'batch-3', size: 10},
    {clientId: C, requestId: 'b4', key: '', size: 10},
  ])
  assert.equal(starts.map((s) => (s.ok ? 'ok' : s.code)), ['ok', 'OBJECT_ALREADY_EXISTS', 'ok', 'INVALID_PARAMS'])
  const ends = await client.batchPutEnd([
    {clientId: C, key: 'batch-1'},
    {clientId: C, key: 'missing'},
  ])
  assert.equal(ends.map((s) => (s.ok ? 'ok' : s.code)), ['ok', 'OBJECT_NOT_FOUND'])
  const revokes = await client.batchPutRevoke([
    {clientId: C, key: 'batch-3'},
    {clientId: 'intruder', key: 'batch-1'},
  ])
  assert.is(revokes[0]!.ok, true)
  assert.is(revokes[1]!.ok, false)
})

test('UpsertStart / UpsertEnd / UpsertRevoke', async () => {
  await client.upsertStart({clientId: C, requestId: 'u1', key: 'obj-up', size: 50})
  await client.upsertEnd({clientId: C, key: 'obj-up'})
  assert.is((await client.query('obj-up')).size, 50)
  await client.upsertStart({clientId: C, requestId: 'u2', key: 'obj-up', size: 70})
  await client.upsertEnd({clientId: C, key: 'obj-up'})
  assert.is((await client.query('obj-up')).size, 70)
  await client.upsertStart({clientId: C, requestId: 'u3', key: 'obj-up2', size: 70})
  await client.upsertRevoke({clientId: C, key: 'obj-up2'})
  assert.is(await client.existKey('obj-up2'), false)
})

test('GetReplicaList, batch and regex; ExistKey and batch', async () => {
  const list = await client.getReplicaList('obj-1')
  assert.is(list.size, 100)
  assert.is(list.checksum, 1234)
  assert.is(list.leaseTtlMs, 1_000)
  assert.ok(list.leaseExpiresAt > Date.now())
  await rejects(client.getReplicaList('missing'), 'OBJECT_NOT_FOUND')
  const batch = await client.batchGetReplicaList(['obj-1', 'missing'])
  assert.is(batch[0]!.ok, true)
  assert.equal(batch[1], {ok: false, code: 'OBJECT_NOT_FOUND', message: (batch[1] as {message: string}).message})
  const byRegex = await client.getReplicaListByRegex('^obj-(1|idem)$')
  assert.equal([...byRegex.keys()].sort(), ['obj-1', 'obj-idem'])
  await rejects(client.getReplicaListByRegex('(a'), 'INVALID_PARAMS')
  await rejects(client.getReplicaListByRegex('(a)\\1'), 'INVALID_PARAMS')
  assert.is(await client.existKey('obj-1'), true)
  assert.is(await client.existKey('missing'), false)
  assert.equal(await client.batchExistKey(['obj-1', 'missing', 'obj-idem']), [true, false, true])
})

test('Query, BatchQuery, QueryByRegex', async () => {
  const info = await client.query('obj-1')
  assert.is(info.key, 'obj-1')
  assert.is(info.checksum, 1234)
  assert.is(info.softPinExpiresAt, null)
  assert.is(info.replicas[0]!.segment, 'seg-a')
  await rejects(client.query('missing'), 'OBJECT_NOT_FOUND')
  const items = await client.batchQuery(['obj-1', 'missing'])
  assert.equal(items.map((i) => (i.ok ? i.value.key : i.code)), ['obj-1', 'OBJECT_NOT_FOUND'])
  assert.equal((await client.queryByRegex('^obj-1$')).map((o) => o.key), ['obj-1'])
  await rejects(client.queryByRegex('[z-a]'), 'INVALID_PARAMS')
})

test('Remove with lease, BatchRemove, RemoveByRegex dry run, RemoveAll', async () => {
  await client.getReplicaList('obj-1')
  await rejects(client.remove({key: 'obj-1'}), 'OBJECT_HAS_LEASE')
  await client.remove({key: 'obj-1', force: true})
  await rejects(client.remove({key: 'obj-1'}), 'OBJECT_NOT_FOUND')
  for (const k of ['rm-1', 'rm-2', 'rm-3']) {
    await put(k, 10)
    await client.putEnd({clientId: C, key: k})
  }
  const br = await client.batchRemove(['rm-1', 'missing'])
  assert.equal(br.map((r) => (r.ok ? 'ok' : r.code)), ['ok', 'OBJECT_NOT_FOUND'])
  const dry = await client.removeByRegex({regex: '^rm-', dryRun: true})
  assert.equal({removed: dry.removed, keys: dry.keys.sort()}, {removed: 2, keys: ['rm-2', 'rm-3']})
  assert.is(await client.existKey('rm-2'), true, 'dry run removes nothing')
  await rejects(client.removeByRegex({regex: '(?<=x)y'}), 'INVALID_PARAMS')
  const real = await client.removeByRegex({regex: '^rm-', force: true})
  assert.is(real.removed, 2)
  const all = await client.removeAll({force: true, dryRun: true})
  assert.ok(all.removed >= 2)
  assert.is(all.keys.length, all.removed)
})

test('MountSegment, ReMountSegment, GetAllSegments, QuerySegments, Ping', async () => {
  assert.is((await client.mountSegment({clientId: C, segment: segment('seg-a')})).viewVersion, 0, 'same owner: idempotent')
  await rejects(client.mountSegment({clientId: 'other', segment: segment('seg-a')}), 'SEGMENT_ALREADY_EXISTS')
  assert.is((await client.ping({clientId: C})).status, 'NEED_REMOUNT')
  await client.reMountSegment({clientId: C, segments: [segment('seg-a')]})
  assert.is((await client.ping({clientId: C})).status, 'OK')
  const segs = await client.getAllSegments()
  assert.equal(segs.map((s) => [s.name, s.clientId, s.status, s.capacity]), [['seg-a', C, 'OK', 1 << 20]])
  assert.ok(segs[0]!.lastPingAt > 0)
  const usage = await client.querySegments('seg-a')
  assert.is(usage.capacity, 1 << 20)
  assert.ok(usage.used > 0)
  await rejects(client.querySegments('nope'), 'SEGMENT_NOT_FOUND')
})

test('UnmountSegment: immediate, unknown, and drain that waits for leases', async () => {
  await client.mountSegment({clientId: 'c2', segment: segment('seg-b')})
  await client.unmountSegment({name: 'seg-b'})
  await rejects(client.unmountSegment({name: 'seg-b'}), 'SEGMENT_NOT_FOUND')

  await client.mountSegment({clientId: 'c3', segment: segment('seg-c')})
  await client.putStart({clientId: 'c3', requestId: 'dr', key: 'on-c', size: 10, config: {preferredSegments: ['seg-c']}})
  await client.putEnd({clientId: 'c3', key: 'on-c'})
  assert.is((await client.query('on-c')).replicas[0]!.segment, 'seg-c')
  const lease = await client.getReplicaList('on-c')
  const t0 = Date.now()
  await client.unmountSegment({name: 'seg-c', drain: true, drainTimeoutMs: 10_000})
  assert.ok(Date.now() >= lease.leaseExpiresAt - 50, 'returned only after the lease ran out')
  assert.ok(Date.now() - t0 < 5_000)
  assert.not.ok((await client.getAllSegments()).some((s) => s.name === 'seg-c'))
  assert.is(await client.existKey('on-c'), false)
})

test('UnmountSegment with drain answers DEADLINE_EXCEEDED at the call deadline', async () => {
  await client.mountSegment({clientId: 'c4', segment: segment('seg-d')})
  await client.putStart({clientId: 'c4', requestId: 'dd', key: 'on-d', size: 10, config: {preferredSegments: ['seg-d']}})
  await client.putEnd({clientId: 'c4', key: 'on-d'})
  await client.getReplicaList('on-d')
  const short = await connectMaster({address: master.address, timeoutMs: 400})
  try {
    await rejects(short.unmountSegment({name: 'seg-d', drain: true, drainTimeoutMs: 10_000}), 'DEADLINE_EXCEEDED')
    assert.is((await client.getAllSegments()).find((s) => s.name === 'seg-d')?.status, 'DRAINING')
  } finally {
    short.close()
  }
})

test('GetAllKeys streams 200k keys with prefix, regex and limit', async () => {
  const clientId = 'bulk'
  await client.mountSegment({clientId, segment: segment('seg-bulk', 64 << 20)})
  const N = 200_000
  for (let i = 0; i < N; i += 4096) {
    const reqs = []
    for (let j = i; j < Math.min(N, i + 4096); j++) reqs.push({clientId, requestId: `k${j}`, key: `bulk/${j}`, size: 8})
    const started = await client.batchPutStart(reqs)
    assert.ok(started.every((s) => s.ok))
    const ended = await client.batchPutEnd(reqs.map((r) => ({clientId, key: r.key})))
    assert.ok(ended.every((s) => s.ok))
  }
  let count = 0
  const seen = new Set<string>()
  for await (const key of client.getAllKeys({prefix: 'bulk/', pageSize: 5000})) {
    count++
    if (count % 997 === 0) seen.add(key)
  }
  assert.is(count, N)
  assert.ok(seen.size > 100)
  let regexCount = 0
  for await (const key of client.getAllKeys({regex: '^bulk/1999[0-9]$'})) {
    assert.match(key, /^bulk\/1999\d$/)
    regexCount++
  }
  assert.is(regexCount, 10)
  const limited: string[] = []
  for await (const key of client.getAllKeys({prefix: 'bulk/', limit: 12_345})) limited.push(key)
  assert.is(limited.length, 12_345)
  const page1 = await client.listKeys({prefix: 'bulk/', limit: 1000})
  const page2 = await client.listKeys({prefix: 'bulk/', limit: 1000, after: page1.next})
  assert.is(page1.keys.length, 1000)
  assert.is(new Set([...page1.keys, ...page2.keys]).size, 2000)
  await rejects(
    (async () => {
      for await (const _ of client.getAllKeys({regex: '(a'})) void _
    })(),
    'INVALID_PARAMS',
  )
})

test.run()
