// TLS on the master's ports (--tls-cert / --tls-key / --tls-ca): a throwaway CA and server
// certificate made with openssl; a client with the CA works (connectMaster and the CLI with
// MOONCAKE_TLS_CA), a plaintext client or one trusting another CA fails with UNAVAILABLE, /health
// answers over https, doctor checks it with --tls-ca, and TLS alone does not allow a non-loopback
// bind without a token.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {masterTls} from '../../src/lib/config.js'
import {isMooncakeError} from '../../src/lib/errors.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {run} from '../cli/helpers.js'
import {rejects, segment} from './master-grpc-helpers.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-tls-'))
const f = (name: string) => path.join(dir, name)
const openssl = (...args: string[]) => execFileSync('openssl', args, {cwd: dir, stdio: ['ignore', 'pipe', 'pipe']})

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj', `/CN=${name}`)
}
makeCa('ca')
makeCa('other-ca')
writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n')
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1')
openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('server.ext'))

let master: RunningMaster

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: 0, tls: masterTls({tlsCert: f('server.pem'), tlsKey: f('server.key')})})
})

test.after(async () => {
  await master?.close()
  rmSync(dir, {recursive: true, force: true})
})

test('a client trusting the CA works (metadata put/get through connectMaster)', async () => {
  const client = await connectMaster({address: master.address, tls: {ca: readFileSync(f('ca.pem'))}})
  try {
    await client.mountSegment({clientId: 'c', segment: segment('tls-seg')})
    const started = await client.putStart({clientId: 'c', requestId: 'r', key: 'k', size: 10})
    assert.is(started.replicas.length, 1)
    await client.putEnd({clientId: 'c', key: 'k'})
    const list = await client.getReplicaList('k')
    assert.is(list.replicas.length, 1)
    const keys: string[] = []
    for await (const k of client.getAllKeys()) keys.push(k)
    assert.equal(keys, ['k'])
  } finally {
    client.close()
  }
})

test('a plaintext client fails with UNAVAILABLE; so does one trusting another CA', async () => {
  const plain = await rejects(connectMaster({address: master.address, connectTimeoutMs: 2_000}), 'UNAVAILABLE')
  assert.match(plain.message, master.address)
  const wrong = await rejects(connectMaster({address: master.address, connectTimeoutMs: 2_000, tls: {ca: readFileSync(f('other-ca.pem'))}}), 'UNAVAILABLE')
  assert.match(wrong.message, master.address)
})

test('/health over https, verified with the CA', async () => {
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get(`https://${master.httpAddress}/health`, {ca: readFileSync(f('ca.pem'))}, (res) => {
        let data = ''
        res.on('data', (d) => (data += d))
        res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`status ${res.statusCode}`))))
      })
      .on('error', reject)
  })
  assert.match(body, /"status"/)
})

test('CLI: segment ls --json with MOONCAKE_TLS_CA works; without it exit 5 (UNAVAILABLE)', async () => {
  const ok = await run(['segment', 'ls', '--json', '--master', master.address], {env: {MOONCAKE_TLS_CA: f('ca.pem')}})
  assert.is(ok.code, 0, ok.stderr)
  const doc = JSON.parse(ok.stdout) as unknown
  assert.match(JSON.stringify(doc), 'tls-seg')
  const plain = await run(['segment', 'ls', '--json', '--master', master.address, '--timeout', '3s'])
  assert.is(plain.code, 5, plain.stderr)
  assert.match(plain.stderr, /mooncake: (UNAVAILABLE|DEADLINE_EXCEEDED)/)
  const missing = await run(['segment', 'ls', '--master', master.address, '--tls-ca', f('nope.pem')])
  assert.is(missing.code, 2, missing.stderr)
  assert.match(missing.stderr, '--tls-ca')
})

test('doctor with --tls-ca checks the TLS master (gRPC and https /health); without it says to pass --tls-ca', async () => {
  const doctor = async (...extra: string[]) => {
    const r = await run(['doctor', '--json', '--master', master.address, '--http', master.httpAddress!, '--probe-timeout', '3s', ...extra])
    const checks = (JSON.parse(r.stdout) as {checks: Array<{name: string; ok: boolean; detail: string; fix: string}>}).checks
    return {...r, check: (name: string) => checks.find((c) => c.name === name)!}
  }
  const good = await doctor('--tls-ca', f('ca.pem'))
  for (const name of ['master', 'version', 'master-http', 'clock']) assert.ok(good.check(name).ok, `${name}: ${good.check(name).detail}`)
  assert.match(good.check('master-http').detail, /\/health: ok/)
  const plain = await doctor()
  assert.is(plain.code, 1)
  assert.not.ok(plain.check('master').ok)
  assert.match(plain.check('master').fix, '--tls-ca')
  assert.not.ok(plain.check('master-http').ok)
  assert.match(plain.check('master-http').fix, '--tls-ca')
  const wrong = await doctor('--tls-ca', f('other-ca.pem'))
  assert.not.ok(wrong.check('master').ok)
  assert.not.ok(wrong.check('master-http').ok)
  assert.match(wrong.check('master-http').detail, /certificate/i)
})

test('TLS without a token still refuses a non-loopback bind (unless insecure)', async () => {
  let err: unknown
  try {
    await startMasterServer({host: '0.0.0.0', port: 0, metricsPort: -1, tls: masterTls({tlsCert: f('server.pem'), tlsKey: f('server.key')})})
  } catch (e) {
    err = e
  }
  assert.ok(isMooncakeError(err, 'INVALID_PARAMS'), String(err))
  assert.match((err as Error).message, 'authenticates nobody')
})

test.run()
