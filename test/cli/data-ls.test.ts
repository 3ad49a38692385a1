/**
 * `mooncake ls` streams: many keys (seeded through the library), a reader that stops early
 * (`| head`), and --json written incrementally.
 */
import {spawn} from 'node:child_process'
import {once} from 'node:events'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {runIntoHead} from './early-reader.js'
import {addressFromReady, BIN, cleanEnv, cleanup, lines, ROOT, run, startServer} from './helpers.js'

let address: string
let client: MooncakeClient
const COUNT = 6000
// Long keys, so the listing (about 400 KB) is far more than a pipe holds.
const keyOf = (i: number): string => `stream/${String(i).padStart(6, '0')}/${'x'.repeat(48)}`

test.before(async () => {
  const master = await startServer(['master', '--port', '0', '--metrics-port', '0'], {readyTimeoutMs: 30_000})
  address = addressFromReady(master.ready)
  await startServer(['segment', 'mount', '--size', '64MiB', '--master', address], {readyTimeoutMs: 30_000})
  client = await MooncakeClient.connect({masterAddress: address, timeoutMs: 60_000})
  for (let i = 0; i < COUNT; i += 500) {
    const items = Array.from({length: Math.min(500, COUNT - i)}, (_, j) => ({key: keyOf(i + j), value: Buffer.of(1)}))
    const results = await client.batchPut(items)
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.find((r) => !r.ok)))
  }
  await client.put('other', Buffer.of(2))
})
test.after(async () => {
  await client?.close()
  cleanup()
})

test('ls lists every key once; --count and --json agree', async () => {
  const [plain, count, arr] = await Promise.all([
    run(['ls', '--master', address], {killAfterMs: 60_000}),
    run(['ls', '--count', '--json', '--master', address], {killAfterMs: 60_000}),
    run(['ls', '--prefix', 'stream/', '--json', '--master', address], {killAfterMs: 60_000}),
  ])
  for (const r of [plain, count, arr]) assert.is(r.code, 0, r.stderr)
  const keys = lines(plain.stdout)
  assert.is(keys.length, COUNT + 1)
  assert.is(new Set(keys).size, COUNT + 1)
  assert.is(count.stdout, `{"count":${COUNT + 1}}\n`)
  const listed = JSON.parse(arr.stdout)
  assert.is(listed.length, COUNT)
  assert.equal([...listed].sort(), Array.from({length: COUNT}, (_, i) => keyOf(i)))
})

test('ls --limit and --regex with --prefix', async () => {
  const [limited, regex, none] = await Promise.all([
    run(['ls', '--limit', '10', '--master', address]),
    run(['ls', '--prefix', 'stream/', '--regex', '^stream/00012[0-9]/', '--count', '--master', address]),
    run(['ls', '--regex', '^nothing', '--master', address]),
  ])
  assert.is(lines(limited.stdout).length, 10)
  assert.is(regex.stdout, '10\n')
  assert.is(none.code, 0)
  assert.is(none.stdout, '')
})

test('ls | head -n 3: exits 0 quietly as soon as the reader is gone', async () => {
  for (const extra of [[], ['--json']]) {
    const r = await runIntoHead(['ls', '--master', address, ...extra], 100)
    assert.is(r.status, '0', r.stderr)
    assert.is(r.stderr, '')
  }
})

test('ls --json is written incrementally: the first bytes come before the listing ends', async () => {
  const child = spawn(process.execPath, [BIN, 'ls', '--json', '--master', address], {cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe']})
  let chunks = 0
  let text = ''
  child.stdout.on('data', (d) => {
    chunks++
    text += d
  })
  await once(child, 'close')
  assert.ok(chunks > 1, `the array came in ${chunks} chunk(s)`)
  assert.is(text[0], '[')
  assert.is(JSON.parse(text).length, COUNT + 1)
})

test.run()
