/** `mooncake up`: a master and a segment in one process, serving put/get end to end. */
import {spawn} from 'node:child_process'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {BIN, cleanEnv, cleanup, lines, ROOT, run, startServer, type Server} from './helpers.js'

let up: Server
let address: string

test.before(async () => {
  up = await startServer(['up', '--size', '64MiB', '--port', '0', '--metrics-port', '0'], {readyTimeoutMs: 30_000})
})
test.after(cleanup)

test('up prints one ready line: the address, the segment and an example', async () => {
  const match = /^ready up (127\.0\.0\.1:\d+) \(segment (127\.0\.0\.1:\d+), 67108864 bytes\); try: echo hello \| mooncake put greeting - --master (\S+)$/.exec(up.ready)
  assert.ok(match, up.ready)
  address = match![1]
  assert.is(match![3], address, 'the example names the port it picked')
})

test('up serves put and get end to end (the example of its ready line works)', async () => {
  const child = spawn('sh', ['-c', `echo hello | "${process.execPath}" "${BIN}" put greeting - --master ${address}`], {cwd: ROOT, env: cleanEnv(), stdio: 'ignore'})
  const code = await new Promise((resolve) => child.on('close', resolve))
  assert.is(code, 0)
  const get = await run(['get', 'greeting', '-', '--master', address])
  assert.is(get.code, 0, get.stderr)
  assert.is(get.stdout, 'hello\n')
  const segs = await run(['segment', 'ls', '--json', '--master', address])
  const {segments} = JSON.parse(segs.stdout)
  assert.is(segments.length, 1)
  assert.is(segments[0].capacity, 64 * 2 ** 20)
})

test('up --json prints a JSON ready object', async () => {
  const other = await startServer(['up', '--size', '16MiB', '--port', '0', '--metrics-port', '0', '--json'], {readyTimeoutMs: 30_000})
  const ready = JSON.parse(other.ready)
  assert.equal(Object.keys(ready), ['ready', 'role', 'address', 'httpAddress', 'segment'])
  assert.is(ready.ready, true)
  assert.is(ready.role, 'up')
  assert.match(ready.address, /^127\.0\.0\.1:\d+$/)
  assert.match(ready.httpAddress, /^127\.0\.0\.1:\d+$/)
  assert.is(ready.segment.size, 16 * 2 ** 20)
  assert.match(ready.segment.endpoint, /^127\.0\.0\.1:\d+$/)
  // The master's metrics at /metrics, the segment's own at /metrics/segment (pings every second).
  assert.match(await (await fetch(`http://${ready.httpAddress}/metrics`)).text(), /^master_key_count /m)
  let segment = ''
  for (let i = 0; i < 100 && !/^mooncake_segment_pings_total\{[^}]*result="OK"[^}]*\} [1-9]/m.test(segment); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    segment = await (await fetch(`http://${ready.httpAddress}/metrics/segment`)).text()
  }
  assert.match(segment, /^mooncake_segment_pings_total\{[^}]*result="OK"[^}]*\} [1-9]/m)
  assert.match(segment, /^# TYPE mooncake_segment_served_bytes_total counter$/m)
  assert.not.match(segment, /^master_/m)
  other.child.kill('SIGINT')
  const exit = await other.exited
  assert.is(exit.code, 0, other.stderr())
  assert.is(lines(exit.stdout).length, 1)
})

test('up: a bad --size is a usage error (exit 2)', async () => {
  const [bad, small] = await Promise.all([
    run(['up', '--size', 'huge', '--port', '0', '--metrics-port', '0']),
    run(['up', '--size', '1KiB', '--port', '0', '--metrics-port', '0']),
  ])
  for (const r of [bad, small]) {
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, /^mooncake: USAGE: /)
  }
})

test('SIGTERM: up unmounts, stops and exits 0; the port is closed', async () => {
  up.child.kill('SIGTERM')
  const exit = await up.exited
  assert.is(exit.code, 0, up.stderr())
  const after = await run(['exists', 'greeting', '--master', address, '--timeout', '1500ms'])
  assert.is(after.code, 5)
})

test.run()
