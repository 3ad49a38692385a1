// `mooncake doctor` (the built CLI) against a real cluster: a master and two segment owners in
// their own processes, one of them SIGKILLed; and against a real etcd for the HA checks.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {cleanup as cleanupCli, run} from '../cli/helpers.js'
import {type EtcdServer, freePort, startEtcd} from '../helpers/etcd.js'
import {type Fixture, killAll, startFixture, waitFor} from '../helpers/processes.js'
import {tcpProbe, type Check} from '../../src/lib/doctor/checks.js'

const MiB = 1 << 20

type Owner = Fixture<{name: string; endpoints: string[]}>
let master: Fixture<{address: string; httpAddress: string}>
let live: Owner
let dead: Owner
let etcd: EtcdServer | undefined

const doctor = async (...args: string[]) => {
  const r = await run(['doctor', ...args])
  return {...r, checks: args.includes('--json') ? (JSON.parse(r.stdout) as {checks: Check[]}).checks : []}
}
const byName = (checks: Check[], name: string) => checks.find((c) => c.name === name)

test.before(async () => {
  master = await startFixture('test/integration/fixtures/master.ts', [JSON.stringify({clientTtlMs: 30_000})])
  const owner = (name: string) =>
    startFixture<{name: string; endpoints: string[]}>('test/integration/fixtures/segment-owner.ts', [
      JSON.stringify({masterAddress: master.ready.address, size: 2 * MiB, name, pingIntervalMs: 200}),
    ])
  ;[live, dead] = await Promise.all([owner('seg-live'), owner('seg-dead')])
})

test.after(async () => {
  await etcd?.stop()
  await killAll()
  cleanupCli()
})

test('all green: every check passes, exit 0, one line per check', async () => {
  const r = await doctor('--master', master.ready.address, '--http', master.ready.httpAddress)
  assert.is(r.code, 0, r.stdout + r.stderr)
  const lines = r.stdout.trim().split('\n')
  for (const name of ['master', 'version', 'master-http', 'clock', 'segment seg-live', 'segment seg-dead', 'node', 'native', 'shm']) {
    assert.ok(lines.some((l) => new RegExp(`^ok\\s+${name}\\s`).test(l)), `${name} ok in:\n${r.stdout}`)
  }
  assert.not.ok(r.stdout.includes('FAIL'))
})

test('a killed segment owner: the failed check names its endpoint and says what to fix; exit 1', async () => {
  const endpoint = dead.ready.endpoints[0]!
  await dead.kill('SIGKILL')
  await waitFor(() => tcpProbe(endpoint, 500).then(() => false, () => true), 5_000, 'the dead owner port to close')

  const r = await doctor('--master', master.ready.address, '--http', master.ready.httpAddress, '--json')
  assert.is(r.code, 1, r.stderr)
  assert.equal(Object.keys(r.checks[0]!), ['name', 'ok', 'detail', 'fix'])
  const bad = r.checks.filter((c) => !c.ok)
  assert.equal(bad.map((c) => c.name), ['segment seg-dead'])
  assert.ok(bad[0]!.detail.includes(endpoint), bad[0]!.detail)
  assert.match(bad[0]!.detail, /ECONNREFUSED/)
  assert.ok(bad[0]!.fix.includes(endpoint))
  assert.match(bad[0]!.fix, /mooncake segment unmount seg-dead/)
  assert.is(byName(r.checks, 'segment seg-live')!.ok, true)
  assert.is(byName(r.checks, 'master')!.ok, true)

  const human = await doctor('--master', master.ready.address, '--http', master.ready.httpAddress)
  assert.is(human.code, 1)
  const line = human.stdout.split('\n').find((l) => l.startsWith('FAIL'))!
  assert.match(line, new RegExp(`^FAIL\\s+segment seg-dead\\s+data port ${endpoint.replace(/\./g, '\\.')} \\(.*ECONNREFUSED.*\\).*-> fix: `))
  assert.match(human.stderr, /^mooncake: doctor: 1 of \d+ checks failed$/m)
})

test('an unreachable master fails the master check (exit 1, not 5) and skips the segment checks', async () => {
  const port = await freePort()
  const r = await doctor('--master', `127.0.0.1:${port}`, '--json', '--probe-timeout', '1s')
  assert.is(r.code, 1)
  const m = byName(r.checks, 'master')!
  assert.is(m.ok, false)
  assert.match(m.detail, /UNAVAILABLE/)
  assert.match(m.fix, /mooncake master/)
  assert.is(byName(r.checks, 'master-http')!.ok, false)
  assert.match(byName(r.checks, 'master-http')!.detail, new RegExp(`127\\.0\\.0\\.1:9003`))
  assert.not.ok(r.checks.some((c) => c.name.startsWith('segment')))
})

test('etcd: endpoint health, a dead endpoint, the leader key absent then present (the master is found through it)', async () => {
  etcd = await startEtcd()
  const deadPort = await freePort()
  const endpoints = `${etcd.endpoint},127.0.0.1:${deadPort}`
  let r = await doctor('--etcd', endpoints, '--cluster-id', 'doc1', '--json', '--probe-timeout', '1s', '--http', master.ready.httpAddress)
  assert.is(r.code, 1)
  assert.is(byName(r.checks, `etcd ${etcd.endpoint}`)!.ok, true)
  const down = byName(r.checks, `etcd 127.0.0.1:${deadPort}`)!
  assert.is(down.ok, false)
  assert.match(down.detail, /not reachable/)
  const key = byName(r.checks, 'etcd leader key')!
  assert.is(key.ok, false)
  assert.match(key.detail, /mooncake\/doc1\/master is absent/)

  // top (with --etcd and no --http) finds the master through the same key: none yet -> UNAVAILABLE.
  const top = await run(['top', '--once', '--etcd', etcd.endpoint, '--cluster-id', 'doc1', '--timeout', '5s'])
  assert.is(top.code, 5, top.stderr)
  assert.match(top.stderr, /^mooncake: UNAVAILABLE: no master leads cluster doc1 in etcd/m)

  const {Etcd3} = await import('etcd3')
  const client = new Etcd3({hosts: `http://${etcd.endpoint}`})
  try {
    await client.put('mooncake/doc1/master').value(master.ready.address)
  } finally {
    client.close()
  }
  r = await doctor('--etcd', etcd.endpoint, '--cluster-id', 'doc1', '--master', '127.0.0.1:1', '--http', master.ready.httpAddress, '--json')
  assert.is(byName(r.checks, 'etcd leader key')!.ok, true)
  assert.ok(byName(r.checks, 'etcd leader key')!.detail.endsWith(master.ready.address))
  const m = byName(r.checks, 'master')!
  assert.is(m.ok, true, m.detail)
  assert.ok(m.detail.startsWith(master.ready.address))
})

test.run()
