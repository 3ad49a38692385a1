// A long etcd outage under an HA group (docs/operations.md, "How the election and the fencing
// work"; "Durability guarantees"): two masters (lease TTL 2 s) and a data node (segment owner +
// client) in their own processes, a real etcd. etcd is frozen (SIGSTOP, 20 s) and, separately,
// killed and restarted on the same port and data dir. Asserted: no process exits; every master's
// /health keeps answering; the leader stops serving once its keepalive deadline has passed (no
// master claims to lead while etcd is unreachable) and a write sent to it is refused, not
// acknowledged; after etcd returns a leader serves again within a bounded time and every
// acknowledged object reads back with its bytes through the already-connected client.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {isMooncakeError} from '../../src/lib/errors.js'
import {startEtcd, type EtcdServer} from '../helpers/etcd.js'
import {killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'
import {health, type MasterProc, startMaster, waitLeader} from './fixtures/ha-cluster.js'

const TTL = 2_000
const SIZE = 4096
/** After etcd is back, a leader must serve within this (lease expiry + election + backoff, on a loaded machine). */
const RECOVERY_MS = 15_000

let etcd: EtcdServer
let masters: MasterProc[] = []
let node: Fixture
const acked: string[] = []

test.before(async () => {
  etcd = await startEtcd()
  const opts = {etcd: [etcd.endpoint], clusterId: `outage-${process.pid}`, haLeaseTtlMs: TTL, clientTtlMs: 60_000}
  masters = await Promise.all([startMaster(opts), startMaster(opts)])
  await waitLeader(masters, 10_000)
  node = await startFixture('test/integration/fixtures/ha-node.ts', [JSON.stringify({etcd: [etcd.endpoint], clusterId: opts.clusterId, size: 16 * 2 ** 20, pingIntervalMs: 200})], {
    env: {GRPC_NODE_VERBOSITY: 'NONE'},
  })
})

test.after(async () => {
  await killAll()
  // A failed test may leave etcd frozen: SIGTERM alone would not end it.
  etcd?.process.kill('SIGCONT')
  await etcd?.stop()
})

async function putSome(prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = `${prefix}${i}`
    const r = await node.command<{ok: boolean; code?: string; error?: string}>({cmd: 'put', key, size: SIZE, seed: acked.length + 1})
    assert.ok(r.ok, `put ${key}: ${r.code} ${r.error}`)
    acked.push(key)
  }
}

/** Every acknowledged key reads back with its bytes, through the node's long-lived client. */
async function readAll(timeoutMs: number): Promise<void> {
  await waitFor(async () => (await node.command<{ok: boolean}>({cmd: 'get', key: acked[0], size: SIZE, seed: 1}, 25_000)).ok, timeoutMs, `${acked[0]} readable again`, 100)
  for (const [i, key] of acked.entries()) {
    const r = await node.command<{ok: boolean; same: boolean; code?: string; error?: string}>({cmd: 'get', key, size: SIZE, seed: i + 1}, 25_000)
    assert.ok(r.ok, `${key}: ${r.code} ${r.error}`)
    assert.ok(r.same, `${key}: different bytes`)
  }
}

function assertAlive(when: string): void {
  for (const m of masters) assert.is(m.fx.child.exitCode ?? m.fx.child.signalCode, null, `master ${m.address} exited ${when}: ${m.fx.stderr().slice(-2000)}`)
  assert.is(node.child.exitCode ?? node.child.signalCode, null, `the data node exited ${when}: ${node.stderr().slice(-2000)}`)
}

/**
 * Watches the masters for `ms` while etcd is unreachable (since `downAt`): every /health must
 * answer, and from 2x TTL on (the deadline is TTL − margin after the last keepalive answered)
 * none may say it leads. Returns how long the old leader kept claiming to lead.
 */
async function watchOutage(downAt: number, ms: number): Promise<number> {
  let lastLeaderAt = downAt
  while (Date.now() - downAt < ms) {
    const hs = await Promise.all(masters.map((m) => health(m, 2_000)))
    const at = Date.now()
    hs.forEach((h, i) => assert.ok(h !== undefined, `master ${masters[i]!.address} /health did not answer ${at - downAt} ms into the outage`))
    if (hs.some((h) => h?.role === 'leader')) {
      lastLeaderAt = at
      assert.ok(at - downAt < 2 * TTL, `a master still says it leads ${at - downAt} ms after etcd became unreachable`)
    }
    assertAlive(`${at - downAt} ms into the outage`)
    await new Promise((r) => setTimeout(r, 250))
  }
  return lastLeaderAt - downAt
}

/** A call on a master that no longer leads is refused at once, and a write is never acknowledged. */
async function assertRefused(what: string, call: () => Promise<unknown>, withinMs: number): Promise<void> {
  const t0 = Date.now()
  try {
    await call()
  } catch (err) {
    assert.ok(isMooncakeError(err), String(err))
    assert.ok(err.code === 'NOT_LEADER' || err.code === 'UNAVAILABLE', `${what}: ${err.code} ${err.message}`)
    assert.ok(Date.now() - t0 < withinMs, `${what}: refused only after ${Date.now() - t0} ms`)
    return
  }
  assert.unreachable(`${what} was acknowledged while etcd was unreachable`)
}

async function outage(name: string, stop: () => Promise<void>, downMs: number, resume: () => Promise<void>): Promise<void> {
  const leader = await waitLeader(masters, RECOVERY_MS)
  const direct = await connectMaster({address: leader.address, timeoutMs: 3 * TTL, connectTimeoutMs: 3_000, retry: false})
  try {
    await stop()
    const downAt = Date.now()
    let claimed: number
    try {
      // A write sent to the leader as etcd goes away: its log entry cannot commit, so the reply
      // must be a refusal (once the leader steps down), never success.
      const write = assertRefused('a segment mount', () => direct.mountSegment({clientId: `stale-${name}`, segment: {id: `x-${name}`, name: `stale-${name}`, endpoints: ['127.0.0.1:1'], size: 2 ** 20, hostId: 'h'}}), 2 * TTL + 3_000)
      claimed = await watchOutage(downAt, downMs)
      await write
      // Every master, the old leader included, refuses a read at once (NOT_LEADER, naming no
      // leader or a stale one): a client moves on instead of waiting for its deadline.
      for (const m of masters) {
        await assertRefused(`exists on ${m.address}`, async () => {
          const c = m === leader ? direct : await connectMaster({address: m.address, timeoutMs: 3_000, connectTimeoutMs: 3_000, retry: false})
          try {
            await c.existKey(acked[0]!)
          } finally {
            if (c !== direct) c.close()
          }
        }, 3_000)
      }
    } finally {
      // Whatever failed above, etcd must come back for the next test.
      if (etcd.process.exitCode === null && etcd.process.signalCode === null) etcd.process.kill('SIGCONT')
    }
    const upAt = Date.now()
    await resume()
    const next = await waitLeader(masters, RECOVERY_MS)
    const recoveredMs = Date.now() - upAt
    assertAlive('after etcd returned')
    await readAll(RECOVERY_MS)
    process.stderr.write(`[ha-etcd-outage] ${name}: old leader claimed to lead for ${claimed} ms; a leader (${next === leader ? 'the same' : 'the other'}) served ${recoveredMs} ms after etcd returned; ${acked.length} acknowledged objects read back\n`)
  } finally {
    direct.close()
  }
}

test('etcd frozen (SIGSTOP) for 20 s: the leader steps down, nobody crashes or hangs; after SIGCONT a leader serves and nothing acknowledged is lost', async () => {
  await putSome('a', 20)
  await outage(
    'sigstop',
    async () => void etcd.process.kill('SIGSTOP'),
    20_000,
    async () => void etcd.process.kill('SIGCONT'),
  )
  // The cluster takes writes again.
  await putSome('b', 10)
})

test('etcd killed and restarted on the same port and data dir: the same, and the log survives', async () => {
  await outage('restart', () => etcd.kill('SIGKILL'), 6_000, () => etcd.restart())
  await putSome('c', 10)
  await readAll(RECOVERY_MS)
})

test.run()
