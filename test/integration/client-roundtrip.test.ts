/**
 * MooncakeClient end to end against real processes: a master and two segment owners, each in
 * its own node process; the client in this one.
 */
import {createHash, randomFillSync} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {connectMaster} from '../../src/lib/client/master-client.js'
import type {MasterApi} from '../../src/lib/master/api.js'
import {freePort, killAll, startFixture, type Fixture} from '../helpers/processes.js'
import {rejects} from '../helpers/assert-code.js'

const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

interface Ctx {
  master: Fixture<{address: string}>
  owners: Array<Fixture<{name: string}>>
  tcp: MooncakeClient
  auto: MooncakeClient
  dir: string
}

const t = suite<Ctx>('client round trips')

t.before(async (ctx) => {
  ctx.dir = mkdtempSync(path.join(tmpdir(), 'mc-client-it-'))
  ctx.master = await startFixture('test/integration/fixtures/client-master.ts', [JSON.stringify({})])
  const masterAddress = ctx.master.ready.address
  ctx.owners = await Promise.all(
    [0, 1].map(() => startFixture<{name: string}>('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress, size: 640 * MiB})], {timeoutMs: 60_000})),
  )
  ctx.tcp = await MooncakeClient.connect({masterAddress, transport: 'tcp', timeoutMs: 60_000})
  ctx.auto = await MooncakeClient.connect({masterAddress, transport: 'auto', timeoutMs: 60_000})
})

t.after(async (ctx) => {
  await ctx.tcp?.close()
  await ctx.auto?.close()
  await killAll()
  rmSync(ctx.dir, {recursive: true, force: true})
})


t('binary round trips from 1 B to 256 MiB, by TCP and by the same-host path', async (ctx) => {
  const sizes = [1, 7, 4096, 65_537, MiB, 4 * MiB + 3, 17 * MiB, 256 * MiB]
  const big = Buffer.allocUnsafe(256 * MiB)
  randomFillSync(big)
  for (const [name, client] of [['tcp', ctx.tcp], ['auto', ctx.auto]] as const) {
    for (const size of sizes) {
      const value = big.subarray(0, size)
      const key = `rt/${name}/${size}`
      const res = await client.put(key, value, {replicaNum: size >= 256 * MiB ? 1 : 2})
      assert.is(res.size, size)
      const back = await client.get(key)
      assert.is(back.length, size)
      assert.is(sha(back), sha(value), `${name} ${size}`)
      // the other transport reads what this one wrote
      const other = name === 'tcp' ? ctx.auto : ctx.tcp
      assert.is(sha(await other.get(key)), sha(value))
      if (size >= 17 * MiB) await client.remove(key, {force: true})
    }
  }
  assert.is(ctx.tcp.stats.memcpyBytes, 0, 'transport tcp never uses shared memory')
  assert.ok(ctx.auto.stats.memcpyBytes > 256 * MiB, 'the same-host path copies through shared memory')
})

t('replicas land on distinct segments', async (ctx) => {
  const value = Buffer.from('two replicas please')
  const res = await ctx.tcp.put('replicated', value, {replicaNum: 2})
  assert.is(res.replicas, 2)
  assert.is(res.requestedReplicas, 2)
  const info = await ctx.tcp.query('replicated')
  assert.is(info.replicas.length, 2)
  const segments = new Set(info.replicas.map((r) => r.segment))
  assert.is(segments.size, 2)
  assert.ok(ctx.owners.every((o) => segments.has(o.ready.name)))
})

t('files and streams: put/get of a file, a sized stream, an unknown-length stream', async (ctx) => {
  const data = Buffer.allocUnsafe(9 * MiB + 123)
  randomFillSync(data)
  const src = path.join(ctx.dir, 'src.bin')
  writeFileSync(src, data)
  await ctx.auto.putFile('file/1', src, {replicaNum: 2})
  const dest = path.join(ctx.dir, 'dest.bin')
  const got = await ctx.tcp.getToFile('file/1', dest)
  assert.is(got.size, data.length)
  assert.is(sha(readFileSync(dest)), sha(data))

  const chunks = () => Readable.from((function* () {
    for (let i = 0; i < data.length; i += 100_000) yield data.subarray(i, i + 100_000)
  })())
  await ctx.tcp.putStream('stream/sized', chunks(), {size: data.length})
  await ctx.tcp.putStream('stream/spooled', chunks())
  for (const key of ['stream/sized', 'stream/spooled']) {
    const parts: Buffer[] = []
    for await (const c of ctx.auto.getStream(key)) parts.push(c as Buffer)
    assert.is(sha(Buffer.concat(parts)), sha(data), key)
  }
})

t('errors: OBJECT_NOT_FOUND, OBJECT_ALREADY_EXISTS, INVALID_PARAMS', async (ctx) => {
  await rejects(ctx.tcp.get('no/such/key'), 'OBJECT_NOT_FOUND')
  await rejects(ctx.tcp.query('no/such/key'), 'OBJECT_NOT_FOUND')
  await ctx.tcp.put('dup', Buffer.from('a'))
  await rejects(ctx.tcp.put('dup', Buffer.from('b')), 'OBJECT_ALREADY_EXISTS')
  await rejects(ctx.tcp.put('empty', Buffer.alloc(0)), 'INVALID_PARAMS')
  await rejects(ctx.tcp.removeByRegex('(unclosed'), 'INVALID_PARAMS')
  await rejects(ctx.tcp.queryByRegex('[z-a]'), 'INVALID_PARAMS')
  const up = await ctx.tcp.upsert('dup', Buffer.from('bb'))
  assert.is(up.size, 2)
  assert.is((await ctx.tcp.get('dup')).toString(), 'bb')
  assert.equal(await ctx.tcp.batchIsExist(['dup', 'nope']), [true, false])
})

t('a lease blocks remove until forced', async (ctx) => {
  await ctx.tcp.put('leased', Buffer.from('x'))
  await ctx.tcp.get('leased')
  await rejects(ctx.tcp.remove('leased'), 'OBJECT_HAS_LEASE')
  await ctx.tcp.remove('leased', {force: true})
  await rejects(ctx.tcp.get('leased'), 'OBJECT_NOT_FOUND')
})

t('batch calls report a result per key; regex and listing', async (ctx) => {
  const items = Array.from({length: 50}, (_, i) => ({key: `batch/${i}`, value: Buffer.from(`value-${i}`)}))
  items.push({key: 'dup', value: Buffer.from('x')})
  const put = await ctx.tcp.batchPut(items)
  assert.is(put.filter((r) => r.ok).length, 50)
  const last = put[50]
  assert.ok(!last.ok && last.code === 'OBJECT_ALREADY_EXISTS')
  const got = await ctx.auto.batchGet(['batch/3', 'batch/missing'])
  assert.ok(got[0].ok && got[0].value.toString() === 'value-3')
  assert.ok(!got[1].ok && got[1].code === 'OBJECT_NOT_FOUND')
  const q = await ctx.tcp.queryByRegex('^batch/1')
  assert.is(q.length, 11)
  const keys: string[] = []
  for await (const k of ctx.tcp.getAllKeys({prefix: 'batch/'})) keys.push(k)
  assert.is(keys.length, 50)
  const rm = await ctx.tcp.batchRemove(['batch/0', 'batch/none'], {force: true})
  assert.ok(rm[0].ok)
  assert.ok(!rm[1].ok && rm[1].code === 'OBJECT_NOT_FOUND')
  const byRe = await ctx.tcp.removeByRegex('^batch/', {force: true})
  assert.is(byRe.removed, 49)
})

t('batchGetInto: values land in the callers\' buffers (registered or not); too small, missing and large ones fail or go alone', async (ctx) => {
  const values = Array.from({length: 40}, (_, i) => randomFillSync(Buffer.alloc(1 + i * 997)))
  const big = randomFillSync(Buffer.alloc(6 * MiB)) // larger than a slice: the single-key path
  const put = await ctx.tcp.batchPut([...values.map((value, i) => ({key: `into/${i}`, value})), {key: 'into/big', value: big}])
  assert.equal(put.filter((r) => !r.ok), [])
  for (const [name, client] of [['tcp', ctx.tcp], ['auto', ctx.auto]] as const) {
    const arena = Buffer.alloc(40 * 64 * 1024)
    client.registerLocalMemory(arena)
    const loose = Buffer.alloc(64 * 1024) // not registered: read through staging
    const bigDest = Buffer.alloc(8 * MiB)
    const items = values.map((_, i) => ({key: `into/${i}`, dest: i === 5 ? loose : arena.subarray(i * 65536, (i + 1) * 65536)}))
    items.push(
      {key: 'into/big', dest: bigDest},
      {key: 'into/missing', dest: Buffer.alloc(8)},
      {key: 'into/39', dest: Buffer.alloc(10)},
      {key: '', dest: Buffer.alloc(8)},
      {key: 'into/1', dest: 'not a buffer' as never},
    )
    const got = await client.batchGetInto(items)
    for (let i = 0; i < values.length; i++) {
      const r = got[i]!
      assert.ok(r.ok, `${name} into/${i}: ${r.ok ? '' : r.message}`)
      assert.is(r.value, values[i]!.length)
      assert.is(sha(items[i]!.dest.subarray(0, values[i]!.length)), sha(values[i]!), `${name} into/${i}`)
    }
    assert.equal(got[40], {ok: true, value: 6 * MiB})
    assert.is(sha(bigDest.subarray(0, 6 * MiB)), sha(big))
    assert.equal(
      got.slice(41).map((r) => (r.ok ? 'ok' : r.code)),
      ['OBJECT_NOT_FOUND', 'BUFFER_OVERFLOW', 'INVALID_PARAMS', 'INVALID_PARAMS'],
    )
    await client.unregisterLocalMemory(arena)
  }
})

t('coalescing: 1000 concurrent gets need far fewer than 1000 GetReplicaList RPCs', async (ctx) => {
  const remote = await connectMaster({address: ctx.master.ready.address})
  const counts: Record<string, number> = {}
  const counted = new Proxy(remote, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (typeof v !== 'function') return v
      return (...args: unknown[]) => {
        counts[String(prop)] = (counts[String(prop)] ?? 0) + 1
        return (v as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  }) as MasterApi
  const client = await MooncakeClient.connect({master: counted, transport: 'tcp'})
  try {
    await Promise.all(Array.from({length: 1000}, (_, i) => client.put(`co/${i}`, Buffer.from(`v${i}`))))
    const putRpcs = (counts.putStart ?? 0) + (counts.batchPutStart ?? 0)
    assert.ok(putRpcs < 100, `PutStart RPCs: ${putRpcs}`)
    const values = await Promise.all(Array.from({length: 1000}, (_, i) => client.get(`co/${i}`)))
    assert.is(values[123].toString(), 'v123')
    const getRpcs = (counts.getReplicaList ?? 0) + (counts.batchGetReplicaList ?? 0)
    assert.ok(getRpcs < 100, `GetReplicaList RPCs: ${getRpcs}`)
    assert.is(counts.getReplicaList ?? 0, 0)
    await client.removeByRegex('^co/', {force: true})
  } finally {
    await client.close()
    await remote.close()
  }
})

t('master unreachable: UNAVAILABLE within the deadline, no hang', async () => {
  const port = await freePort()
  const t0 = Date.now()
  await rejects(MooncakeClient.connect({masterAddress: `127.0.0.1:${port}`, timeoutMs: 1500}), 'UNAVAILABLE')
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`)
})

t.run()
