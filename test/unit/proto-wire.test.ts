// The gRPC adapter and client over a real loopback channel, with a fake MasterCalls (the real
// MasterService is covered by test/integration/master-grpc*.test.ts).
import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {CallVerifier} from '../../src/lib/master/grpc-auth.js'
import {masterHandlers, strictMasterDefinition} from '../../src/lib/master/grpc-handlers.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
import {FakeMaster} from './proto-fake-master.js'
import {rejects} from '../helpers/assert-code.js'

async function serve(fake: FakeMaster, token?: string) {
  const server = new grpc.Server()
  const lifetime = new AbortController()
  server.addService(
    strictMasterDefinition(loadMooncakeProto().master),
    masterHandlers({service: fake, signal: lifetime.signal, verifier: token ? new CallVerifier(token) : undefined}) as unknown as grpc.UntypedServiceImplementation,
  )
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  return {address: `127.0.0.1:${port}`, close: () => (lifetime.abort(), server.forceShutdown())}
}


const fake = new FakeMaster()
let server: Awaited<ReturnType<typeof serve>>
let client: MasterClient

test.before(async () => {
  server = await serve(fake)
  client = await connectMaster({address: server.address, timeoutMs: 5_000})
})
test.after(() => {
  client.close()
  server.close()
})

test('reservations round-trip through the codec: ReserveSpace, BatchPutCommit, ReleaseSpace', async () => {
  const r = await client.reserveSpace({clientId: 'c1', size: 4096, minSize: 100, hostId: 'h1', preferAllocInSameNode: true})
  assert.equal(r, {reservationId: 7, memory: {segment: 's', endpoints: ['127.0.0.1:1'], hostId: 'h', offset: 64, length: 4096, grant: Buffer.from([4, 5])}, alignment: 8, expiresAt: 1234})
  await rejects(client.reserveSpace({clientId: 'c1', size: 0}), 'INVALID_PARAMS')
  const res = await client.batchPutCommit([
    {clientId: 'c1', reservationId: 7, key: 'rk1', offset: 64, size: 10, checksum: 0xfffffffe},
    {clientId: 'c1', reservationId: 7, key: 'rk1', offset: 80, size: 10},
  ])
  assert.equal(res.map((x) => (x.ok ? 'ok' : x.code)), ['ok', 'OBJECT_ALREADY_EXISTS'])
  assert.is(fake.objects.get('rk1')!.checksum, 0xfffffffe)
  await client.releaseSpace({clientId: 'c1', reservationId: 7})
  assert.is(fake.calls.at(-1), 'releaseSpace 7')
})

test('put lifecycle and reads round-trip through the codec', async () => {
  const started = await client.putStart({clientId: 'c1', requestId: 'r1', key: 'k1', size: 42, config: {replicaNum: 2}})
  assert.is(started.requestedReplicas, 2)
  assert.equal(started.replicas[0]!.memory!.grant, Buffer.from([1, 2, 3]))
  assert.is(started.replicas[0]!.memory!.length, 42)
  await rejects(client.getReplicaList('k1'), 'REPLICA_IS_NOT_READY')
  await rejects(client.putEnd({clientId: 'other', key: 'k1'}), 'ILLEGAL_CLIENT')
  await client.putEnd({clientId: 'c1', key: 'k1', checksum: 0xdeadbeef})
  const list = await client.getReplicaList('k1')
  assert.is(list.checksum, 0xdeadbeef)
  assert.equal(list.replicas[0], {id: 1, type: 'disk', status: 'COMPLETE', disk: {path: '/x', size: 42}})
  assert.is(await client.existKey('k1'), true)
  assert.equal(await client.batchExistKey(['k1', 'nope']), [true, false])
  const q = await client.query('k1')
  assert.is(q.softPinExpiresAt, null)
  assert.is(q.checksum, undefined)
  const items = await client.batchQuery(['k1', 'nope'])
  assert.is(items[0]!.ok, true)
  assert.equal(items[1], {ok: false, code: 'OBJECT_NOT_FOUND', message: 'no object nope'})
  assert.equal([...(await client.getReplicaListByRegex('^k')).keys()], ['k1'])
  await rejects(client.putStart({clientId: 'c1', requestId: 'r2', key: 'k1', size: 1}), 'OBJECT_ALREADY_EXISTS')
})

test('segments, ping, stats, serviceReady', async () => {
  const seg = {id: 'id1', name: 'seg1', endpoints: ['127.0.0.1:9'], size: 1024, hostId: 'h1'}
  assert.equal(await client.mountSegment({clientId: 'c1', segment: seg}), {viewVersion: 7})
  await rejects(client.mountSegment({clientId: 'c2', segment: seg}), 'SEGMENT_ALREADY_EXISTS')
  const all = await client.getAllSegments()
  assert.is(all[0]!.status, 'OK')
  assert.is(all[0]!.fragmentation, 0.25)
  assert.equal(await client.querySegments('seg1'), {name: 'seg1', capacity: 1024, used: 0})
  await rejects(client.querySegments('nope'), 'SEGMENT_NOT_FOUND')
  assert.equal(await client.ping({clientId: 'c1'}), {viewVersion: 7, status: 'NEED_REMOUNT'})
  assert.is((await client.stats()).segments, 1)
  assert.is((await client.serviceReady()).version, '0.0.0-fake')
  const t0 = Date.now()
  await client.unmountSegment({name: 'seg1', drain: true, drainTimeoutMs: 5_000})
  assert.ok(Date.now() - t0 >= 100, 'drain waited for the segment to go')
  assert.equal(await client.getAllSegments(), [])
  await rejects(client.unmountSegment({name: 'seg1'}), 'SEGMENT_NOT_FOUND')
})

test('getAllKeys streams pages and stops early', async () => {
  const r = await client.batchPutStart(Array.from({length: 2500}, (_, i) => ({clientId: 'c', requestId: `b${i}`, key: `p/${String(i).padStart(5, '0')}`, size: 1})))
  assert.ok(r.every((x) => x.ok))
  const keys: string[] = []
  for await (const k of client.getAllKeys({prefix: 'p/', pageSize: 700})) keys.push(k)
  assert.is(keys.length, 2500)
  let n = 0
  for await (const _ of client.getAllKeys({prefix: 'p/'})) if (++n === 10) break
  assert.is(n, 10)
  const page = await client.listKeys({prefix: 'p/', limit: 1000})
  assert.is(page.keys.length, 1000)
  assert.is(page.next, 'p/00999')
  const last = await client.listKeys({prefix: 'p/', after: 'p/02000', limit: 1000})
  assert.is(last.keys.length, 499)
  assert.is(last.next, undefined)
  const limited: string[] = []
  for await (const k of client.getAllKeys({prefix: 'p/', limit: 3})) limited.push(k)
  assert.equal(limited, ['p/00000', 'p/00001', 'p/00002'])
})

test('bad requests are INVALID_PARAMS and the server keeps serving', async () => {
  await rejects(client.getReplicaList(''), 'INVALID_PARAMS')
  await rejects(client.getReplicaList('x'.repeat(4097)), 'INVALID_PARAMS')
  await rejects(client.putStart({clientId: 'c', requestId: 'r', key: 'big', size: 2 ** 60}), 'INVALID_PARAMS')
  const raw = new (loadMooncakeProto().grpcObject.mooncake.v1.Master)(server.address, grpc.credentials.createInsecure())
  const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.MountSegment({clientId: 'c'}, (e) => resolve(e)))
  raw.close()
  assert.is(err?.code, grpc.status.INVALID_ARGUMENT)
  assert.equal(err?.metadata.get('mooncake-error-code'), ['INVALID_PARAMS'])
  assert.match(err!.details, 'segment is required')
  assert.is((await client.serviceReady()).protocolVersion, 1)
})

test('unauthenticated calls are refused; signed ones pass', async () => {
  const authed = await serve(new FakeMaster(), 'sekret')
  try {
    await rejects(connectMaster({address: authed.address, timeoutMs: 2_000}), 'UNAUTHENTICATED')
    await rejects(connectMaster({address: authed.address, timeoutMs: 2_000, token: 'wrong'}), 'UNAUTHENTICATED')
    const ok = await connectMaster({address: authed.address, timeoutMs: 2_000, token: 'sekret'})
    assert.is(await ok.existKey('x'), false)
    ok.close()
  } finally {
    authed.close()
  }
})

test('a closed client fails fast with UNAVAILABLE', async () => {
  const c = await connectMaster({address: server.address})
  c.close()
  await rejects(c.stats(), 'UNAVAILABLE')
})

test.run()
