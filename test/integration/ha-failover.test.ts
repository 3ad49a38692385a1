// HA with a real etcd and three masters as separate processes (issue 5): kill -9 of the leader
// during a put workload loses no acknowledged object and the workload resumes by itself; a
// SIGSTOPped leader steps down and acknowledges nothing after SIGCONT; an etcd restart heals.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {startEtcd, type EtcdServer} from '../helpers/etcd.js'
import {killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'
import {health, type MasterProc, startMaster, waitLeader} from './fixtures/ha-cluster.js'

const TTL = 2_000
const SIZE = 4096

let etcd: EtcdServer
let masters: MasterProc[] = []
let node: Fixture
let clusterId = ''

test.before(async () => {
  etcd = await startEtcd()
})

test.after(async () => {
  await killAll()
  await etcd?.stop()
})

async function cluster(name: string): Promise<void> {
  clusterId = `${name}-${process.pid}`
  const opts = {etcd: [etcd.endpoint], clusterId, haLeaseTtlMs: TTL, clientTtlMs: 15_000}
  masters = await Promise.all([startMaster(opts), startMaster(opts), startMaster(opts)])
  await waitLeader(masters, 10_000)
  node = await startFixture('test/integration/fixtures/ha-node.ts', [JSON.stringify({etcd: [etcd.endpoint], clusterId, size: 64 * 2 ** 20, pingIntervalMs: 200})], {
    env: {GRPC_NODE_VERBOSITY: 'NONE'},
  })
}

async function acked(): Promise<string[]> {
  return (await node.command<{acked: string[]}>({cmd: 'acked'})).acked
}

/** Every acknowledged key reads back with its bytes (waits for the owner's re-mount first). */
async function checkAll(keys: string[], timeoutMs: number): Promise<void> {
  await waitFor(async () => (await node.command<{ok: boolean}>({cmd: 'get', key: keys[0], size: SIZE, seed: 0})).ok, timeoutMs, `${keys[0]} readable again`, 50)
  for (const key of keys) {
    const seed = Number(key.replace(/^\D+/, ''))
    const r = await node.command<{ok: boolean; same: boolean; code?: string; error?: string}>({cmd: 'get', key, size: SIZE, seed})
    assert.ok(r.ok, `${key}: ${r.code} ${r.error}`)
    assert.ok(r.same, `${key}: different bytes`)
  }
}

test('kill -9 of the leader during a put workload: new leader within 2x TTL, the workload resumes, nothing acknowledged is lost', async () => {
  await cluster('kill')
  await node.command({cmd: 'start', prefix: 'w', size: SIZE})
  await waitFor(async () => (await acked()).length >= 100, 20_000, '100 acknowledged puts')
  const leader = await waitLeader(masters, 5_000)
  const t0 = Date.now()
  leader.fx.child.kill('SIGKILL')
  const before = (await acked()).length
  const next = await waitLeader(masters, 4 * TTL, leader)
  const failoverMs = Date.now() - t0
  assert.ok(failoverMs < 2 * TTL, `new leader after ${failoverMs} ms (TTL ${TTL})`)
  assert.is.not(next, leader)
  // resumes by itself
  await waitFor(async () => (await acked()).length >= before + 50, 20_000, 'the workload to resume')
  const stopped = await node.command<{acked: string[]; failed: number}>({cmd: 'stop'})
  process.stderr.write(`[ha-failover] failover ${failoverMs} ms; ${stopped.acked.length} acknowledged, ${stopped.failed} failed attempts\n`)
  await checkAll(stopped.acked, 15_000)
  // the new leader's view version is a later election
  const h = await health(next)
  assert.ok(h !== undefined && h.viewVersion > 0)
  await node.kill('SIGKILL')
  for (const m of masters) m.fx.child.kill('SIGKILL')
})

async function rawClient(address: string): Promise<MasterClient> {
  return connectMaster({address, timeoutMs: 3_000, connectTimeoutMs: 3_000, retry: false})
}

test('SIGSTOP the leader past its lease, then SIGCONT: it steps down and acknowledges nothing', async () => {
  await cluster('stop')
  await node.command({cmd: 'start', prefix: 's', size: SIZE})
  await waitFor(async () => (await acked()).length >= 30, 20_000, '30 acknowledged puts')
  const leader = await waitLeader(masters, 5_000)
  const direct = await rawClient(leader.address)
  process.kill(leader.fx.pid, 'SIGSTOP')
  const next = await waitLeader(masters, 4 * TTL, leader)
  const count = (await acked()).length
  await waitFor(async () => (await acked()).length >= count + 30, 20_000, 'puts through the new leader')
  // Calls queued at the paused leader, and calls right after it resumes: none may succeed.
  const attempts: Promise<unknown>[] = []
  for (let i = 0; i < 20; i++) attempts.push(direct.putStart({clientId: 'stale', requestId: `r${i}`, key: `stale-${i}`, size: 64}))
  attempts.push(direct.mountSegment({clientId: 'stale', segment: {id: 'x', name: 'stale-seg', endpoints: ['127.0.0.1:1'], size: 2 ** 20, hostId: 'h'}}))
  await new Promise((r) => setTimeout(r, 100))
  process.kill(leader.fx.pid, 'SIGCONT')
  for (let i = 0; i < 20; i++) attempts.push(direct.putStart({clientId: 'stale', requestId: `q${i}`, key: `stale-late-${i}`, size: 64}))
  const results = await Promise.allSettled(attempts)
  for (const r of results) {
    assert.is(r.status, 'rejected', 'a deposed leader acknowledged a call')
    const code = (r as PromiseRejectedResult).reason?.code
    assert.ok(code === 'NOT_LEADER' || code === 'UNAVAILABLE', `code ${code}`)
  }
  // A fresh standby reports its role before it has read the leader key: wait for both.
  await waitFor(async () => {
    const h = await health(leader)
    return h?.role === 'standby' && h.leader === next.address
  }, 5_000, `the old leader to become a standby following ${next.address}`)
  direct.close()
  // none of it reached the cluster
  const fresh = await rawClient(next.address)
  for (const key of ['stale-0', 'stale-late-0']) assert.is(await fresh.existKey(key), false)
  assert.not.ok((await fresh.getAllSegments()).some((s) => s.name === 'stale-seg'))
  fresh.close()
  const stopped = await node.command<{acked: string[]}>({cmd: 'stop'})
  await checkAll(stopped.acked, 15_000)
  await node.kill('SIGKILL')
  for (const m of masters) m.fx.child.kill('SIGKILL')
})

test('restart etcd: masters and clients recover without manual action', async () => {
  await cluster('etcd')
  await node.command({cmd: 'start', prefix: 'e', size: SIZE})
  await waitFor(async () => (await acked()).length >= 30, 20_000, '30 acknowledged puts')
  await etcd.restart()
  const count = (await acked()).length
  await waitLeader(masters, 5 * TTL)
  await waitFor(async () => (await acked()).length >= count + 30, 30_000, 'puts after the etcd restart')
  const stopped = await node.command<{acked: string[]}>({cmd: 'stop'})
  await checkAll(stopped.acked, 15_000)
  await node.kill('SIGKILL')
  for (const m of masters) m.fx.child.kill('SIGKILL')
})

test.run()
