import {mkdirSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {addressFromReady, cleanup, lines, run, SANDBOX, startServer, type Server} from './helpers.js'

let master: Server
let address: string

test.before(async () => {
  master = await startServer(['master', '--port', '0', '--metrics-port', '0', '--lease-ttl', '500ms'])
  address = addressFromReady(master.ready)
})
test.after(cleanup)

test('master prints one ready line with the ports it picked', async () => {
  assert.match(master.ready, /^ready master 127\.0\.0\.1:\d+ \(http 127\.0\.0\.1:\d+\)$/)
  assert.is.not(address, '127.0.0.1:0')
  // stderr is another pipe: the log line may trail the ready line a little.
  for (let i = 0; i < 50 && !master.stderr().includes('INFO'); i++) await new Promise((r) => setTimeout(r, 20))
  assert.match(master.stderr(), 'INFO', 'servers log at info on stderr')
})

test('segment ls --json against it: {"segments":[]}', async () => {
  const r = await run(['segment', 'ls', '--json', '--master', address])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, '{"segments":[]}\n')
  assert.is(r.stderr, '')
})

test('segment ls without --json prints nothing on stdout when empty, a notice on stderr', async () => {
  const [r, quiet] = await Promise.all([
    run(['segment', 'ls', '--master', address]),
    run(['segment', 'ls', '--master', address, '--quiet']),
  ])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, '')
  assert.match(r.stderr, 'no segments')
  assert.is(quiet.stderr, '')
})

test('segment unmount of an unknown name: exit 3, SEGMENT_NOT_FOUND', async () => {
  const [r, json] = await Promise.all([
    run(['segment', 'unmount', 'nosuch', '--master', address]),
    run(['segment', 'unmount', 'nosuch', '--drain', '--json', '--master', address]),
  ])
  assert.is(r.code, 3, r.stderr)
  assert.is(r.stdout, '')
  assert.equal(lines(r.stderr).length, 1)
  assert.match(r.stderr, /^mooncake: SEGMENT_NOT_FOUND: /)
  assert.is(json.code, 3)
  assert.is(JSON.parse(json.stdout).error.code, 'SEGMENT_NOT_FOUND')
})

test('segment ls shows a mounted segment; segment unmount removes it', async () => {
  // Mount through the library (metadata only): `segment mount` is not a CLI command yet.
  const {connectMaster} = await import('../../src/lib/client/master-client.js')
  const client = await connectMaster({address, timeoutMs: 5000})
  try {
    await client.mountSegment({
      clientId: 'cli-test-owner',
      segment: {id: 'seg-id-1', name: 'seg1', endpoints: ['127.0.0.1:45678'], size: 64 * 2 ** 20, hostId: 'host-a'},
    })
    const [json, table] = await Promise.all([
      run(['segment', 'ls', '--json', '--master', address]),
      run(['segment', 'ls', '--master', address]),
    ])
    assert.is(json.code, 0, json.stderr)
    const {segments} = JSON.parse(json.stdout)
    assert.is(segments.length, 1)
    const [seg] = segments
    assert.equal(Object.keys(seg), ['name', 'endpoint', 'capacity', 'used', 'status', 'lastPingMs'])
    assert.is(seg.name, 'seg1')
    assert.is(seg.endpoint, '127.0.0.1:45678')
    assert.is(seg.capacity, 64 * 2 ** 20)
    assert.is(seg.used, 0)
    assert.is(seg.status, 'OK')
    assert.type(seg.lastPingMs, 'number')
    assert.ok(seg.lastPingMs >= 0 && seg.lastPingMs < 10_000)

    assert.is(table.code, 0, table.stderr)
    const [header, row] = lines(table.stdout)
    assert.match(header, /^NAME\s+ENDPOINT\s+CAPACITY\s+USED\s+STATUS\s+LAST PING$/)
    assert.match(row, /^seg1\s+127\.0\.0\.1:45678\s+64\.0 MiB\s+0 B\s+OK\s+\S+ ago$/)

    const unmount = await run(['segment', 'unmount', 'seg1', '--json', '--master', address])
    assert.is(unmount.code, 0, unmount.stderr)
    assert.is(unmount.stdout, '{"name":"seg1","unmounted":true}\n')
    const after = await run(['segment', 'ls', '--json', '--master', address])
    assert.equal(JSON.parse(after.stdout), {segments: []})
  } finally {
    client.close()
  }
})

test('MOONCAKE_MASTER points commands at the master; a flag beats it', async () => {
  const [env, flag] = await Promise.all([
    run(['segment', 'ls', '--json'], {env: {MOONCAKE_MASTER: address}}),
    run(['segment', 'ls', '--json', '--master', '127.0.0.1:1', '--timeout', '2s'], {env: {MOONCAKE_MASTER: address}}),
  ])
  assert.is(env.code, 0, env.stderr)
  assert.equal(JSON.parse(env.stdout), {segments: []})
  assert.is(flag.code, 5, 'the flag won, and nothing listens there')
})

test('a config-file profile supplies the master; the environment beats it', async () => {
  const file = path.join(SANDBOX, 'config.yaml')
  writeFileSync(file, `timeout: 5s\nprofiles:\n  live:\n    master: ${address}\n  dead:\n    master: 127.0.0.1:1\n`)
  const [live, viaEnv, dead, envWins] = await Promise.all([
    run(['segment', 'ls', '--json', '--config', file, '--profile', 'live']),
    run(['segment', 'ls', '--json'], {env: {MOONCAKE_CONFIG: file, MOONCAKE_PROFILE: 'live'}}),
    run(['segment', 'ls', '--json', '--config', file, '--profile', 'dead']),
    run(['segment', 'ls', '--json', '--config', file, '--profile', 'dead'], {env: {MOONCAKE_MASTER: address}}),
  ])
  assert.is(live.code, 0, live.stderr)
  assert.equal(JSON.parse(live.stdout), {segments: []})
  assert.is(viaEnv.code, 0, viaEnv.stderr)
  assert.is(dead.code, 5, 'the profile names a dead master')
  assert.is(envWins.code, 0, envWins.stderr)
  // The default config path is read as well.
  const dir = path.join(SANDBOX, '.config', 'mooncake')
  mkdirSync(dir, {recursive: true})
  writeFileSync(path.join(dir, 'config.yaml'), `master: ${address}\n`)
  try {
    const implicit = await run(['segment', 'ls', '--json'])
    assert.is(implicit.code, 0, implicit.stderr)
  } finally {
    rmSync(dir, {recursive: true})
  }
})

test('master --json prints one JSON ready object; a second master on the same port is refused', async () => {
  const port = address.split(':')[1]
  const second = await run(['master', '--port', port, '--metrics-port', '0'], {killAfterMs: 10_000})
  assert.is(second.code, 2, second.stderr)
  assert.equal(lines(second.stderr).length, 1, second.stderr)
  assert.match(second.stderr, /^mooncake: INVALID_PARAMS: .*in use/)
  const json = await startServer(['master', '--port', '0', '--metrics-port', '0', '--json'])
  const ready = JSON.parse(json.ready)
  assert.is(ready.ready, true)
  assert.is(ready.role, 'master')
  assert.match(ready.address, /^127\.0\.0\.1:\d+$/)
  assert.match(ready.httpAddress, /^127\.0\.0\.1:\d+$/)
  json.child.kill('SIGINT')
  const exit = await json.exited
  assert.is(exit.code, 0)
  assert.is(lines(exit.stdout).length, 1, 'nothing after the ready object')
})

test('SIGTERM stops the master cleanly and promptly: exit 0', async () => {
  const started = Date.now()
  master.child.kill('SIGTERM')
  const exit = await master.exited
  assert.is(exit.code, 0, master.stderr())
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
  const after = await run(['segment', 'ls', '--master', address, '--timeout', '1s'])
  assert.is(after.code, 5, 'the port is closed')
})

test.run()
