/**
 * P2P store library against a real etcd, with in-process fake data planes (the metadata, the
 * scheduler and the control channel; real sockets and processes: p2p-processes.test.ts).
 */
import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {P2PAdmin} from '../../src/lib/p2p/admin.js'
import {P2PStore} from '../../src/lib/p2p/store.js'
import type {P2PEvent, P2PStoreOptions} from '../../src/lib/p2p/types.js'
import {startEtcd, type EtcdServer} from '../helpers/etcd.js'
import {FakePlane} from './fixtures/p2p-fake-plane.js'
import {rejects} from '../helpers/assert-code.js'

let etcd: EtcdServer
let dir: string
const stores: P2PStore[] = []
const admins: P2PAdmin[] = []
let cluster = 0

test.before(async () => {
  etcd = await startEtcd()
  dir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-p2p-'))
})

test.after.each(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => {})
  for (const a of admins.splice(0)) a.close()
})

test.after(async () => {
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}


async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function clusterId(): string {
  return `p2ptest${++cluster}`
}

async function open(id: string, peerName: string, extra: Partial<P2PStoreOptions> = {}): Promise<{store: P2PStore; plane: FakePlane}> {
  const plane = new FakePlane()
  const store = await P2PStore.open({etcd: etcd.endpoint, clusterId: id, peerName, dataPlane: plane, drainMs: 0, leaseTtlMs: 2_000, ...extra})
  stores.push(store)
  return {store, plane}
}

test('register, list by prefix, getReplica into buffers and files, sizes checked', async () => {
  const id = clusterId()
  const {store: seed} = await open(id, 'seed')
  const a = randomBytes(300_000)
  const b = randomBytes(70_001)
  const file = path.join(dir, 'part-b')
  writeFileSync(file, b)
  const info = await seed.register('ckpt/model-1', [a, {file}], {maxShardSize: 64 * 1024})
  assert.equal(info, {name: 'ckpt/model-1', maxShardSize: 65536, totalSize: 370_001, sizeList: [300_000, 70_001]})
  await seed.register('ckpt/model-2', [randomBytes(5000)], {maxShardSize: 4096})
  await seed.register('other', [randomBytes(10)], {maxShardSize: 4096})

  const {store: peer} = await open(id, 'peer1')
  assert.equal((await peer.list('ckpt/')).map((p) => p.name), ['ckpt/model-1', 'ckpt/model-2'])
  assert.equal((await peer.list()).length, 3)
  assert.equal(await peer.list('nope'), [])

  await rejects(peer.getReplica('ckpt/model-1', [Buffer.alloc(300_000)]), 'PAYLOAD_SIZE_MISMATCH')
  const mismatch = await rejects(peer.getReplica('ckpt/model-1', [Buffer.alloc(300_000), Buffer.alloc(5)]), 'PAYLOAD_SIZE_MISMATCH')
  assert.match(mismatch.message, '[300000, 70001]')
  assert.match(mismatch.message, '[300000, 5]')
  await rejects(peer.getReplica('missing', [Buffer.alloc(1)]), 'PAYLOAD_NOT_FOUND')

  const outA = Buffer.alloc(300_000)
  const outFile = path.join(dir, 'out-b')
  const result = await peer.getReplica('ckpt/model-1', [outA, {file: outFile}])
  assert.is(result.bytes, 370_001)
  assert.is(sha(outA), sha(a))
  assert.is(sha(readFileSync(outFile)), sha(b))
  assert.equal(readdirSync(dir).filter((f) => f.includes('.p2p-')), [], 'no temporary file left')
  // One replica per name per peer.
  await rejects(peer.getReplica('ckpt/model-1', [Buffer.alloc(300_000), Buffer.alloc(70_001)]), 'REPLICA_ALREADY_EXISTS')

  // The new replica serves: a third peer downloads with the seeder's data plane failing.
  const admin = await P2PAdmin.connect({etcd: etcd.endpoint, clusterId: id})
  admins.push(admin)
  await until('peer1 advertises all shards', async () => (await admin.holders('ckpt/model-1')).some((h) => h.peer === 'peer1' && h.shards === 'all'))
  assert.equal((await admin.holders('ckpt/model-1')).map((h) => h.peer).sort(), ['peer1', 'seed'])
})

test('register of an existing name is PAYLOAD_ALREADY_EXISTS; a taken peer name is refused', async () => {
  const id = clusterId()
  const {store: one} = await open(id, 'one')
  const {store: two} = await open(id, 'two')
  await one.register('dup', [randomBytes(100)], {maxShardSize: 4096})
  await rejects(two.register('dup', [randomBytes(100)], {maxShardSize: 4096}), 'PAYLOAD_ALREADY_EXISTS')
  await rejects(one.register('dup', [randomBytes(100)], {maxShardSize: 4096}), 'REPLICA_ALREADY_EXISTS')
  await rejects(open(id, 'one'), 'PEER_ALREADY_EXISTS')
  await rejects(one.register('bad', [randomBytes(100)], {maxShardSize: 100}), 'INVALID_PARAMS')
})

test('downloads retry another holder when one fails, and pick holders by load', async () => {
  const id = clusterId()
  const {store: seed} = await open(id, 'seed')
  const data = randomBytes(40 * 4096)
  await seed.register('p', [data], {maxShardSize: 4096})
  const {store: r1} = await open(id, 'r1')
  await r1.getReplica('p', [Buffer.alloc(data.length)])
  const {store: r2, plane: p2} = await open(id, 'r2')
  await r2.getReplica('p', [Buffer.alloc(data.length)])
  p2.failing = true
  const events: P2PEvent[] = []
  const {store: r3} = await open(id, 'r3', {onEvent: (e) => events.push(e), concurrency: 3})
  const out = Buffer.alloc(data.length)
  const result = await r3.getReplica('p', [out])
  assert.is(sha(out), sha(data))
  assert.is(result.bytesByHolder.r2, undefined, 'nothing came from the failing holder')
  assert.ok((result.bytesByHolder.seed ?? 0) > 0 && (result.bytesByHolder.r1 ?? 0) > 0, JSON.stringify(result.bytesByHolder))
  assert.ok(events.some((e) => e.type === 'retry' && e.holder === 'r2'), 'the failing holder was tried and left')
})

test('a download with no live holder fails after the stall timeout', async () => {
  const id = clusterId()
  const {store: seed, plane} = await open(id, 'seed')
  await seed.register('q', [randomBytes(8192)], {maxShardSize: 4096})
  plane.failing = true
  const {store: peer} = await open(id, 'peer')
  const t0 = Date.now()
  const err = await rejects(peer.getReplica('q', [Buffer.alloc(8192)], {stallTimeoutMs: 800}), 'TRANSFER_FAIL')
  assert.ok(Date.now() - t0 < 5_000)
  assert.match(err.message, 'seed')
  // The failed download left nothing behind: no holder entry for peer, a retry is allowed.
  plane.failing = false
  const out = Buffer.alloc(8192)
  await peer.getReplica('q', [out])
})

test('unregister and delete-replica from another process go through etcd and are acknowledged', async () => {
  const id = clusterId()
  const released: string[] = []
  const {store: seed} = await open(id, 'seed', {onEvent: (e) => e.type === 'released' && released.push(`${e.name}:${e.reason}`)})
  await seed.register('u', [randomBytes(9000)], {maxShardSize: 4096})
  const {store: peer} = await open(id, 'peer')
  await peer.getReplica('u', [Buffer.alloc(9000)])
  const admin = await P2PAdmin.connect({etcd: etcd.endpoint, clusterId: id})
  admins.push(admin)

  assert.equal(await admin.deleteReplica('u', {timeoutMs: 5_000}), {peer: 'peer'})
  assert.equal(peer.held(), [])
  assert.equal((await admin.holders('u')).map((h) => h.peer), ['seed'])
  await rejects(admin.deleteReplica('u', {timeoutMs: 5_000}), 'REPLICA_NOT_FOUND')

  assert.equal(await admin.unregister('u', {timeoutMs: 5_000}), {peer: 'seed'})
  assert.equal(released, ['u:unregister'])
  assert.equal(seed.held(), [])
  assert.equal(await admin.list(), [], 'the record went with its last holder')
  await rejects(admin.unregister('u'), 'PAYLOAD_NOT_FOUND')
  // The name is free again.
  await peer.register('u', [randomBytes(10)], {maxShardSize: 4096})
})

test('close revokes the lease: holder and peer keys vanish at once, the name can be reused', async () => {
  const id = clusterId()
  const {store: seed} = await open(id, 'seed')
  await seed.register('c', [randomBytes(5000)], {maxShardSize: 4096})
  const admin = await P2PAdmin.connect({etcd: etcd.endpoint, clusterId: id})
  admins.push(admin)
  assert.is((await admin.holders('c')).length, 1)
  await seed.close()
  assert.is((await admin.holders('c')).length, 0)
  // The stale record (nobody serves it) is taken over by a new registration.
  const {store: again} = await open(id, 'seed')
  await again.register('c', [randomBytes(7)], {maxShardSize: 4096})
  assert.equal((await admin.list('c'))[0].sizeList, [7])
})

test.run()
