import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import {crc32cCombine, crc32cJs} from '../../src/lib/client/crc32c.js'
import {Coalescer} from '../../src/lib/client/coalescer.js'
import {StagingPool} from '../../src/lib/client/staging.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {FakeDataPath, FakeNetwork} from '../helpers/fake-data-path.js'
import {FakeMaster} from '../helpers/fake-master.js'
import {rejects} from '../helpers/assert-code.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function setup(opts: {segments?: number; segSize?: number; client?: Record<string, unknown>} = {}) {
  const net = new FakeNetwork()
  const fm = new FakeMaster()
  const master = fm.api()
  const owners: SegmentOwner[] = []
  for (let i = 0; i < (opts.segments ?? 2); i++) {
    owners.push(await SegmentOwner.start({master, size: opts.segSize ?? 64 * 2 ** 20, dataPath: new FakeDataPath(net), hostId: `host-${i}`, pingIntervalMs: 20}))
  }
  const client = await MooncakeClient.connect({master, dataPath: new FakeDataPath(net), hostId: 'client-host', sliceSize: 64 * 1024, stagingBytes: 1 * 2 ** 20, ...opts.client})
  const close = async () => {
    await client.close()
    for (const o of owners) await o.close()
  }
  return {net, fm, master, owners, client, close}
}


test('crc32c: known vector and combine', () => {
  assert.is(crc32cJs(Buffer.from('123456789')), 0xe3069283)
  const a = randomBytes(1000)
  const b = randomBytes(777)
  assert.is(crc32cCombine(crc32cJs(a), crc32cJs(b), b.length), crc32cJs(Buffer.concat([a, b])))
})

test('coalescer merges calls of one tick and reports item errors', async () => {
  const sizes: number[] = []
  const c = new Coalescer<number, number>({
    batch: async (items) => items.map((i) => (i % 10 === 0 ? {ok: false as const, code: 'OBJECT_NOT_FOUND' as const, message: 'x'} : {ok: true as const, value: i * 2})),
    maxInFlight: 2,
    maxBatchSize: 300,
    onBatch: (n) => sizes.push(n),
  })
  const results = await Promise.allSettled(Array.from({length: 1000}, (_, i) => c.call(i)))
  assert.ok(sizes.length <= 5, `batches: ${sizes}`)
  assert.is(sizes.reduce((a, b) => a + b, 0), 1000)
  assert.is((results[3] as PromiseFulfilledResult<number>).value, 6)
  assert.is(((results[10] as PromiseRejectedResult).reason as MooncakeError).code, 'OBJECT_NOT_FOUND')
})

test('staging pool waits when full and coalesces freed ranges', async () => {
  const dp = new FakeDataPath(new FakeNetwork())
  const pool = new StagingPool(dp, 1 << 20, 1 << 18)
  const leases = []
  for (let i = 0; i < 4; i++) leases.push(await pool.acquire(1 << 18))
  let got = false
  const pending = Promise.resolve(pool.acquire(1 << 19)).then((l) => {
    got = true
    return l
  })
  await new Promise((r) => setTimeout(r, 5))
  assert.not.ok(got)
  pool.release(leases[1])
  await new Promise((r) => setTimeout(r, 5))
  assert.not.ok(got)
  pool.release(leases[2])
  const big = await pending
  assert.is(big.view.length, 1 << 19)
  assert.ok(dp.isRegistered(big.view))
  await pool.close()
})

test('put/get round trips, small and multi-slice, with 2 replicas on distinct segments', async () => {
  const {client, fm, close} = await setup()
  try {
    for (const size of [1, 100, 65536, 65537, 1_000_003]) {
      const value = randomBytes(size)
      const res = await client.put(`k${size}`, value, {replicaNum: 2})
      assert.is(res.size, size)
      assert.is(res.replicas, 2)
      assert.is(res.checksum, crc32cJs(value))
      assert.is(sha(await client.get(`k${size}`)), sha(value))
      const info = await client.query(`k${size}`)
      assert.is(new Set(info.replicas.map((r) => r.segment)).size, 2)
    }
    assert.ok(fm.objects.size === 5)
  } finally {
    await close()
  }
})

test('errors: missing key, existing key, empty value, bad regex', async () => {
  const {client, close} = await setup()
  try {
    await rejects(client.get('nope'), 'OBJECT_NOT_FOUND')
    await client.put('a', Buffer.from('x'))
    await rejects(client.put('a', Buffer.from('y')), 'OBJECT_ALREADY_EXISTS')
    await rejects(client.put('b', Buffer.alloc(0)), 'INVALID_PARAMS')
    await rejects(client.put('', Buffer.from('y')), 'INVALID_PARAMS')
    await rejects(client.removeByRegex('('), 'INVALID_PARAMS')
    const up = await client.upsert('a', Buffer.from('zz'))
    assert.is(up.size, 2)
    assert.is((await client.get('a')).toString(), 'zz')
  } finally {
    await close()
  }
})

test('a corrupt replica is skipped: get returns the bytes of the other one', async () => {
  const {client, net, close} = await setup()
  try {
    for (const size of [5000, 3 * 2 ** 20]) {
      const value = randomBytes(size)
      await client.put(`c${size}`, value, {replicaNum: 2})
      const info = await client.query(`c${size}`)
      const victim = info.replicas[0].segment as string
      const r = (await client.master.getReplicaList(`c${size}`)).replicas.find((x) => x.memory?.segment === victim)
      const mem = net.segments.get(victim) as Buffer
      mem.fill(0xee, (r?.memory?.offset ?? 0) + 10, (r?.memory?.offset ?? 0) + 20)
      assert.is(sha(await client.get(`c${size}`)), sha(value))
    }
  } finally {
    await close()
  }
})

test('an unreachable replica falls back to the other; a failed write revokes', async () => {
  const {client, net, fm, owners, close} = await setup()
  try {
    const value = randomBytes(300_000)
    await client.put('f', value, {replicaNum: 2})
    net.failing.add(owners[0].name)
    assert.is(sha(await client.get('f')), sha(value))
    await rejects(client.put('g', value, {replicaNum: 2}), 'TRANSFER_FAIL')
    assert.not.ok(fm.objects.has('g'), 'no partial object is visible')
    assert.is(fm.calls.putRevoke ?? 0, 1)
  } finally {
    await close()
  }
})

test('pipelined batchPut/batchGet: per-item failures, revokes, fallbacks to the single-key path', async () => {
  const {client, net, fm, owners, close} = await setup()
  try {
    const values = Array.from({length: 300}, (_, i) => randomBytes(100 + (i % 7) * 900))
    const big = randomBytes(200_000) // above sliceSize: single-key path
    await client.put('dup', Buffer.from('x'))
    const items = values.map((value, i) => ({key: `p${i}`, value}))
    items.push({key: 'dup', value: Buffer.from('y')}, {key: 'big', value: big}, {key: '', value: Buffer.from('z')})
    const res = await client.batchPut(items, {replicaNum: 2})
    for (let i = 0; i < 300; i++) assert.ok(res[i].ok, JSON.stringify(res[i]))
    assert.ok(!res[300].ok && res[300].code === 'OBJECT_ALREADY_EXISTS', JSON.stringify(res[300]))
    assert.ok(res[301].ok)
    assert.ok(!res[302].ok && res[302].code === 'INVALID_PARAMS')
    assert.ok((fm.calls.batchPutStart ?? 0) < 20, JSON.stringify(fm.calls))
    // Reads: a corrupt replica and a missing key among many.
    const r0 = (await client.master.getReplicaList('p0')).replicas[0].memory!
    ;(net.segments.get(r0.segment) as Buffer).fill(0xee, r0.offset, r0.offset + 10)
    const keys = [...values.map((_, i) => `p${i}`), 'missing', 'big']
    const got = await client.batchGet(keys)
    for (let i = 0; i < 300; i++) {
      const g = got[i]
      assert.ok(g.ok && sha(g.value) === sha(values[i]), `p${i}`)
    }
    assert.ok(!got[300].ok && got[300].code === 'OBJECT_NOT_FOUND')
    const gb = got[301]
    assert.ok(gb.ok && sha(gb.value) === sha(big))
    // A write that cannot reach one replica fails that item only, and its space is revoked.
    net.failing.add(owners[0].name)
    const revokesBefore = (fm.calls.batchPutRevoke ?? 0) + (fm.calls.putRevoke ?? 0)
    const w = await client.batchPut([{key: 'q1', value: Buffer.from('a')}, {key: 'q2', value: Buffer.from('b')}], {replicaNum: 2})
    assert.ok(w.every((r) => !r.ok && r.code === 'TRANSFER_FAIL'), JSON.stringify(w))
    assert.not.ok(fm.objects.has('q1'))
    assert.ok((fm.calls.batchPutRevoke ?? 0) + (fm.calls.putRevoke ?? 0) > revokesBefore, JSON.stringify(fm.calls))
  } finally {
    await close()
  }
})

test('coalescing: 1000 concurrent gets use far fewer GetReplicaList RPCs', async () => {
  const {client, fm, close} = await setup()
  try {
    await client.batchPut(Array.from({length: 1000}, (_, i) => ({key: `k${i}`, value: Buffer.from(`v${i}`)})))
    assert.ok((fm.calls.batchPutStart ?? 0) + (fm.calls.putStart ?? 0) < 20, JSON.stringify(fm.calls))
    const before = (fm.calls.batchGetReplicaList ?? 0) + (fm.calls.getReplicaList ?? 0)
    const values = await Promise.all(Array.from({length: 1000}, (_, i) => client.get(`k${i}`)))
    const rpcs = (fm.calls.batchGetReplicaList ?? 0) + (fm.calls.getReplicaList ?? 0) - before
    assert.ok(rpcs < 20, `rpcs ${rpcs}`)
    assert.is(values[999].toString(), 'v999')
    const res = await client.batchGet(['k1', 'missing'])
    assert.ok(res[0].ok)
    assert.ok(!res[1].ok && res[1].code === 'OBJECT_NOT_FOUND')
    const ex = await Promise.all([client.isExist('k1'), client.isExist('zz')])
    assert.equal(ex, [true, false])
  } finally {
    await close()
  }
})

test('registered buffers move in place; files and streams; getInto overflow', async () => {
  const {client, close} = await setup({client: {stagingBytes: 256 * 1024}})
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-unit-'))
  try {
    const reg = Buffer.alloc(2 * 2 ** 20)
    await client.registerLocalMemory(reg)
    randomBytes(2 * 2 ** 20).copy(reg)
    await client.put('reg', reg.subarray(0, 1_500_000))
    const out = Buffer.alloc(2 * 2 ** 20)
    await client.registerLocalMemory(out)
    assert.is(await client.getInto('reg', out), 1_500_000)
    assert.is(sha(out.subarray(0, 1_500_000)), sha(reg.subarray(0, 1_500_000)))
    await rejects(client.getInto('reg', Buffer.alloc(10)), 'BUFFER_OVERFLOW')

    const file = path.join(dir, 'in.bin')
    const data = randomBytes(1_234_567)
    writeFileSync(file, data)
    await client.putFile('file', file, {replicaNum: 2})
    const dest = path.join(dir, 'out.bin')
    const r = await client.getToFile('file', dest)
    assert.is(r.size, data.length)
    assert.is(sha(readFileSync(dest)), sha(data))

    const chunks = () => Readable.from((function* () {
      for (let i = 0; i < data.length; i += 10_000) yield data.subarray(i, i + 10_000)
    })())
    await client.putStream('s1', chunks(), {size: data.length})
    await client.putStream('s2', chunks())
    await rejects(client.putStream('s3', chunks(), {size: data.length + 1}), 'INVALID_PARAMS')
    for (const k of ['s1', 's2']) {
      const parts: Buffer[] = []
      for await (const c of client.getStream(k)) parts.push(c as Buffer)
      assert.is(sha(Buffer.concat(parts)), sha(data))
    }
    const s = client.getStream('missing')
    await rejects(new Promise((resolve, reject) => s.on('error', reject).on('end', resolve).resume()), 'OBJECT_NOT_FOUND')
  } finally {
    rmSync(dir, {recursive: true, force: true})
    await close()
  }
})

test('lease: a read ending after its deadline is LEASE_EXPIRED; renewal keeps long reads alive', async () => {
  const a = await setup({client: {leaseRenewal: false, maxParallelSlices: 1}})
  try {
    await a.client.put('slow', randomBytes(4 * 64 * 1024))
    a.fm.leaseTtlMs = 50
    a.net.delayMs = 30
    await rejects(a.client.get('slow'), 'LEASE_EXPIRED')
  } finally {
    await a.close()
  }
  const b = await setup({client: {maxParallelSlices: 1}})
  try {
    const v = randomBytes(6 * 64 * 1024)
    await b.client.put('slow', v)
    b.fm.leaseTtlMs = 60
    b.net.delayMs = 25
    assert.is(sha(await b.client.get('slow')), sha(v))
  } finally {
    await b.close()
  }
})

test('segment owner: remounts on NEED_REMOUNT, stops on UNMOUNTED, state machine events', async () => {
  const {fm, owners, close} = await setup({segments: 1})
  try {
    const owner = owners[0]
    const states: string[] = []
    owner.on('state', (s) => states.push(s))
    fm.status = 'NEED_REMOUNT'
    await new Promise((r) => setTimeout(r, 80))
    assert.ok((fm.calls.reMountSegment ?? 0) >= 1)
    assert.is(owner.state, 'mounted')
    const unmounted = new Promise<void>((r) => owner.once('unmounted', () => r()))
    fm.status = 'UNMOUNTED'
    await unmounted
    assert.is(owner.state, 'unmounted')
    assert.equal(states.slice(0, 2), ['remounting', 'mounted'])
  } finally {
    await close()
  }
})

test('client state machine and closed client', async () => {
  const {client, close} = await setup()
  const states: string[] = []
  client.on('state', (s) => states.push(s))
  assert.is(client.state, 'ready')
  await close()
  assert.equal(states, ['closing', 'closed'])
  await rejects(client.get('x'), 'UNAVAILABLE_IN_CURRENT_STATUS')
})

test.run()
