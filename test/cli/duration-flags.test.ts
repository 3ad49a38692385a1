// A command's own DURATION flags (not settings) reject a bad value the same way: exit 2,
// INVALID_PARAMS, one stderr line naming the flag, and nothing contacted first.
import net from 'node:net'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {cleanup, lines, run, SANDBOX} from './helpers.js'

// Stands in for etcd and counts connections: a bad flag must be rejected before any is made.
let connections = 0
const fakeEtcd = net.createServer((socket) => {
  connections++
  socket.destroy()
})
let etcd = ''

test.before(async () => {
  await new Promise<void>((resolve) => fakeEtcd.listen(0, '127.0.0.1', resolve))
  etcd = `127.0.0.1:${(fakeEtcd.address() as net.AddressInfo).port}`
})

test.after(async () => {
  cleanup()
  await new Promise<void>((resolve) => fakeEtcd.close(() => resolve()))
})

const file = path.join(SANDBOX, 'payload.bin')

const cases: {flag: string; args: () => string[]}[] = [
  {flag: 'stall-timeout', args: () => ['p2p', 'get', 'ckpt', path.join(SANDBOX, 'out'), '--etcd', etcd]},
  {flag: 'lease-ttl', args: () => ['p2p', 'get', 'ckpt', path.join(SANDBOX, 'out'), '--etcd', etcd]},
  {flag: 'lease-ttl', args: () => ['p2p', 'register', 'ckpt', file, '--etcd', etcd]},
  {flag: 'probe-timeout', args: () => ['doctor', '--master', etcd]},
  {flag: 'interval', args: () => ['top', '--once', '--master', etcd]},
]

for (const c of cases) {
  const command = c.args().slice(0, c.args()[0] === 'p2p' ? 2 : 1).join(' ')
  test(`${command} --${c.flag} bogus: exit 2, INVALID_PARAMS naming --${c.flag}, nothing contacted`, async () => {
    const before = connections
    const r = await run([...c.args(), `--${c.flag}`, 'bogus', '--timeout', '5s'])
    assert.is(r.code, 2, r.stderr)
    assert.is(r.stdout, '')
    assert.equal(lines(r.stderr), [
      `mooncake: INVALID_PARAMS: --${c.flag}: bad duration "bogus": use a number with ms, s, m or h, e.g. 500ms, 10s, 30m`,
    ])
    assert.is(connections, before, 'a connection was made before the flag was checked')
  })
}

test('--json: the same error as {"error":{"code","message"}} on stdout', async () => {
  const r = await run(['p2p', 'get', 'ckpt', path.join(SANDBOX, 'out'), '--etcd', etcd, '--stall-timeout', '5 fortnights', '--json'])
  assert.is(r.code, 2, r.stderr)
  const doc = JSON.parse(r.stdout) as {error: {code: string; message: string}}
  assert.is(doc.error.code, 'INVALID_PARAMS')
  assert.match(doc.error.message, /^--stall-timeout: bad duration "5 fortnights"/)
})

test.run()
