/**
 * MooncakeClient and SegmentOwner under faults, with real processes: a corrupt replica, an
 * owner killed with SIGKILL, an operator unmount, a master restart, a master gone, eviction.
 */
import {createHash, randomBytes} from 'node:crypto'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {connectMaster} from '../../src/lib/client/master-client.js'
import {freePort, killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'
import {rejects} from '../helpers/assert-code.js'

const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const MASTER = 'test/integration/fixtures/client-master.ts'
const OWNER = 'test/integration/fixtures/segment-owner.ts'

type Owner = Fixture<{name: string; grantKey?: string}>

interface Ctx {
  port: number
  masterOptions: string
  master: Fixture<{address: string}>
  address: string
  owners: Owner[]
  client: MooncakeClient
}

const t = suite<Ctx>('client faults')

async function startOwner(address: string, size = 64 * MiB): Promise<Owner> {
  return startFixture(OWNER, [JSON.stringify({masterAddress: address, size, pingIntervalMs: 200})], {timeoutMs: 30_000})
}


t.before(async (ctx) => {
  ctx.port = await freePort()
  ctx.masterOptions = JSON.stringify({port: ctx.port, clientTtlMs: 1500})
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  ctx.address = ctx.master.ready.address
  ctx.owners = await Promise.all([startOwner(ctx.address), startOwner(ctx.address)])
  ctx.client = await MooncakeClient.connect({masterAddress: ctx.address, transport: 'tcp', timeoutMs: 3000})
})

t.after(async (ctx) => {
  await ctx.client?.close()
  await killAll()
})

t('a replica corrupted on purpose: get returns the right bytes from the other', async (ctx) => {
  for (const size of [100_000, 9 * MiB]) {
    const key = `corrupt/${size}`
    const value = randomBytes(size)
    await ctx.client.put(key, value, {replicaNum: 2})
    const list = await ctx.client.master.getReplicaList(key)
    const first = list.replicas[0].memory!
    const owner = ctx.owners.find((o) => o.ready.name === first.segment)!
    const reply = await owner.command<{ok: boolean}>({cmd: 'corrupt', offset: first.offset + 1000, length: 64})
    assert.ok(reply.ok)
    const before = ctx.client.stats.checksumMismatches
    assert.is(sha(await ctx.client.get(key)), sha(value), `size ${size}`)
    assert.ok(ctx.client.stats.checksumMismatches > before, 'the corrupt replica was read, detected and skipped')
  }
})

t('an owner killed with SIGKILL: get reads the other replica; after the TTL one replica is left', async (ctx) => {
  const value = randomBytes(6 * MiB)
  await ctx.client.put('survivor', value, {replicaNum: 2})
  const victim = ctx.owners[0]
  await victim.kill('SIGKILL')
  assert.is(sha(await ctx.client.get('survivor')), sha(value))
  const info = await waitFor(
    async () => {
      const q = await ctx.client.query('survivor')
      return q.replicas.length === 1 ? q : undefined
    },
    8000,
    'the dead segment to be dropped',
    100,
  )
  assert.is(info.replicas[0].segment, ctx.owners[1].ready.name)
  assert.is(sha(await ctx.client.get('survivor')), sha(value))
  ctx.owners.shift()
})

t('an operator unmount makes the owner process exit 0', async (ctx) => {
  const owner = ctx.owners.shift()!
  const admin = await connectMaster({address: ctx.address})
  try {
    await admin.unmountSegment({name: owner.ready.name})
  } finally {
    await admin.close()
  }
  const exit = await Promise.race([owner.exited, new Promise<null>((r) => setTimeout(() => r(null), 8000))])
  assert.ok(exit, 'the owner did not exit')
  assert.is(exit!.code, 0)
})

t('a master restart: the owner re-mounts and puts succeed again', async (ctx) => {
  const owner = await startOwner(ctx.address)
  ctx.owners.push(owner)
  await ctx.master.kill('SIGKILL')
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  await waitFor(async () => (await ctx.client.master.getAllSegments()).some((s) => s.name === owner.ready.name), 10_000, 'the owner to re-mount', 100)
  const state = await owner.command<{state: string; states: string[]}>({cmd: 'state'})
  assert.ok(state.states.includes('remounting'), JSON.stringify(state))
  const value = randomBytes(300_000)
  await waitFor(() => ctx.client.put('after-restart', value).then(() => true), 5000, 'a put after the restart', 100)
  assert.is(sha(await ctx.client.get('after-restart')), sha(value))
})

t('master gone: calls fail with UNAVAILABLE within the deadline', async (ctx) => {
  await ctx.master.kill('SIGKILL')
  const t0 = Date.now()
  await rejects(ctx.client.get('after-restart'), 'UNAVAILABLE')
  await rejects(ctx.client.put('x', Buffer.from('y')), 'UNAVAILABLE')
  assert.ok(Date.now() - t0 < 2 * 3000 + 2000, `took ${Date.now() - t0} ms`)
})

t('a full pool evicts older objects and new puts keep succeeding', async () => {
  const master = await startFixture<{address: string}>(MASTER, [JSON.stringify({})])
  const owner = await startOwner(master.ready.address, 16 * MiB)
  const client = await MooncakeClient.connect({masterAddress: master.ready.address, transport: 'tcp'})
  try {
    const value = randomBytes(MiB)
    for (let i = 0; i < 48; i++) await client.put(`evict/${i}`, value)
    const exist = await client.batchIsExist(Array.from({length: 48}, (_, i) => `evict/${i}`))
    assert.ok(exist[47], 'the newest object is there')
    assert.ok(exist.filter((x) => !x).length >= 32, `evicted: ${exist.filter((x) => !x).length}`)
    assert.not.ok(exist[0], 'the oldest object was evicted')
  } finally {
    await client.close()
    await owner.kill()
    await master.kill()
  }
})

t.run()
