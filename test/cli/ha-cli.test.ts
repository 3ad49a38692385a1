/**
 * The CLI against an HA cluster, end to end with real processes: a real etcd, three
 * `mooncake master --etcd` and a `mooncake segment mount --etcd`, and the data commands given only
 * --etcd (no master address): put, get (bytes compared), exists, ls, rm. Then kill -9 of the leader:
 * a get of an acknowledged key still works after the failover, within one bounded CLI call; and
 * with every master down the CLI exits 5 (UNAVAILABLE) within its --timeout, never hangs, both
 * while etcd still names the dead leader and after its lease is gone.
 */
import {randomBytes} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {startEtcd, type EtcdServer} from '../helpers/etcd.js'
import {freePort, waitFor} from '../helpers/processes.js'
import {cleanup, lines, run, SANDBOX, startServer, type RunResult, type Server} from './helpers.js'

/** --ha-lease-ttl of the masters: failover takes about 1-2x this. */
const TTL_S = 2

interface Master {
  server: Server
  address: string
  httpAddress: string
}

let etcd: EtcdServer
let clusterId: string
let masters: Master[] = []
let segment: Server

const etcdFlags = () => ['--etcd', etcd.endpoint, '--cluster-id', clusterId]
const cli = (args: string[], options: {killAfterMs?: number} = {}): Promise<RunResult> => run([...args, ...etcdFlags()], options)

async function startMaster(): Promise<Master> {
  // A fixed port: the advertised address (what etcd names as leader) is the one bound.
  const port = await freePort()
  const server = await startServer(['master', '--port', String(port), '--metrics-port', '0', '--ha-lease-ttl', `${TTL_S}s`, ...etcdFlags()], {
    readyTimeoutMs: 30_000,
  })
  const m = /^ready master (\S+) \(http (\S+)\)$/.exec(server.ready)
  if (!m) throw new Error(`unexpected ready line: ${server.ready}`)
  return {server, address: m[1]!, httpAddress: m[2]!}
}

const alive = (m: Master) => m.server.child.exitCode === null && m.server.child.signalCode === null

async function role(m: Master): Promise<string | undefined> {
  try {
    const res = await fetch(`http://${m.httpAddress}/health`, {signal: AbortSignal.timeout(1_000)})
    const h = (await res.json()) as {role: string; ready: boolean}
    return h.ready ? h.role : undefined
  } catch {
    return undefined
  }
}

async function leader(timeoutMs: number): Promise<Master> {
  return waitFor(
    async () => {
      const live = masters.filter(alive)
      const roles = await Promise.all(live.map(role))
      const leaders = live.filter((_, i) => roles[i] === 'leader')
      return leaders.length === 1 ? leaders[0] : undefined
    },
    timeoutMs,
    'one leader master',
    50,
  )
}

test.before(async () => {
  etcd = await startEtcd()
  clusterId = `ha-cli-${process.pid}`
  masters = await Promise.all([startMaster(), startMaster(), startMaster()])
  await leader(15_000)
  segment = await startServer(['segment', 'mount', '--size', '32MiB', '--name', 'ha-cli-seg', ...etcdFlags()], {readyTimeoutMs: 30_000})
})

test.after(async () => {
  cleanup()
  await etcd?.stop()
})

const file = (name: string) => path.join(SANDBOX, name)

test('put, get (bytes compared), exists, ls, rm with only --etcd', async () => {
  const value = randomBytes(3 * 2 ** 20 + 17)
  writeFileSync(file('in.bin'), value)
  const put = await cli(['put', 'ha/a', file('in.bin'), '--json'])
  assert.is(put.code, 0, put.stderr)
  assert.is((JSON.parse(put.stdout) as {size: number}).size, value.length)
  const small = await cli(['put', 'ha/b', file('in.bin')])
  assert.is(small.code, 0, small.stderr)

  const get = await cli(['get', 'ha/a', file('out.bin')])
  assert.is(get.code, 0, get.stderr)
  assert.ok(readFileSync(file('out.bin')).equals(value), 'get returned other bytes')

  const exists = await cli(['exists', 'ha/a', 'ha/none', '--json'])
  assert.is(exists.code, 3, exists.stderr)
  assert.equal(JSON.parse(exists.stdout), {'ha/a': true, 'ha/none': false})

  const ls = await cli(['ls', '--prefix', 'ha/'])
  assert.is(ls.code, 0, ls.stderr)
  assert.equal(lines(ls.stdout).sort(), ['ha/a', 'ha/b'])

  const rm = await cli(['rm', 'ha/b', '--json'])
  assert.is(rm.code, 0, rm.stderr)
  assert.is((JSON.parse(rm.stdout) as {removed: number}).removed, 1)
  const gone = await cli(['get', 'ha/b', file('gone.bin')])
  assert.is(gone.code, 3, gone.stderr)
  assert.match(gone.stderr, /^mooncake: OBJECT_NOT_FOUND: /m)
})

test('kill -9 of the leader: get --etcd of an acknowledged key works after the failover', async () => {
  const value = randomBytes(256 * 1024)
  writeFileSync(file('survivor.bin'), value)
  const put = await cli(['put', 'ha/survivor', file('survivor.bin')])
  assert.is(put.code, 0, put.stderr)
  const old = await leader(5_000)
  old.server.child.kill('SIGKILL')
  await old.server.exited
  // One CLI call, started while etcd still names the dead leader: it must find the new one and
  // wait for the segment's re-mount within its --timeout, not fail or hang.
  const get = await cli(['get', 'ha/survivor', file('survivor.out'), '--timeout', '20s'], {killAfterMs: 40_000})
  assert.is(get.code, 0, `exit ${get.code} after ${get.ms} ms: ${get.stderr}`)
  assert.ok(readFileSync(file('survivor.out')).equals(value), 'get after failover returned other bytes')
  const next = await leader(10_000)
  assert.is.not(next.address, old.address)
  process.stderr.write(`[ha-cli] get across the failover took ${get.ms} ms\n`)
})

test('every master down: the CLI exits 5 (UNAVAILABLE) within --timeout, never hangs', async () => {
  for (const m of masters.filter(alive)) {
    m.server.child.kill('SIGKILL')
    await m.server.exited
  }
  const check = async (args: string[]) => {
    const r = await cli([...args, '--timeout', '3s'], {killAfterMs: 30_000})
    assert.is(r.signal, null, `killed after ${r.ms} ms: it hung`)
    assert.is(r.code, 5, `${args[0]}: exit ${r.code}: ${r.stderr}`)
    assert.match(r.stderr, /^mooncake: UNAVAILABLE: \S/m)
    assert.is(lines(r.stderr).length, 1, r.stderr)
    // --timeout 3s, plus the CLI's start-up on a loaded machine.
    assert.ok(r.ms < 3_000 + 6_000, `${args[0]} took ${r.ms} ms`)
    process.stderr.write(`[ha-cli] ${args[0]} with every master down: exit 5 after ${r.ms} ms\n`)
    return r
  }
  // etcd may still name the dead leader here (its lease has not expired yet)...
  await check(['get', 'ha/survivor', file('never.bin')])
  // ...and names none once it has.
  await waitFor(
    async () => {
      const r = await cli(['cluster', 'status', '--json', '--timeout', '3s'])
      return r.code !== 0 || (JSON.parse(r.stdout) as {leader: string | null}).leader === null
    },
    3 * TTL_S * 1_000,
    'the leader key to expire',
    200,
  )
  await check(['get', 'ha/survivor', file('never.bin')])
  await check(['put', 'ha/late', file('survivor.bin')])
  await check(['exists', 'ha/survivor'])
  await check(['ls'])
  await check(['rm', 'ha/survivor'])
  assert.is(segment.child.exitCode ?? segment.child.signalCode, null, `the segment owner exited while the masters were down: ${segment.stderr()}`)
})

test.run()
