/** @jsxRuntime automatic */
/** @jsxImportSource react */
// The ink dashboard of `mooncake top`, rendered with ink-testing-library: header, memory bar,
// segment rows, pause, sort, filter and the help overlay.
import {render} from 'ink-testing-library'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {parsePrometheusText} from '../../src/lib/metrics/parse.js'
import {TopApp} from '../../src/lib/top/app.js'
import type {TopSample} from '../../src/lib/top/model.js'

function sample(at: number, put: number, pingAgo = 400): TopSample {
  const seg = (name: string, endpoint: string, used: number, ago: number) => ({
    name,
    id: `id-${name}`,
    clientId: `c-${name}`,
    endpoints: [endpoint],
    hostId: 'h',
    capacity: 1 << 20,
    used,
    status: 'OK' as const,
    lastPingAt: at - ago,
    fragmentation: 0,
  })
  return {
    at,
    health: {status: 'ok', role: 'leader', leader: '127.0.0.1:50051', ready: true, version: '0.1.0', uptime: 192, time: at, viewVersion: 1},
    segments: {now: at, clientTtlMs: 10_000, segments: [seg('seg-alpha', '10.0.0.1:7001', 1 << 19, pingAgo), seg('seg-beta', '10.0.0.2:7002', 1 << 18, 300)]},
    metrics: parsePrometheusText(
      [
        'master_total_capacity_bytes 2097152',
        'master_allocated_bytes 786432',
        'master_key_count 42',
        'master_soft_pin_key_count 3',
        'master_active_clients 2',
        `master_put_start_requests_total ${put}`,
        'master_put_start_failures_total 0',
      ].join('\n'),
    ),
  }
}

/** A poll that returns samples one second apart with 50 more puts each. */
function fakePoll(pingAgo = 400) {
  let n = 0
  const calls = {count: 0}
  const poll = async () => {
    calls.count += 1
    n += 1
    return sample(1_000_000 + n * 1000, n * 50, pingAgo)
  }
  return {poll, calls}
}

let current: ReturnType<typeof render> | undefined
const lastSeen = () => current?.lastFrame() ?? '(none)'

async function until(check: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last frame:\n${lastSeen()}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const frame = (app: ReturnType<typeof render>) => {
  current = app
  return app.lastFrame() ?? ''
}

test('header, memory bar, keys and segment rows', async () => {
  const {poll} = fakePoll()
  const app = render(<TopApp master="127.0.0.1:50051" intervalMs={30} poll={poll} />)
  try {
    await until(() => frame(app).includes('seg-beta') && /put \S*\s+50 /.test(frame(app)), 'two samples')
    const f = frame(app)
    assert.match(f, /mooncake top/)
    assert.match(f, /master 127\.0\.0\.1:50051 \(leader\)/)
    assert.match(f, /up 3m12s/)
    assert.match(f, /⟳ 30ms/)
    assert.match(f, /MEM\s+\[█+░+\]\s+37\.5%\s+768 KiB \/ 2\.00 MiB/)
    assert.match(f, /keys 42\s+soft-pinned 3\s+clients 2/)
    assert.match(f, /SEGMENT\s+ENDPOINT\s+SIZE\s+USED\s+STATUS\s+LAST PING/)
    assert.match(f, /seg-alpha\s+10\.0\.0\.1:7001\s+1\.00 MiB \[█████░░░░░\]\s+50\.0% OK\s+0\.4s/)
    assert.match(f, /seg-beta\s+10\.0\.0\.2:7002\s+1\.00 MiB \[███░░░░░░░\]\s+25\.0% OK/)
    // 50 puts per 1 s of sample time.
    assert.match(f, /put \S*\s+50 fail 0\.0%/)
    assert.match(f, /q quit p pause s sort:name/)
  } finally {
    app.unmount()
  }
})

test('a segment whose last ping approaches the client TTL is flagged', async () => {
  const {poll} = fakePoll(8_500)
  const app = render(<TopApp master="m:1" intervalMs={1000} poll={poll} />)
  try {
    await until(() => frame(app).includes('seg-alpha'), 'a sample')
    assert.match(frame(app), /seg-alpha.*8\.5s ! ttl 10\.0s/)
    assert.not.match(frame(app), /seg-beta.*! ttl/)
  } finally {
    app.unmount()
  }
})

test('? shows the help overlay instead of the table; ? or Esc closes it', async () => {
  const {poll} = fakePoll()
  const app = render(<TopApp master="m:1" intervalMs={1000} poll={poll} />)
  try {
    await until(() => frame(app).includes('seg-alpha'), 'a sample')
    app.stdin.write('?')
    await until(() => frame(app).includes('toggle this help'), 'help')
    const f = frame(app)
    assert.match(f, /q, Ctrl-C\s+quit/)
    assert.match(f, /p, space\s+pause/)
    assert.match(f, /\/\s+filter segments/)
    assert.not.match(f, /seg-alpha/)
    app.stdin.write('\u001b')
    await until(() => frame(app).includes('seg-alpha'), 'table back after Esc')
    app.stdin.write('?')
    await until(() => frame(app).includes('toggle this help'), 'help again')
    app.stdin.write('?')
    await until(() => !frame(app).includes('toggle this help'), 'help closed by ?')
  } finally {
    app.unmount()
  }
})

test('/ filters rows; Esc clears; s sorts; r reverses', async () => {
  const {poll} = fakePoll()
  const app = render(<TopApp master="m:1" intervalMs={1000} poll={poll} />)
  try {
    await until(() => frame(app).includes('seg-beta'), 'a sample')
    app.stdin.write('/')
    await until(() => frame(app).includes('Enter keep, Esc clear'), 'filter prompt')
    for (const ch of 'beta') app.stdin.write(ch)
    await until(() => !frame(app).includes('seg-alpha'), 'filtered')
    assert.match(frame(app), /seg-beta/)
    assert.match(frame(app), /\/beta/)
    app.stdin.write('\r')
    await until(() => frame(app).includes('filter:"beta"'), 'filter kept')
    app.stdin.write('\u001b')
    await until(() => frame(app).includes('seg-alpha'), 'filter cleared')
    const order = () => {
      const f = frame(app)
      return f.indexOf('seg-alpha') < f.indexOf('seg-beta') ? 'alpha-first' : 'beta-first'
    }
    assert.is(order(), 'alpha-first')
    app.stdin.write('r')
    await until(() => order() === 'beta-first', 'reversed')
    app.stdin.write('r')
    app.stdin.write('s') // sort by used: alpha (50 %) before beta (25 %)
    await until(() => frame(app).includes('sort:used'), 'sort by used')
    assert.is(order(), 'alpha-first')
  } finally {
    app.unmount()
  }
})

test('p pauses polling and shows it; p resumes', async () => {
  const {poll, calls} = fakePoll()
  const app = render(<TopApp master="m:1" intervalMs={20} poll={poll} />)
  try {
    await until(() => calls.count >= 2, 'polling')
    app.stdin.write('p')
    await until(() => frame(app).includes('[PAUSED]'), 'paused')
    await new Promise((r) => setTimeout(r, 60)) // a poll already in flight may still land
    const paused = calls.count
    await new Promise((r) => setTimeout(r, 150))
    assert.is(calls.count, paused, 'no polls while paused')
    app.stdin.write('p')
    await until(() => calls.count > paused && !frame(app).includes('[PAUSED]'), 'resumed')
  } finally {
    app.unmount()
  }
})

test('an unreachable master is shown and retried; q calls onQuit', async () => {
  let fail = true
  let quit = 0
  const poll = async () => {
    if (fail) throw new Error('connect ECONNREFUSED')
    return sample(Date.now(), 1)
  }
  const app = render(<TopApp master="m:1" intervalMs={20} poll={poll} onQuit={() => quit++} />)
  try {
    await until(() => frame(app).includes('master not reachable: connect ECONNREFUSED'), 'error shown')
    fail = false
    await until(() => frame(app).includes('seg-alpha'), 'recovered')
    app.stdin.write('q')
    await until(() => quit === 1, 'quit')
  } finally {
    app.unmount()
  }
})

test.run()
