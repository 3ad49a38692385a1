// `mooncake cluster status` against a real etcd and two masters (the built CLI: npm run build
// first), and a lone HA master that is restarted: it takes over again without losing objects.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {clusterStatus} from '../../src/lib/master/ha/status.js'
import {run} from '../cli/helpers.js'
import {startEtcd, type EtcdServer} from '../helpers/etcd.js'
import {killAll, waitFor} from '../helpers/processes.js'
import {startMaster, waitLeader} from './fixtures/ha-cluster.js'

let etcd: EtcdServer

test.before(async () => {
  etcd = await startEtcd()
})

test.after(async () => {
  await killAll()
  await etcd?.stop()
})

test('cluster status --json: leader, standbys, view version, etcd health', async () => {
  const clusterId = `status-${process.pid}`
  const opts = {etcd: [etcd.endpoint], clusterId, haLeaseTtlMs: 2_000}
  const masters = await Promise.all([startMaster(opts), startMaster(opts)])
  const leader = await waitLeader(masters, 10_000)
  const standby = masters.find((m) => m !== leader)!
  await waitFor(async () => (await clusterStatus({etcd: [etcd.endpoint], clusterId})).standbys.length === 1, 5_000, 'the standby registered')
  const r = await run(['cluster', 'status', '--etcd', etcd.endpoint, '--cluster-id', clusterId, '--json'])
  assert.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as {leader: string; standbys: string[]; viewVersion: number; etcd: {healthy: boolean; version: string}}
  assert.equal(Object.keys(doc), ['leader', 'standbys', 'viewVersion', 'etcd'])
  assert.is(doc.leader, leader.address)
  assert.equal(doc.standbys, [standby.address])
  assert.ok(doc.viewVersion > 0)
  assert.is(doc.etcd.healthy, true)
  assert.match(doc.etcd.version, /^3\./)
  // the leader reports the same view version
  const c = await connectMaster({address: '', etcd: [etcd.endpoint], clusterId, timeoutMs: 5_000})
  assert.is((await c.serviceReady()).viewVersion, doc.viewVersion)
  c.close()
  const human = await run(['cluster', 'status', '--etcd', etcd.endpoint, '--cluster-id', clusterId])
  assert.is(human.code, 0)
  assert.match(human.stdout, new RegExp(`leader\\s+${leader.address.replace(/\./g, '\\.')}`))
  for (const m of masters) m.fx.child.kill('SIGKILL')
})

test('cluster status: etcd down is exit 5', async () => {
  const r = await run(['cluster', 'status', '--etcd', '127.0.0.1:1', '--timeout', '1s', '--json'])
  assert.is(r.code, 5, r.stderr)
  assert.match(r.stderr, /UNAVAILABLE/)
})

test('a lone HA master killed and restarted on the same address takes over again with its objects', async () => {
  const clusterId = `lone-${process.pid}`
  const opts = {etcd: [etcd.endpoint], clusterId, haLeaseTtlMs: 2_000}
  let m = await startMaster(opts)
  await waitLeader([m], 10_000)
  const c = await connectMaster({address: '', etcd: [etcd.endpoint], clusterId, timeoutMs: 15_000})
  const d = {id: 'seg-id', name: 'seg', endpoints: ['127.0.0.1:9'], size: 2 ** 20, hostId: 'h'}
  await c.mountSegment({clientId: 'owner', segment: d})
  await c.putStart({clientId: 'w', requestId: 'r1', key: 'kept', size: 100})
  await c.putEnd({clientId: 'w', key: 'kept', checksum: 5})
  m.fx.child.kill('SIGKILL')
  await m.fx.exited
  m = await startMaster(opts, m.port)
  const t0 = Date.now()
  await waitLeader([m], 10_000)
  // the dead incarnation's key is taken over at once, not after its lease ran out
  assert.ok(Date.now() - t0 < 2_000, `leader again after ${Date.now() - t0} ms`)
  assert.is((await c.ping({clientId: 'owner'})).status, 'NEED_REMOUNT')
  await c.reMountSegment({clientId: 'owner', segments: [d]})
  const g = await c.getReplicaList('kept')
  assert.is(g.checksum, 5)
  assert.is(g.replicas[0].memory!.segment, 'seg')
  c.close()
})

test.run()
