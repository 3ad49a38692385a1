// Mutual TLS on the master's ports: a master given --tls-ca requires client certificates signed by
// that CA, on gRPC and on the admin HTTP port alike (as etcd's --client-cert-auth). Without a
// certificate, or with one from another CA, calls are refused with UNAUTHENTICATED (exit 6 in the
// CLI; HTTP 401 with the same code); with a good certificate everything works, doctor included.
import {readFileSync} from 'node:fs'
import https from 'node:https'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {masterTls} from '../../src/lib/config.js'
import type {Check} from '../../src/lib/doctor/checks.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {run} from '../cli/helpers.js'
import {TestPki} from '../helpers/certs.js'
import {rejects, segment} from './master-grpc-helpers.js'

const pki = new TestPki()
const caPath = pki.ca('ca')
pki.ca('other-ca')
const server = pki.leaf('server', 'ca', ['serverAuth'])
const client = pki.leaf('client', 'ca', ['clientAuth'])
const stranger = pki.leaf('stranger', 'other-ca', ['clientAuth'])
const ca = readFileSync(caPath)
const identity = (p: {cert: string; key: string}) => ({cert: readFileSync(p.cert), key: readFileSync(p.key)})

let master: RunningMaster

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: 0, tls: masterTls({tlsCert: server.cert, tlsKey: server.key, tlsCa: caPath})})
})

test.after(async () => {
  await master?.close()
  pki.cleanup()
})

function httpsGet(path: string, tls: {ca: Buffer; cert?: Buffer; key?: Buffer}): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    https
      .get(`https://${master.httpAddress}${path}`, {...tls, agent: false}, (res) => {
        let data = ''
        res.on('data', (d) => (data += d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body: data}))
      })
      .on('error', reject)
  })
}

test('gRPC: a client certificate signed by the CA is accepted', async () => {
  const c = await connectMaster({address: master.address, tls: {ca, ...identity(client)}, connectTimeoutMs: 5_000})
  try {
    await c.mountSegment({clientId: 'c', segment: segment('mtls-seg')})
    const segments = await c.getAllSegments()
    assert.equal(
      segments.map((s) => s.name),
      ['mtls-seg'],
    )
  } finally {
    c.close()
  }
})

test('gRPC: no client certificate -> UNAUTHENTICATED naming --tls-cert', async () => {
  const err = await rejects(connectMaster({address: master.address, tls: {ca}, connectTimeoutMs: 5_000, retry: false}), 'UNAUTHENTICATED')
  assert.match(err.message, '--tls-cert')
})

test('gRPC: a client certificate from another CA -> UNAUTHENTICATED', async () => {
  const err = await rejects(connectMaster({address: master.address, tls: {ca, ...identity(stranger)}, connectTimeoutMs: 5_000, retry: false}), 'UNAUTHENTICATED')
  assert.match(err.message, '--tls-ca')
})

test('HTTP: 200 with a good certificate; 401 UNAUTHENTICATED without one or with another CA', async () => {
  const good = await httpsGet('/health', {ca, ...identity(client)})
  assert.is(good.status, 200, good.body)
  assert.match(good.body, '"status"')
  for (const [what, tls] of [
    ['none presented', {ca}],
    ['did not verify', {ca, ...identity(stranger)}],
  ] as const) {
    for (const path of ['/health', '/metrics']) {
      const r = await httpsGet(path, tls)
      assert.is(r.status, 401, `${path} ${what}: ${r.body}`)
      const doc = JSON.parse(r.body) as {error: {code: string; message: string}}
      assert.is(doc.error.code, 'UNAUTHENTICATED')
      assert.match(doc.error.message, what)
      assert.not.match(r.body, 'mtls-seg', 'no data leaks before the check')
    }
  }
})

test('CLI: segment ls with --tls-cert/--tls-key works; without them exit 6 UNAUTHENTICATED', async () => {
  const ok = await run(['segment', 'ls', '--json', '--master', master.address, '--tls-ca', caPath, '--tls-cert', client.cert, '--tls-key', client.key])
  assert.is(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, 'mtls-seg')
  const none = await run(['segment', 'ls', '--master', master.address, '--tls-ca', caPath, '--timeout', '5s'])
  assert.is(none.code, 6, none.stderr)
  assert.match(none.stderr, /^mooncake: UNAUTHENTICATED: .*--tls-cert/m)
  const wrong = await run(['segment', 'ls', '--master', master.address, '--tls-ca', caPath, '--tls-cert', stranger.cert, '--tls-key', stranger.key, '--timeout', '5s'])
  assert.is(wrong.code, 6, wrong.stderr)
  assert.match(wrong.stderr, 'mooncake: UNAUTHENTICATED')
})

test('doctor: with the client certificate the master checks pass; without it master and master-http fail saying why', async () => {
  const doctor = async (...extra: string[]) => {
    const r = await run(['doctor', '--json', '--master', master.address, '--http', master.httpAddress!, '--tls-ca', caPath, ...extra])
    const checks = (JSON.parse(r.stdout) as {checks: Check[]}).checks
    return {...r, check: (name: string) => checks.find((c) => c.name === name)!}
  }
  const good = await doctor('--tls-cert', client.cert, '--tls-key', client.key)
  for (const name of ['master', 'version', 'master-http', 'clock']) assert.ok(good.check(name).ok, `${name}: ${good.check(name).detail}`)
  assert.match(good.check('segment mtls-seg').detail, '127.0.0.1:1')
  const bad = await doctor()
  assert.is(bad.code, 1)
  assert.not.ok(bad.check('master').ok)
  assert.match(bad.check('master').detail, 'UNAUTHENTICATED')
  assert.match(bad.check('master').fix, '--tls-cert')
  assert.not.ok(bad.check('master-http').ok)
  assert.match(bad.check('master-http').detail, '401 (UNAUTHENTICATED)')
})

test.run()
