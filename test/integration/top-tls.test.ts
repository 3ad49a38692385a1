// `mooncake top` against masters started with TLS: a master given --tls-cert serves its HTTP port
// over https, so top must read it with the same --tls-ca / --tls-cert / --tls-key as every other
// command; with --tls-ca on the master (mTLS) it must present a client certificate. Without the
// right material top fails fast with the contract's codes (5 UNAVAILABLE, 6 UNAUTHENTICATED) and a
// message naming the flag to pass, never a hang.
import {readFileSync} from 'node:fs'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {masterTls} from '../../src/lib/config.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import type {TopSnapshot} from '../../src/lib/top/model.js'
import {cleanup, run} from '../cli/helpers.js'
import {TestPki} from '../helpers/certs.js'
import {segment} from './master-grpc-helpers.js'

const pki = new TestPki()
const caPath = pki.ca('ca')
const otherCaPath = pki.ca('other-ca')
const server = pki.leaf('server', 'ca', ['serverAuth'])
const client = pki.leaf('client', 'ca', ['clientAuth'])
const stranger = pki.leaf('stranger', 'other-ca', ['clientAuth'])

let tlsMaster: RunningMaster
let mtlsMaster: RunningMaster

/** Mounts a 1 MiB segment so the snapshot has something to show. */
async function mount(master: RunningMaster, name: string, tls: {ca: Buffer; cert?: Buffer; key?: Buffer}): Promise<void> {
  const c = await connectMaster({address: master.address, tls, connectTimeoutMs: 5_000})
  try {
    await c.mountSegment({clientId: `client-${name}`, segment: segment(name)})
  } finally {
    c.close()
  }
}

test.before(async () => {
  // clientTtlMs: the segments are mounted without pings; they must outlive a slow machine.
  tlsMaster = await startMasterServer({port: 0, metricsPort: 0, clientTtlMs: 120_000, tls: masterTls({tlsCert: server.cert, tlsKey: server.key})})
  mtlsMaster = await startMasterServer({port: 0, metricsPort: 0, clientTtlMs: 120_000, tls: masterTls({tlsCert: server.cert, tlsKey: server.key, tlsCa: caPath})})
  const ca = readFileSync(caPath)
  await mount(tlsMaster, 'tls-top-seg', {ca})
  await mount(mtlsMaster, 'mtls-top-seg', {ca, cert: readFileSync(client.cert), key: readFileSync(client.key)})
})

test.after(async () => {
  await tlsMaster?.close()
  await mtlsMaster?.close()
  pki.cleanup()
  cleanup()
})

const top = (master: RunningMaster, ...extra: string[]) =>
  run(['top', '--once', '--json', '--interval', '200ms', '--master', master.address, '--http', master.httpAddress!, ...extra])

function snapshot(stdout: string): TopSnapshot {
  return JSON.parse(stdout) as TopSnapshot
}

test('TLS master: top --once --json with --tls-ca reads the https port', async () => {
  const r = await top(tlsMaster, '--tls-ca', caPath)
  assert.is(r.code, 0, r.stderr)
  const snap = snapshot(r.stdout)
  assert.is(snap.master, tlsMaster.address)
  assert.equal(
    snap.segments.map((s) => s.name),
    ['tls-top-seg'],
  )
  assert.is(snap.capacity, 1 << 20)
  // The same through the environment, as the other commands take it.
  const env = await run(['top', '--once', '--json', '--interval', '200ms', '--master', tlsMaster.address, '--http', tlsMaster.httpAddress!], {
    env: {MOONCAKE_TLS_CA: caPath},
  })
  assert.is(env.code, 0, env.stderr)
  assert.is(snapshot(env.stdout).capacity, 1 << 20)
  // Without --json the segments are the table of `segment ls`.
  const human = await run(['top', '--once', '--interval', '200ms', '--master', tlsMaster.address, '--http', tlsMaster.httpAddress!, '--tls-ca', caPath])
  assert.is(human.code, 0, human.stderr)
  assert.match(human.stdout, /^NAME +ENDPOINT +CAPACITY +USED +STATUS +LAST PING\ntls-top-seg +\S+ +1\.00 MiB +0 B +OK /m)
})

test('a malformed --http is a usage error at once (exit 2), not retried until --timeout', async () => {
  const r = await run(['top', '--once', '--master', tlsMaster.address, '--http', '127.0.0.1:99999', '--timeout', '20s'])
  assert.is(r.code, 2, r.stderr)
  assert.match(r.stderr, /^mooncake: INVALID_PARAMS: not a HOST:PORT: 127\.0\.0\.1:99999$/m)
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`)
})

test('TLS master: plain http exits 5 within --timeout and says to pass --tls-ca; another CA exits 5 naming the certificate', async () => {
  const plain = await top(tlsMaster, '--timeout', '3s')
  assert.is(plain.code, 5, plain.stderr)
  assert.match(plain.stderr, /^mooncake: UNAVAILABLE: .*--tls-ca/m)
  assert.ok(plain.ms < 10_000, `took ${plain.ms} ms`)
  assert.is((JSON.parse(plain.stdout) as {error: {code: string}}).error.code, 'UNAVAILABLE')
  const wrong = await top(tlsMaster, '--timeout', '3s', '--tls-ca', otherCaPath)
  assert.is(wrong.code, 5, wrong.stderr)
  assert.match(wrong.stderr, /^mooncake: UNAVAILABLE: .*certificate did not verify.*--tls-ca/m)
  assert.ok(wrong.ms < 10_000, `took ${wrong.ms} ms`)
})

test('mTLS master: with a client certificate signed by its CA top works', async () => {
  const r = await top(mtlsMaster, '--tls-ca', caPath, '--tls-cert', client.cert, '--tls-key', client.key)
  assert.is(r.code, 0, r.stderr)
  const snap = snapshot(r.stdout)
  assert.equal(
    snap.segments.map((s) => s.name),
    ['mtls-top-seg'],
  )
  assert.is(snap.capacity, 1 << 20)
})

test('mTLS master: no client certificate, or one from another CA, exits 6 (UNAUTHENTICATED) at once', async () => {
  // --timeout 20s: a refused certificate must not be retried until the deadline.
  const none = await top(mtlsMaster, '--timeout', '20s', '--tls-ca', caPath)
  assert.is(none.code, 6, none.stderr)
  assert.match(none.stderr, /^mooncake: UNAUTHENTICATED: .*none presented.*--tls-cert/m)
  assert.ok(none.ms < 10_000, `took ${none.ms} ms`)
  const foreign = await top(mtlsMaster, '--timeout', '20s', '--tls-ca', caPath, '--tls-cert', stranger.cert, '--tls-key', stranger.key)
  assert.is(foreign.code, 6, foreign.stderr)
  assert.match(foreign.stderr, /^mooncake: UNAUTHENTICATED: .*did not verify/m)
  assert.ok(foreign.ms < 10_000, `took ${foreign.ms} ms`)
})

test.run()
