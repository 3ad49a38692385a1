// The master in its own process, over real TCP: streaming between processes, malformed requests,
// a master that goes away (UNAVAILABLE within the deadline, never a hang) and comes back.
import net from 'node:net'

import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
import {errorCodeOf, type MasterProcess, rawCall, rejects, segment, spawnMaster} from './master-grpc-helpers.js'

let master: MasterProcess
let client: MasterClient
const def = loadMooncakeProto().master

test.before(async () => {
  master = await spawnMaster({leaseTtlMs: 1_000})
  client = await connectMaster({address: master.address, timeoutMs: 5_000})
})

test.after(async () => {
  client?.close()
  await master?.stop()
})

test('between processes: NO_AVAILABLE_HANDLE, then put, list and stream keys', async () => {
  await rejects(client.putStart({clientId: 'c', requestId: 'r0', key: 'k', size: 10}), 'NO_AVAILABLE_HANDLE')
  await client.mountSegment({clientId: 'c', segment: segment('seg-p', 8 << 20)})
  await rejects(client.putStart({clientId: 'c', requestId: 'r1', key: 'too-big', size: 16 << 20}), 'NO_AVAILABLE_HANDLE')
  const reqs = Array.from({length: 3000}, (_, i) => ({clientId: 'c', requestId: `q${i}`, key: `p/${i}`, size: 16}))
  assert.ok((await client.batchPutStart(reqs)).every((r) => r.ok))
  assert.ok((await client.batchPutEnd(reqs.map((r) => ({clientId: 'c', key: r.key})))).every((r) => r.ok))
  let n = 0
  for await (const _ of client.getAllKeys({prefix: 'p/', pageSize: 256})) n++
  assert.is(n, 3000)
  const health = await fetch(`http://${master.httpAddress}/health`)
  assert.is(((await health.json()) as {status: string}).status, 'ok')
})

function field(no: number, wire: number): number {
  return (no << 3) | wire
}

function lengthDelimited(no: number, bytes: Buffer): Buffer {
  const len: number[] = []
  let v = bytes.length
  while (v > 127) {
    len.push((v & 127) | 128)
    v >>>= 7
  }
  len.push(v)
  return Buffer.concat([Buffer.from([field(no, 2), ...len]), bytes])
}

async function expectInvalid(rpc: string, body: Buffer, why: string) {
  const {err} = await rawCall(master.address, rpc, body)
  assert.ok(err, `${why}: expected an error`)
  assert.is(err!.code, grpc.status.INVALID_ARGUMENT, `${why}: ${err!.details}`)
  assert.is(errorCodeOf(err), 'INVALID_PARAMS', why)
  // The master keeps serving after each one.
  assert.is((await client.serviceReady()).protocolVersion, 1)
}

test('malformed requests get INVALID_PARAMS and the master keeps serving', async () => {
  await expectInvalid('PutStart', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 'garbage')
  await expectInvalid('PutStart', Buffer.from([0x0a, 0x05, 0x61]), 'truncated field')
  await expectInvalid('GetReplicaList', lengthDelimited(1, Buffer.from([0x6b, 0xc3, 0x28, 0xff])), 'non-UTF-8 key')
  await expectInvalid('GetReplicaList', lengthDelimited(1, Buffer.alloc(2 << 20, 0x61)), '2 MB key (a > 1 MB message)')
  await expectInvalid('GetReplicaList', Buffer.alloc(0), 'missing key')
  await expectInvalid('MountSegment', def.MountSegment.requestSerialize({clientId: 'c'}), 'missing segment')
  await expectInvalid(
    'PutStart',
    def.PutStart.requestSerialize({clientId: 'c', requestId: 'r', key: 'k', size: '18446744073709551615'}),
    'size 2^64-1 (or -1 sent as int64)',
  )
  await expectInvalid('PutStart', def.PutStart.requestSerialize({clientId: 'c', requestId: 'r', key: 'k', size: 0}), 'size 0')
  // target = 99: an enum value this master does not know.
  await expectInvalid('PutEnd', Buffer.concat([def.PutEnd.requestSerialize({clientId: 'c', key: 'k'}), Buffer.from([field(4, 0), 99])]), 'unknown enum')
  await expectInvalid(
    'MountSegment',
    def.MountSegment.requestSerialize({clientId: 'c', segment: {...segment('x'), size: '9007199254740993'}}),
    'segment size beyond 2^53',
  )
  await expectInvalid('QueryByRegex', def.QueryByRegex.requestSerialize({regex: 'a'.repeat(5000)}), 'regex > 4096')
  const batch = await rawCall(master.address, 'BatchExistKey', def.BatchExistKey.requestSerialize({keys: ['ok', '']}))
  assert.is(batch.err, null, 'a bad key inside a batch fails only its item')
})

test('a message over the 64 MiB limit is refused without harm', async () => {
  const err = await rejects(client.batchExistKey(Array.from({length: 70_000}, (_, i) => `${i}-${'x'.repeat(1000)}`)), 'INVALID_PARAMS')
  assert.match(err.message, /larger than|too large|max/i)
  assert.is((await client.serviceReady()).protocolVersion, 1)
})

test('nothing listening: UNAVAILABLE fast, naming the address', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
  const t0 = Date.now()
  const err = await rejects(connectMaster({address: `127.0.0.1:${port}`, timeoutMs: 3_000}), 'UNAVAILABLE')
  assert.ok(Date.now() - t0 < 3_000)
  assert.match(err.message, `127.0.0.1:${port}`)
  await rejects(connectMaster({address: 'no-port-here'}), 'INVALID_PARAMS')
})

test('a peer that accepts but never answers: UNAVAILABLE at the connect deadline', async () => {
  const sockets: net.Socket[] = []
  const silent = net.createServer((s) => sockets.push(s))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as net.AddressInfo).port
  try {
    const t0 = Date.now()
    await rejects(connectMaster({address: `127.0.0.1:${port}`, connectTimeoutMs: 500}), 'UNAVAILABLE')
    const took = Date.now() - t0
    assert.ok(took >= 450 && took < 2_500, `took ${took} ms`)
  } finally {
    for (const s of sockets) s.destroy()
    silent.close()
  }
})

test('master killed: calls fail with UNAVAILABLE within the deadline; a restarted master serves again', async () => {
  const port = Number(master.address.split(':')[1])
  await master.stop('SIGKILL')
  const t0 = Date.now()
  await rejects(client.existKey('p/1'), 'UNAVAILABLE')
  await rejects(client.stats(), 'UNAVAILABLE')
  assert.ok(Date.now() - t0 < 5_000, 'no hang')
  master = await spawnMaster({port, leaseTtlMs: 1_000})
  // The same client object recovers: the master is empty after a restart without a journal.
  let stats
  for (let i = 0; i < 50 && stats === undefined; i++) {
    stats = await client.stats().catch(() => new Promise((r) => setTimeout(r, 100)).then(() => undefined))
  }
  assert.is(stats?.keys, 0)
  assert.is((await client.ping({clientId: 'c'})).status, 'NEED_REMOUNT')
})

test('SIGTERM closes the master cleanly', async () => {
  const other = await spawnMaster()
  const c = await connectMaster({address: other.address})
  const t0 = Date.now()
  await other.stop('SIGTERM')
  assert.is(other.child.exitCode, 0)
  assert.ok(Date.now() - t0 < 3_000)
  await rejects(c.stats(), 'UNAVAILABLE')
  c.close()
})

test.run()
