/**
 * Load test: 64 concurrent clients (4 processes x 16 MooncakeClients) doing mixed
 * put/get/upsert/remove for --duration (default 300 s) against one master and two segment
 * owners whose pool is smaller than the working set, so the pool sits at the eviction watermark
 * (0.95). Reports errors by code (expected ones separated), p50/p99 per op, the master's
 * RSS/heap over time (first/last/max and a least-squares slope) and the pool's used ratio.
 *
 *   node --import tsx bench/load/run.ts [--duration 300] [--seed 1] [--clients 64] [--procs 4]
 *        [--pool-mib 128] [--out bench/load/results/load.json]
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {killAll, ROOT, startFixture, type Fixture} from '../../test/helpers/processes.js'
import {argValue, MASTER, mergeCounts, MiB, percentile, sleep, slope, startOwner, startWorker, type WorkerSummary} from '../chaos/lib.js'

const argv = process.argv.slice(2)
const durationS = Number(argValue(argv, 'duration') ?? 300)
const seed = Number(argValue(argv, 'seed') ?? 1)
const totalClients = Number(argValue(argv, 'clients') ?? 64)
const procs = Number(argValue(argv, 'procs') ?? 4)
const poolMiB = Number(argValue(argv, 'pool-mib') ?? 128)
const out = path.resolve(ROOT, argValue(argv, 'out') ?? `bench/load/results/load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)

// Errors that the workload provokes on purpose at the watermark (not failures of the store).
const EXPECTED: Record<string, string[]> = {
  get: ['OBJECT_NOT_FOUND'], // evicted, or a get of a removed key
  remove: ['OBJECT_NOT_FOUND', 'OBJECT_HAS_LEASE'], // evicted; our own get's lease still running
  upsert: ['OBJECT_NOT_FOUND', 'OBJECT_HAS_LEASE'],
  put: ['OBJECT_ALREADY_EXISTS'], // only after an earlier failure left the key's state unknown
}

async function main(): Promise<number> {
  const masterOptions = {leaseTtlMs: 2000, clientTtlMs: 10_000}
  const master = (await startFixture(MASTER, [JSON.stringify(masterOptions)], {env: {MOONCAKE_CHAOS_ERASURES: '0'}})) as Fixture<{address: string; pid: number}>
  const address = master.ready.address
  const owners = await Promise.all([startOwner(address, (poolMiB / 2) * MiB, 'load-a'), startOwner(address, (poolMiB / 2) * MiB, 'load-b')])
  const perProc = Math.ceil(totalClients / procs)
  const workers = await Promise.all(
    Array.from({length: procs}, (_, p) =>
      startWorker({
        masterAddress: address,
        proc: p,
        gen: 0,
        seed,
        clients: perProc,
        durationMs: durationS * 1000,
        keysPerClient: 64,
        minSize: 4 * 1024,
        maxSize: 256 * 1024,
        timeoutMs: 30_000,
        stagingBytes: 4 * MiB,
        sampleEvery: 1,
      }),
    ),
  )
  const t0 = Date.now()
  const samples: Array<{t: number; rss: number; heapUsed: number; used: number; capacity: number; keys: number; evicted: number}> = []
  const done = Promise.all(workers.map((w) => w.summary))
  let finished = false
  void done.then(() => (finished = true))
  while (!finished) {
    try {
      const m = await master.command<{t: number; rss: number; heapUsed: number; stats: {used: number; capacity: number; keys: number}; metrics: {evictedObjects: number}}>({cmd: 'mem'}, 10_000)
      samples.push({t: (m.t - t0) / 1000, rss: m.rss, heapUsed: m.heapUsed, used: m.stats.used, capacity: m.stats.capacity, keys: m.stats.keys, evicted: m.metrics.evictedObjects})
    } catch (err) {
      console.error(`sample failed: ${String(err)}`)
    }
    if (durationS >= 30 && samples.length % 15 === 1) {
      const s = samples[samples.length - 1]
      console.error(`t=${s.t.toFixed(0)}s rss=${(s.rss / MiB).toFixed(1)}MiB heap=${(s.heapUsed / MiB).toFixed(1)}MiB used=${((s.used / s.capacity) * 100).toFixed(1)}% keys=${s.keys} evicted=${s.evicted}`)
    }
    await Promise.race([sleep(2000), done])
  }
  const summaries = (await done).filter((s): s is WorkerSummary => s !== null)
  const exits = await Promise.all(workers.map((w) => Promise.race([w.fixture.exited, sleep(10_000).then(() => null)])))
  const counts: Record<string, number> = {}
  const lat: Record<string, number[]> = {}
  const violations: unknown[] = []
  let longestOpMs = 0
  let verifiedGets = 0
  for (const s of summaries) {
    mergeCounts(counts, s.counts)
    for (const [op, xs] of Object.entries(s.lat)) (lat[op] ??= []).push(...xs)
    violations.push(...s.violations)
    longestOpMs = Math.max(longestOpMs, s.longestOpMs)
    verifiedGets += s.verifiedGets
  }
  const ops = Object.values(counts).reduce((a, b) => a + b, 0)
  const unexpected: Record<string, number> = {}
  const expected: Record<string, number> = {}
  for (const [k, n] of Object.entries(counts)) {
    const [op, code] = k.split(':')
    if (code === 'OK') continue
    if (EXPECTED[op]?.includes(code)) expected[k] = n
    else unexpected[k] = n
  }
  const latency: Record<string, {n: number; p50: number; p99: number; max: number}> = {}
  for (const [op, xs] of Object.entries(lat)) {
    xs.sort((a, b) => a - b)
    latency[op] = {n: xs.length, p50: +percentile(xs, 50).toFixed(2), p99: +percentile(xs, 99).toFixed(2), max: +(xs[xs.length - 1] ?? NaN).toFixed(2)}
  }
  const steady = samples.filter((s) => s.t >= Math.min(30, durationS / 3))
  const mem = (f: (s: (typeof samples)[0]) => number) => ({
    firstMiB: +(f(samples[0]) / MiB).toFixed(1),
    lastMiB: +(f(samples[samples.length - 1]) / MiB).toFixed(1),
    maxMiB: +(Math.max(...samples.map(f)) / MiB).toFixed(1),
    slopeMiBPerMin: +((slope(steady.map((s) => s.t), steady.map(f)) * 60) / MiB).toFixed(3),
  })
  const usedRatios = steady.map((s) => s.used / s.capacity)
  const result = {
    command: `node --import tsx bench/load/run.ts ${argv.join(' ')}`.trim(),
    durationS,
    seed,
    clients: perProc * procs,
    procs,
    poolMiB,
    masterOptions,
    ops,
    opsPerSec: +(ops / durationS).toFixed(1),
    verifiedGets,
    counts,
    expectedErrors: expected,
    unexpectedErrors: unexpected,
    violations,
    longestOpMs,
    workersExited: exits.map((e) => (e ? e.code : 'hung')),
    latencyMs: latency,
    masterRss: mem((s) => s.rss),
    masterHeap: mem((s) => s.heapUsed),
    usedRatio: {
      min: +Math.min(...usedRatios).toFixed(3),
      mean: +(usedRatios.reduce((a, b) => a + b, 0) / usedRatios.length).toFixed(3),
      max: +Math.max(...usedRatios).toFixed(3),
    },
    evictedObjects: samples[samples.length - 1]?.evicted,
    samples,
  }
  mkdirSync(path.dirname(out), {recursive: true})
  writeFileSync(out, JSON.stringify(result, null, 1))
  const {samples: _s, ...brief} = result
  console.log(JSON.stringify(brief, null, 1))
  console.log(`written ${out}`)
  for (const o of owners) await o.kill('SIGTERM')
  await master.kill('SIGTERM')
  const ok = Object.keys(unexpected).length === 0 && violations.length === 0 && exits.every((e) => e !== null)
  return ok ? 0 : 1
}

let code = 1
try {
  code = await main()
} catch (err) {
  console.error(err)
} finally {
  await killAll()
}
process.exit(code)
