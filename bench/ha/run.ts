// HA benchmark (issue 5): failover time and put throughput with and without durability.
//   node --import tsx bench/ha/run.ts [--trials 10] [--ttl 2000] [--keys 100000] [--owner-ping 200]
// Failover: three masters (separate processes) on a real etcd; kill -9 the leader and time until
// the first put (PutStart + PutEnd through a client that follows the leader) succeeds, which
// needs the segment's owner to re-mount on the new leader (it pings every --owner-ping ms); the dead
// master is replaced before the next trial. Throughput: BatchPutStart + BatchPutEnd of 1000 keys
// per batch, 4 batches in flight, one client, against a plain master, one with --data-dir, and
// the leader of an HA group (every reply waits until its log entry committed in etcd).
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {startEtcd} from '../../test/helpers/etcd.js'
import {killAll} from '../../test/helpers/processes.js'
import {type MasterProc, startMaster, waitLeader} from '../../test/integration/fixtures/ha-cluster.js'

const {values} = parseArgs({options: {trials: {type: 'string', default: '10'}, ttl: {type: 'string', default: '2000'}, keys: {type: 'string', default: '100000'}, 'owner-ping': {type: 'string', default: '200'}}})
const TRIALS = Number(values.trials)
const TTL = Number(values.ttl)
const KEYS = Number(values.keys)
const OWNER_PING_MS = Number(values['owner-ping'])

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]

async function mountBig(c: MasterClient, id: string): Promise<void> {
  const d = {id, name: id, endpoints: ['127.0.0.1:9'], size: 2 ** 40, hostId: 'bench'}
  await c.mountSegment({clientId: `owner-${id}`, segment: d})
  await c.reMountSegment({clientId: `owner-${id}`, segments: [d]})
}

async function failover(etcdEndpoint: string): Promise<{times: number[]}> {
  const clusterId = `bench-failover-${process.pid}`
  const opts = {etcd: [etcdEndpoint], clusterId, haLeaseTtlMs: TTL, clientTtlMs: 60_000}
  const masters: MasterProc[] = await Promise.all([startMaster(opts), startMaster(opts), startMaster(opts)])
  await waitLeader(masters, 10_000)
  const c = await connectMaster({address: '', etcd: [etcdEndpoint], clusterId, timeoutMs: 30_000, attemptTimeoutMs: 300} as Parameters<typeof connectMaster>[0])
  await mountBig(c, 'seg')
  process.on('exit', () => c.close())
  // An emulated segment owner: pings every OWNER_PING_MS and re-mounts on NEED_REMOUNT (as SegmentOwner does every 1 s).
  const d = {id: 'seg', name: 'seg', endpoints: ['127.0.0.1:9'], size: 2 ** 40, hostId: 'bench'}
  let owning = true
  const owner = (async () => {
    while (owning) {
      try {
        if ((await c.ping({clientId: 'owner-seg'})).status === 'NEED_REMOUNT') await c.reMountSegment({clientId: 'owner-seg', segments: [d]})
      } catch {}
      await new Promise((r) => setTimeout(r, OWNER_PING_MS))
    }
  })()
  const times: number[] = []
  let n = 0
  for (let t = 0; t < TRIALS; t++) {
    const leader = await waitLeader(masters, 10_000)
    const t0 = performance.now()
    leader.fx.child.kill('SIGKILL')
    for (;;) {
      const key = `f${t}-${n++}`
      try {
        await c.putStart({clientId: 'bench', requestId: key, key, size: 64})
        await c.putEnd({clientId: 'bench', key})
        break
      } catch {
        // a put that failed during the failover (no leader yet, or its segment not re-mounted yet): try the next key
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    times.push(performance.now() - t0)
    process.stderr.write(`trial ${t + 1}: ${times[t].toFixed(0)} ms\n`)
    // re-mount the segment on the new leader (its owner would, after NEED_REMOUNT) and replace the dead master
    masters.splice(masters.indexOf(leader), 1, await startMaster(opts))
  }
  owning = false
  await owner
  c.close()
  for (const m of masters) m.fx.child.kill('SIGKILL')
  return {times}
}

async function throughput(c: MasterClient, label: string): Promise<number> {
  await mountBig(c, `seg-${label}`)
  const BATCH = 1000
  let next = 0
  const t0 = performance.now()
  const worker = async () => {
    for (;;) {
      const start = next
      if (start >= KEYS) return
      next += BATCH
      const keys = Array.from({length: Math.min(BATCH, KEYS - start)}, (_, i) => `${label}-${start + i}`)
      const s = await c.batchPutStart(keys.map((key) => ({clientId: 'bench', requestId: key, key, size: 4096})))
      if (s.some((r) => !r.ok)) throw new Error(`batchPutStart failed: ${JSON.stringify(s.find((r) => !r.ok))}`)
      const e = await c.batchPutEnd(keys.map((key) => ({clientId: 'bench', key, checksum: 1})))
      if (e.some((r) => !r.ok)) throw new Error('batchPutEnd failed')
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  const rate = KEYS / ((performance.now() - t0) / 1000)
  process.stderr.write(`${label}: ${rate.toFixed(0)} puts/s\n`)
  return rate
}

const etcd = await startEtcd()
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-bench-journal-'))
try {
  const onlyFailover = process.env.BENCH_ONLY_FAILOVER === "1"
  const results: Record<string, unknown> = {node: process.version, cpus: os.cpus().length, ttlMs: TTL, trials: TRIALS, keys: KEYS}
  if (!onlyFailover) await throughputs(results)
  const {times} = await failover(etcd.endpoint)
  results.ownerPingMs = OWNER_PING_MS
  results.failoverMs = {median: Math.round(median(times)), max: Math.round(Math.max(...times)), all: times.map((t) => Math.round(t))}
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
} finally {
  await killAll()
  await etcd.stop()
  rmSync(dataDir, {recursive: true, force: true})
}

async function throughputs(results: Record<string, unknown>): Promise<void> {
  const plain = await startMaster({clientTtlMs: 600_000})
  const cp = await connectMaster({address: plain.address, timeoutMs: 60_000})
  results.plainPutsPerSec = Math.round(await throughput(cp, 'plain'))
  cp.close()
  const journaled = await startMaster({dataDir, clientTtlMs: 600_000})
  const cj = await connectMaster({address: journaled.address, timeoutMs: 60_000})
  results.dataDirPutsPerSec = Math.round(await throughput(cj, 'journal'))
  cj.close()
  const clusterId = `bench-tput-${process.pid}`
  const ha = await Promise.all([0, 1, 2].map(() => startMaster({etcd: [etcd.endpoint], clusterId, haLeaseTtlMs: 5_000, clientTtlMs: 600_000})))
  await waitLeader(ha, 10_000)
  const ch = await connectMaster({address: '', etcd: [etcd.endpoint], clusterId, timeoutMs: 60_000})
  results.haPutsPerSec = Math.round(await throughput(ch, 'ha'))
  ch.close()
  for (const m of [plain, journaled, ...ha]) m.fx.child.kill('SIGKILL')
}
