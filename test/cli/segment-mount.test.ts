/** `mooncake segment mount`: ready line, unmount on SIGINT/SIGTERM, and exit 0 when an operator unmounts it. */
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {addressFromReady, cleanup, run, startServer, type Server} from './helpers.js'

let address: string

test.before(async () => {
  const master = await startServer(['master', '--port', '0', '--metrics-port', '0'], {readyTimeoutMs: 30_000})
  address = addressFromReady(master.ready)
})
test.after(cleanup)

const mount = (...args: string[]): Promise<Server> =>
  startServer(['segment', 'mount', '--master', address, ...args], {readyTimeoutMs: 30_000})

async function segmentNames(): Promise<string[]> {
  const r = await run(['segment', 'ls', '--json', '--master', address])
  assert.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout).segments.map((s: {name: string}) => s.name)
}

test('ready line: `ready segment NAME SIZE bytes at HOST:PORT`; the default name is the endpoint', async () => {
  const seg = await mount('--size', '8MiB')
  const match = /^ready segment (\S+) 8388608 bytes at (127\.0\.0\.1:\d+)$/.exec(seg.ready)
  assert.ok(match, seg.ready)
  assert.is(match![1], match![2])
  assert.ok((await segmentNames()).includes(match![1]))
  seg.child.kill('SIGINT')
  const exit = await seg.exited
  assert.is(exit.code, 0, seg.stderr())
  assert.not.ok((await segmentNames()).includes(match![1]), 'SIGINT unmounted it')
})

test('--json ready object; SIGTERM unmounts and exits 0', async () => {
  const seg = await mount('--size', '4MiB', '--name', 'seg-json', '--json')
  const ready = JSON.parse(seg.ready)
  assert.equal(ready, {ready: true, role: 'segment', name: 'seg-json', size: 4 * 2 ** 20, endpoint: ready.endpoint, master: address})
  assert.match(ready.endpoint, /^127\.0\.0\.1:\d+$/)
  seg.child.kill('SIGTERM')
  const exit = await seg.exited
  assert.is(exit.code, 0, seg.stderr())
  assert.not.ok((await segmentNames()).includes('seg-json'))
})

test('--metrics-port serves the owner\'s metrics: pings, and the bytes it served over TCP', async () => {
  const {mkdtempSync, rmSync, writeFileSync} = await import('node:fs')
  const {tmpdir} = await import('node:os')
  const path = await import('node:path')
  const {parsePrometheusText} = await import('../../src/lib/metrics/parse.js')
  const seg = await mount('--size', '16MiB', '--name', 'seg-metrics', '--metrics-port', '0', '--json')
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-seg-metrics-'))
  try {
    const ready = JSON.parse(seg.ready) as {metricsAddress: string}
    assert.match(ready.metricsAddress, /^127\.0\.0\.1:\d+$/)
    const scrape = async () => parsePrometheusText(await (await fetch(`http://${ready.metricsAddress}/metrics`)).text())
    const size = 3 * 2 ** 20 + 1
    const file = path.join(dir, 'v.bin')
    writeFileSync(file, Buffer.alloc(size, 7))
    const put = await run(['put', 'metrics/v', file, '--preferred-segment', 'seg-metrics', '--transport', 'tcp', '--master', address])
    assert.is(put.code, 0, put.stderr)
    const get = await run(['get', 'metrics/v', path.join(dir, 'back.bin'), '--transport', 'tcp', '--master', address])
    assert.is(get.code, 0, get.stderr)
    const m = await scrape()
    const written = m.get('mooncake_segment_served_bytes_total', {direction: 'write'}) ?? 0
    const read = m.get('mooncake_segment_served_bytes_total', {direction: 'read'}) ?? 0
    assert.ok(written >= size && written < size + 64 * 1024, `written ${written}`)
    assert.ok(read >= size && read < size + 64 * 1024, `read ${read}`)
    // Pings every second (the first one may not have been answered yet): the first one after the
    // mount asks for a re-mount, the next ones are OK.
    let ok = 0
    let pings = m
    for (let i = 0; i < 100 && ok < 1; i++) {
      pings = await scrape()
      ok = pings.get('mooncake_segment_pings_total', {result: 'OK'}) ?? 0
      if (ok < 1) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.ok(ok >= 1, 'an OK ping is counted')
    assert.is(pings.all('mooncake_segment_pings_total')[0]!.labels.role, 'segment')
  } finally {
    rmSync(dir, {recursive: true, force: true})
    seg.child.kill('SIGTERM')
    assert.is((await seg.exited).code, 0, seg.stderr())
  }
})

test('`segment unmount NAME` by an operator makes the mount process exit 0', async () => {
  const seg = await mount('--size', '4MiB', '--name', 'seg-op')
  const started = Date.now()
  const r = await run(['segment', 'unmount', 'seg-op', '--master', address])
  assert.is(r.code, 0, r.stderr)
  const exit = await seg.exited
  assert.is(exit.code, 0, seg.stderr())
  assert.ok(Date.now() - started < 15_000, `exited after ${Date.now() - started} ms`)
  assert.match(seg.stderr(), /unmounted by an operator/)
})

test('the master logs a segment dropped because its owner went silent (SIGKILL, past --client-ttl)', async () => {
  const master = await startServer(['master', '--port', '0', '--metrics-port', '0', '--client-ttl', '1s'], {readyTimeoutMs: 30_000})
  const seg = await startServer(['segment', 'mount', '--master', addressFromReady(master.ready), '--size', '4MiB', '--name', 'seg-silent'], {readyTimeoutMs: 30_000})
  seg.child.kill('SIGKILL')
  await seg.exited
  const deadline = Date.now() + 15_000
  while (!/segment "seg-silent" unmounted/.test(master.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  assert.match(master.stderr(), / WARN +client \S+ sent no ping for \d+ ms \(client TTL 1000 ms\): segment "seg-silent" unmounted, their replicas dropped/)
  master.child.kill('SIGTERM')
  assert.is((await master.exited).code, 0)
})

test('a name held by another live owner: SEGMENT_ALREADY_EXISTS, exit 1', async () => {
  const seg = await mount('--size', '4MiB', '--name', 'seg-dup')
  try {
    const second = await run(['segment', 'mount', '--size', '4MiB', '--name', 'seg-dup', '--master', address])
    assert.is(second.code, 1, second.stderr)
    assert.match(second.stderr, /mooncake: SEGMENT_ALREADY_EXISTS: /)
  } finally {
    seg.child.kill('SIGTERM')
    await seg.exited
  }
})

test('usage errors exit 2; an unreachable master exits 5 within --timeout', async () => {
  const [missing, small, bad, dead] = await Promise.all([
    run(['segment', 'mount', '--master', address]),
    run(['segment', 'mount', '--size', '1000', '--master', address]),
    run(['segment', 'mount', '--size', 'big', '--master', address]),
    run(['segment', 'mount', '--size', '4MiB', '--master', '127.0.0.1:1', '--timeout', '1500ms']),
  ])
  for (const r of [missing, small, bad]) {
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, /^mooncake: USAGE: /)
  }
  assert.is(dead.code, 5, dead.stderr)
  assert.ok(dead.ms < 1500 + 5000, `took ${dead.ms} ms`)
})

test.run()
