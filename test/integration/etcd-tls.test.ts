// etcd over TLS with client-certificate authentication (a real etcd: https client URL,
// --client-cert-auth, certificates made with openssl): an HA master, the CLI and the P2P store
// work with --etcd-ca / --etcd-cert / --etcd-key; with a CA that did not sign etcd's certificate,
// or without a client certificate, they fail at once with UNAVAILABLE (exit 5) naming the flags.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {configureEtcd} from '../../src/lib/etcd-options.js'
import type {Check} from '../../src/lib/doctor/checks.js'
import {isMooncakeError} from '../../src/lib/errors.js'
import {P2PAdmin} from '../../src/lib/p2p/admin.js'
import {cleanup as cleanupCli, run, type Server, startServer} from '../cli/helpers.js'
import {TestPki} from '../helpers/certs.js'
import {type EtcdServer, startEtcd} from '../helpers/etcd.js'

const pki = new TestPki()
const ca = pki.ca('ca')
const otherCa = pki.ca('other-ca')
const etcdCert = pki.leaf('etcd', 'ca')
const client = pki.leaf('client', 'ca', ['clientAuth'])

let etcd: EtcdServer
let master: Server | undefined
/** --etcd and its TLS flags, right or wrong. */
let good: string[]
let wrongCa: string[]
let noCert: string[]

test.before(async () => {
  etcd = await startEtcd({tls: {cert: etcdCert.cert, key: etcdCert.key, ca}})
  const base = ['--etcd', etcd.url, '--cluster-id', 'tls1']
  good = [...base, '--etcd-ca', ca, '--etcd-cert', client.cert, '--etcd-key', client.key]
  wrongCa = [...base, '--etcd-ca', otherCa, '--etcd-cert', client.cert, '--etcd-key', client.key]
  noCert = [...base, '--etcd-ca', ca]
})

test.after(async () => {
  master?.child.kill('SIGTERM')
  await master?.exited
  await etcd?.stop()
  cleanupCli()
  pki.cleanup()
})

test('the test etcd serves https only, with client certificates required', async () => {
  assert.match(etcd.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const plain = await fetch(`http://${etcd.endpoint}/health`).then(
    (r) => r.status,
    (err: Error) => err.message,
  )
  assert.is.not(plain, 200)
})

test('an HA master leads through the TLS etcd; segment ls, cluster status and doctor find it there', async () => {
  master = await startServer(['master', '--port', '0', '--metrics-port', '0', '--ha-lease-ttl', '2s', ...good])
  const address = /^ready master (\S+)/.exec(master.ready)![1]!
  const status = await run(['cluster', 'status', '--json', ...good])
  assert.is(status.code, 0, status.stderr)
  const doc = JSON.parse(status.stdout) as {leader: string; etcd: {healthy: boolean}}
  assert.is(doc.leader, address)
  assert.is(doc.etcd.healthy, true)
  const ls = await run(['segment', 'ls', '--json', ...good])
  assert.is(ls.code, 0, ls.stderr)
  assert.equal(JSON.parse(ls.stdout), {segments: []})
  const doctor = await run(['doctor', '--json', ...good])
  const checks = (JSON.parse(doctor.stdout) as {checks: Check[]}).checks
  const check = (name: string) => checks.find((c) => c.name === name)!
  assert.ok(check(`etcd ${etcd.endpoint}`).ok, check(`etcd ${etcd.endpoint}`).detail)
  assert.ok(check('etcd leader key').ok, check('etcd leader key').detail)
  assert.match(check('etcd leader key').detail, address)
  assert.ok(check('master').ok, check('master').detail)
})

test('p2p list with the right CA and certificate: exit 0; wrong CA or no certificate: exit 5 UNAVAILABLE naming the flags', async () => {
  const ok = await run(['p2p', 'list', '--json', ...good])
  assert.is(ok.code, 0, ok.stderr)
  assert.equal(JSON.parse(ok.stdout), [])
  for (const [what, flags] of [
    ['wrong CA', wrongCa],
    ['no client certificate', noCert],
  ] as const) {
    const r = await run(['p2p', 'list', '--json', '--timeout', '10s', ...flags])
    assert.is(r.code, 5, `${what}: ${r.stderr}`)
    assert.match(r.stderr, /^mooncake: UNAVAILABLE: etcd .*TLS handshake with etcd failed.*--etcd-ca.*--etcd-cert/m, what)
    assert.ok(r.ms < 9_000, `${what}: failed at once, not at the deadline (${r.ms} ms)`)
    const doc = JSON.parse(r.stdout) as {error: {code: string}}
    assert.is(doc.error.code, 'UNAVAILABLE')
  }
})

test('a master with the wrong etcd CA refuses to start: exit 5 UNAVAILABLE, no ready line', async () => {
  const r = await run(['master', '--port', '0', '--metrics-port', '0', '--timeout', '10s', ...wrongCa], {killAfterMs: 15_000})
  assert.is(r.code, 5, r.stderr)
  assert.is(r.stdout, '')
  assert.match(r.stderr, /mooncake: UNAVAILABLE: .*--etcd-ca/)
})

test('the P2P library through configureEtcd: the right CA lists, the wrong one fails with UNAVAILABLE', async () => {
  try {
    configureEtcd({etcdCa: ca, etcdCert: client.cert, etcdKey: client.key})
    const admin = await P2PAdmin.connect({etcd: [etcd.url], clusterId: 'tls1'})
    try {
      assert.equal(await admin.list(), [])
    } finally {
      await admin.close()
    }
    configureEtcd({etcdCa: otherCa, etcdCert: client.cert, etcdKey: client.key})
    let err: unknown
    try {
      const bad = await P2PAdmin.connect({etcd: [etcd.url], clusterId: 'tls1'})
      try {
        await bad.list()
      } finally {
        await bad.close()
      }
    } catch (e) {
      err = e
    }
    assert.ok(isMooncakeError(err, 'UNAVAILABLE'), String(err))
    assert.match((err as Error).message, '--etcd-ca')
  } finally {
    configureEtcd({})
  }
})

test.run()
