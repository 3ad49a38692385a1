/**
 * Puts through reserved space (ReserveSpace + BatchPutCommit) with real processes: a master and
 * two segment owners that require grants, a client on each transport.
 */
import {createHash, randomBytes} from 'node:crypto'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import type {TransportMode} from '../../src/lib/client/options.js'
import {TransferEngine} from '../../src/lib/transfer/engine.js'
import {rejects} from '../helpers/assert-code.js'
import {killAll, startFixture, type Fixture} from '../helpers/processes.js'

const KiB = 1024
const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

interface Ctx {
  master: Fixture<{address: string}>
  owners: Array<Fixture<{name: string; grantKey?: string}>>
  direct: MasterClient
}

const t = suite<Ctx>('client reservations')

t.before(async (ctx) => {
  ctx.master = await startFixture('test/integration/fixtures/client-master.ts', [JSON.stringify({})])
  const address = ctx.master.ready.address
  ctx.owners = await Promise.all(
    [0, 1].map(() => startFixture<{name: string; grantKey?: string}>('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress: address, size: 64 * MiB})], {timeoutMs: 30_000})),
  )
  ctx.direct = await connectMaster({address, timeoutMs: 5_000})
})

t.after(async (ctx) => {
  ctx.direct?.close()
  await killAll()
})

/** Bytes in use on every segment (objects and open reservations). */
async function used(direct: MasterClient): Promise<number> {
  let sum = 0
  for (const s of await direct.getAllSegments()) sum += (await direct.querySegments(s.name)).used
  return sum
}

for (const transport of ['tcp', 'auto'] as TransportMode[]) {
  t(`${transport}: small puts take reserved space (a commit each, no PutStart); the bytes round-trip; the space left goes back on close`, async (ctx) => {
    const before = await used(ctx.direct)
    const client = await MooncakeClient.connect({masterAddress: ctx.master.ready.address, transport, timeoutMs: 10_000, reserveBytes: MiB})
    const values = Array.from({length: 300}, (_, i) => ({key: `r/${transport}/${i}`, value: randomBytes(1 + ((i * 7919) % (64 * KiB)))}))
    const results = await client.batchPut(values)
    assert.equal(results.filter((r) => !r.ok), [])
    const big = randomBytes(MiB)
    await client.put(`r/${transport}/big`, big)
    const stats = client.coalescingStats
    assert.is(stats.putStart!.calls, 0, 'no PutStart')
    assert.is(stats.putCommit!.calls, 301)
    const got = await client.batchGet(values.map((v) => v.key))
    for (let i = 0; i < values.length; i++) {
      const g = got[i]!
      assert.ok(g.ok, `${values[i]!.key}: ${g.ok ? '' : g.message}`)
      assert.is(sha(g.value), sha(values[i]!.value), values[i]!.key)
    }
    assert.is(sha(await client.get(`r/${transport}/big`)), sha(big))
    const q = await client.query(values[5]!.key)
    assert.is(q.replicas.length, 1)
    assert.is(q.checksum !== undefined, true, 'the writer checksummed it')
    await client.close()
    // Only the objects stay allocated (sizes rounded up to 8 bytes): every reservation was released.
    const objects = [...values.map((v) => v.value.length), MiB].reduce((a, n) => a + Math.ceil(n / 8) * 8, 0)
    assert.is((await used(ctx.direct)) - before, objects)
  })
}

t('an existing key fails alone; a replicated or soft-pinned put takes PutStart; reserveBytes 0 turns reservations off', async (ctx) => {
  const client = await MooncakeClient.connect({masterAddress: ctx.master.ready.address, transport: 'tcp', timeoutMs: 10_000})
  await client.put('x/taken', Buffer.from('first'))
  const res = await client.batchPut([
    {key: 'x/a', value: Buffer.from('a')},
    {key: 'x/taken', value: Buffer.from('second')},
    {key: 'x/b', value: Buffer.from('b')},
  ])
  assert.equal(
    res.map((r) => (r.ok ? 'ok' : r.code)),
    ['ok', 'OBJECT_ALREADY_EXISTS', 'ok'],
  )
  assert.is((await client.get('x/taken')).toString(), 'first')
  assert.is(client.coalescingStats.putStart!.calls, 0)
  await client.put('x/two', Buffer.from('two'), {replicaNum: 2})
  await client.put('x/pinned', Buffer.from('pinned'), {withSoftPin: true})
  assert.is(client.coalescingStats.putStart!.calls, 2)
  assert.is((await client.query('x/two')).replicas.length, 2)
  await client.close()

  const off = await MooncakeClient.connect({masterAddress: ctx.master.ready.address, transport: 'tcp', timeoutMs: 10_000, reserveBytes: 0})
  await off.batchPut([{key: 'x/off', value: Buffer.from('off')}])
  assert.is(off.coalescingStats.putCommit!.calls, 0)
  assert.is(off.coalescingStats.putStart!.calls, 1)
  assert.is((await off.get('x/off')).toString(), 'off')
  await off.close()
  const bad = await rejects(MooncakeClient.connect({masterAddress: ctx.master.ready.address, reserveBytes: -1}), 'INVALID_PARAMS')
  assert.match(bad.message, /reserveBytes/)
})

t('a batchPut of more unregistered bytes than the staging pool holds completes (it never waits for staging while holding some)', async (ctx) => {
  for (const reserveBytes of [0, MiB]) {
    const client = await MooncakeClient.connect({masterAddress: ctx.master.ready.address, transport: 'tcp', timeoutMs: 20_000, stagingBytes: 8 * MiB, reserveBytes})
    const items = Array.from({length: 100}, (_, i) => ({key: `staged/${reserveBytes}/${i}`, value: Buffer.alloc(512 * KiB, i)}))
    const res = await client.batchPut(items)
    assert.equal(res.filter((r) => !r.ok), [], `reserveBytes ${reserveBytes}`)
    const back = await client.get(items[77]!.key)
    assert.is(back[0], 77)
    assert.is(back.length, 512 * KiB)
    await client.removeByRegex('^staged/', {force: true})
    await client.close()
  }
})

t("a reservation's grant covers its range only: the owner refuses writes outside it", async (ctx) => {
  const r = await ctx.direct.reserveSpace({clientId: 'grant-test', size: 64 * KiB})
  assert.ok(r.memory.grant !== undefined && r.memory.grant.length > 0, 'the owners require grants')
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  try {
    const buf = Buffer.alloc(8 * KiB, 1)
    engine.registerLocalMemory(buf)
    const m = r.memory
    const at = (offset: number, length: number) => ({op: 'write' as const, local: buf, peer: m.endpoints, segment: m.segment, offset, length, grantWire: m.grant})
    const results = await engine.submit([at(m.offset, 8 * KiB), at(m.offset + m.length - 4 * KiB, 4 * KiB), at(m.offset + m.length - 4 * KiB, 8 * KiB), at(m.offset + m.length, 8)], {transport: 'tcp'})
    assert.equal(
      results.map((x) => (x.ok ? 'ok' : x.code)),
      ['ok', 'ok', 'ACCESS_DENIED', 'ACCESS_DENIED'],
    )
  } finally {
    await engine.close()
    await ctx.direct.releaseSpace({clientId: 'grant-test', reservationId: r.reservationId})
  }
})

t.run()
