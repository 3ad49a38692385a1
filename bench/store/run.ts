/**
 * Store benchmark: put/get throughput and latency through MooncakeClient, against Redis
 * measured in the same run on the same machine.
 *
 *   node --import tsx bench/store/run.ts [--transport tcp|auto|both] [--quick] [--no-redis] [--batch-only] [--no-reserve] [--json]
 *
 * --no-reserve makes every put take PutStart + PutEnd (the client's reserveBytes: 0), for an A/B
 * of reserved space.
 * --batch-only runs just the 4 KiB batchPut/batchGet phases (and Redis at 4 KiB); BENCH_SIZES
 * (comma-separated bytes) narrows the single-key sizes.
 *
 * A master and a segment owner run as separate node processes; the client (this process)
 * runs 1, 8 or 64 concurrent callers. Each measured put/get round (700 ms a phase) follows a
 * discarded one of the same size and callers (500 ms a phase; none with --quick): throughput is
 * the steady rate of warm processes, as redis-server's is. Values are pre-generated in registered
 * memory and gets land in registered buffers (zero copy, as an inference engine would use it). 4 KiB values are
 * also measured through batchPut/batchGet/batchGetInto. Redis: Debian redis-server on loopback with
 * persistence off, driven by redis-benchmark at the same value sizes; for 1 MiB and more also over
 * as many distinct keys as the store's phases use (`-r`; without it every request hits one key,
 * cache-resident). Targets compare with Redis' best row either way; a second table sets 8-caller
 * rows of 1 MiB and more against Redis over the same key pattern (the store's gets are also run
 * on one key for it).
 */
import {execFileSync, spawn} from 'node:child_process'
import {randomFillSync} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {MooncakeClient} from '../../src/lib/client/client.js'
import type {TransportMode} from '../../src/lib/client/options.js'
import {freePort, killAll, startFixture} from '../../test/helpers/processes.js'

const KiB = 1024
const MiB = 1024 * KiB
const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt
}
const JSON_OUT = flag('json')
const QUICK = flag('quick')
const transports: TransportMode[] = opt('transport', 'both') === 'both' ? ['tcp', 'auto'] : [opt('transport', 'both') as TransportMode]
const BATCH_ONLY = flag('batch-only')
const NO_RESERVE = flag('no-reserve')
const SIZES = BATCH_ONLY ? [] : (process.env.BENCH_SIZES ?? '4096,65536,1048576,16777216').split(',').map(Number)
const CONCURRENCY = [1, 8, 64]
const PHASE_MS = QUICK ? 300 : 700
/** A discarded put and get round before each measured one (none with --quick). */
const WARMUP_MS = QUICK ? 0 : 500
const SEGMENT_SIZE = 3 * 1024 * MiB
/** Most bytes one put phase stores before the pool is cleared. */
const PUT_BUDGET = 1536 * MiB

const log = (...a: unknown[]) => {
  if (!JSON_OUT) console.error(...a)
}

interface Row {
  system: 'mooncake' | 'redis'
  transport?: TransportMode
  op: string
  size: number
  concurrency: number
  pipeline?: number
  /** Distinct keys the phase wrote or read (redis-benchmark without -r uses one key). */
  keys?: number
  opsPerSec: number
  gbPerSec: number
  p50Ms: number
  p99Ms: number
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

function row(system: Row['system'], op: string, size: number, concurrency: number, ops: number, seconds: number, lat: number[], extra: Partial<Row> = {}): Row {
  lat.sort((a, b) => a - b)
  return {system, op, size, concurrency, opsPerSec: ops / seconds, gbPerSec: (ops * size) / seconds / 1e9, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), ...extra}
}

/**
 * A put phase of `size`-byte values (at most PUT_BUDGET bytes), a get phase over the keys it
 * stored (and with `oneKey` one over its first key only), then removeAll.
 */
async function putGetPhases(client: MooncakeClient, transport: TransportMode, size: number, conc: number, prefix: string, source: Buffer, dests: Buffer[], phaseMs: number, oneKey = false): Promise<Row[]> {
  const maxKeys = Math.max(conc, Math.floor(PUT_BUDGET / size))
  const spread = Math.max(1, Math.floor((source.length - size) / 4096))
  let next = 0
  const putLat: number[] = []
  const t0 = performance.now()
  const deadline = t0 + phaseMs
  await Promise.all(
    Array.from({length: conc}, async () => {
      while (performance.now() < deadline && next < maxKeys) {
        const i = next++
        const off = (i % spread) * 4096
        const s = performance.now()
        await client.put(prefix + i, source.subarray(off, off + size))
        putLat.push(performance.now() - s)
      }
    }),
  )
  const putSec = (performance.now() - t0) / 1000
  const stored = next
  const put = row('mooncake', 'put', size, conc, stored, putSec, putLat, {transport, keys: stored})
  // Caller c reads keys c, c + conc, c + 2 conc, ... of those stored.
  const gets = await timedGets(client, conc, dests, phaseMs, (c, n) => prefix + ((c + n * conc) % stored))
  const get = row('mooncake', 'get', size, conc, gets.done, gets.seconds, gets.lat, {transport, keys: Math.min(gets.done, stored)})
  const rows = [put, get]
  if (oneKey) {
    // Every caller reads the first key, as redis-benchmark without -r does (a like-for-like row; not a target).
    const same = await timedGets(client, conc, dests, phaseMs, () => prefix + 0)
    rows.push(row('mooncake', 'get', size, conc, same.done, same.seconds, same.lat, {transport, keys: 1}))
  }
  await client.removeAll({force: true})
  return rows
}

/** `conc` callers getting into their registered buffers for `phaseMs`; keyAt(caller, n): the caller's n-th key. */
async function timedGets(client: MooncakeClient, conc: number, dests: Buffer[], phaseMs: number, keyAt: (caller: number, n: number) => string): Promise<{done: number; seconds: number; lat: number[]}> {
  let done = 0
  const lat: number[] = []
  const t0 = performance.now()
  const deadline = t0 + phaseMs
  await Promise.all(
    Array.from({length: conc}, async (_, c) => {
      for (let n = 0; performance.now() < deadline; n++) {
        const s = performance.now()
        await client.getInto(keyAt(c, n), dests[c])
        lat.push(performance.now() - s)
        done++
      }
    }),
  )
  return {done, seconds: (performance.now() - t0) / 1000, lat}
}

async function benchMooncake(address: string, transport: TransportMode, source: Buffer, dests: Buffer[]): Promise<Row[]> {
  const client = await MooncakeClient.connect({masterAddress: address, transport, timeoutMs: 60_000, ...(NO_RESERVE ? {reserveBytes: 0} : {})})
  const rows: Row[] = []
  try {
    await client.registerLocalMemory(source)
    for (const d of dests) await client.registerLocalMemory(d)
    for (const size of SIZES) {
      for (const conc of CONCURRENCY) {
        // A discarded round first: V8 compiles the put and get paths of the client and the master
        // for their shape of work (a fresh process needs a few thousand operations before it runs
        // at its steady rate), and every page they touch is mapped.
        if (WARMUP_MS > 0) await putGetPhases(client, transport, size, conc, `w/${transport}/${size}/${conc}/`, source, dests, WARMUP_MS)
        const measured = await putGetPhases(client, transport, size, conc, `b/${transport}/${size}/${conc}/`, source, dests, PHASE_MS, size >= MiB && conc === 8)
        rows.push(...measured)
        const [put, get] = measured
        log(`mooncake ${transport} ${fmtSize(size)} c=${conc}: put ${fmtOps(put.opsPerSec)} (${put.gbPerSec.toFixed(2)} GB/s), get ${fmtOps(get.opsPerSec)} (${get.gbPerSec.toFixed(2)} GB/s)`)
      }
    }
    // 4 KiB through batchPut / batchGet: 8 callers, 256 keys per batch
    const size = 4 * KiB
    const batch = 256
    const callers = 8
    let n = 0
    const bpLat: number[] = []
    const t0 = performance.now()
    const deadline = t0 + PHASE_MS * 2
    await Promise.all(
      Array.from({length: callers}, async () => {
        while (performance.now() < deadline) {
          const base = n
          n += batch
          const items = Array.from({length: batch}, (_, j) => ({key: `bb/${transport}/${base + j}`, value: source.subarray((base + j) * 64, (base + j) * 64 + size)}))
          const s = performance.now()
          const res = await client.batchPut(items)
          bpLat.push(performance.now() - s)
          if (!res.every((r) => r.ok)) throw new Error(`batchPut failed: ${JSON.stringify(res.find((r) => !r.ok))}`)
        }
      }),
    )
    rows.push(row('mooncake', 'batchPut', size, callers, n, (performance.now() - t0) / 1000, bpLat, {transport, pipeline: batch}))
    const stored = n
    let got = 0
    const bgLat: number[] = []
    const g0 = performance.now()
    const gDeadline = g0 + PHASE_MS * 2
    await Promise.all(
      Array.from({length: callers}, async (_, c) => {
        let i = c * batch
        while (performance.now() < gDeadline) {
          const keys = Array.from({length: batch}, (_, j) => `bb/${transport}/${(i + j) % stored}`)
          const s = performance.now()
          const res = await client.batchGet(keys)
          bgLat.push(performance.now() - s)
          if (!res.every((r) => r.ok)) throw new Error('batchGet failed')
          got += batch
          i += callers * batch
        }
      }),
    )
    rows.push(row('mooncake', 'batchGet', size, callers, got, (performance.now() - g0) / 1000, bgLat, {transport, pipeline: batch}))
    // The same reads into the callers' registered buffers (batchGetInto: nothing allocated per value).
    const arena = Buffer.alloc(callers * batch * size)
    client.registerLocalMemory(arena)
    let into = 0
    const biLat: number[] = []
    const i0 = performance.now()
    const iDeadline = i0 + PHASE_MS * 2
    await Promise.all(
      Array.from({length: callers}, async (_, c) => {
        let i = c * batch
        const dests = Array.from({length: batch}, (_, j) => arena.subarray((c * batch + j) * size, (c * batch + j + 1) * size))
        while (performance.now() < iDeadline) {
          const items = dests.map((dest, j) => ({key: `bb/${transport}/${(i + j) % stored}`, dest}))
          const s = performance.now()
          const res = await client.batchGetInto(items)
          biLat.push(performance.now() - s)
          if (!res.every((r) => r.ok)) throw new Error('batchGetInto failed')
          into += batch
          i += callers * batch
        }
      }),
    )
    rows.push(row('mooncake', 'batchGetInto', size, callers, into, (performance.now() - i0) / 1000, biLat, {transport, pipeline: batch}))
    await client.unregisterLocalMemory(arena)
    await client.removeAll({force: true})
    const last = rows.slice(-3)
    log(`mooncake ${transport} 4KiB batch x${batch} c=${callers}: batchPut ${fmtOps(last[0].opsPerSec)}, batchGet ${fmtOps(last[1].opsPerSec)}, batchGetInto ${fmtOps(last[2].opsPerSec)}`)
  } finally {
    await client.close()
  }
  return rows
}

async function benchRedis(): Promise<Row[]> {
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-bench-redis-'))
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], {stdio: 'ignore'})
  const rows: Row[] = []
  try {
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync('redis-cli', ['-p', String(port), 'ping'], {stdio: 'pipe'})
        break
      } catch {
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const configs: Array<{size: number; c: number; P: number; n: number; keys?: number}> = []
    for (const size of BATCH_ONLY ? [4 * KiB] : SIZES) {
      if (size <= 64 * KiB) {
        configs.push({size, c: 50, P: 1, n: size <= 4 * KiB ? 100_000 : 40_000})
        configs.push({size, c: 50, P: 16, n: size <= 4 * KiB ? 400_000 : 60_000})
      } else {
        const n = size >= 16 * MiB ? 150 : 3000
        configs.push({size, c: 4, P: 1, n})
        configs.push({size, c: 50, P: 1, n})
        // Without -r every SET and GET hits one key, whose value stays in the CPU's caches; the
        // store's phases touch hundreds of distinct keys. The same pattern for Redis, for reference.
        configs.push({size, c: 4, P: 1, n: 2 * n, keys: Math.min(1000, Math.floor(PUT_BUDGET / size))})
      }
    }
    for (const cfg of configs) {
      const n = QUICK ? Math.max(50, Math.floor(cfg.n / 4)) : cfg.n
      // Six SETs per key: every key exists (>99 %) before the GETs, which would otherwise find misses.
      const keys = cfg.keys ? Math.max(1, Math.min(cfg.keys, Math.floor(n / 6))) : undefined
      const out = execFileSync(
        'redis-benchmark',
        ['-h', '127.0.0.1', '-p', String(port), '-t', 'set,get', '-d', String(cfg.size), '-n', String(n), '-c', String(cfg.c), '-P', String(cfg.P), ...(keys ? ['-r', String(keys)] : []), '--csv'],
        {encoding: 'utf8', maxBuffer: 16 * MiB, timeout: 120_000},
      )
      for (const line of out.split('\n')) {
        const cols = line.split(',').map((c) => c.replace(/"/g, ''))
        if (cols[0] !== 'SET' && cols[0] !== 'GET') continue
        const rps = Number(cols[1])
        rows.push({system: 'redis', op: cols[0] === 'SET' ? 'put' : 'get', size: cfg.size, concurrency: cfg.c, pipeline: cfg.P, keys: keys ?? 1, opsPerSec: rps, gbPerSec: (rps * cfg.size) / 1e9, p50Ms: Number(cols[4]), p99Ms: Number(cols[6])})
      }
      const last = rows.slice(-2)
      log(`redis ${fmtSize(cfg.size)} c=${cfg.c} P=${cfg.P}${keys ? ` keys=${keys}` : ''}: SET ${fmtOps(last[0]?.opsPerSec ?? 0)}, GET ${fmtOps(last[1]?.opsPerSec ?? 0)}`)
    }
  } finally {
    server.kill('SIGTERM')
    await new Promise((r) => server.once('exit', r))
    rmSync(dir, {recursive: true, force: true})
  }
  return rows
}

function fmtSize(n: number): string {
  return n >= MiB ? `${n / MiB}MiB` : `${n / KiB}KiB`
}

function fmtOps(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k/s` : `${n.toFixed(0)}/s`
}

function best(rows: Row[], system: Row['system'], op: string, size: number, filter: (r: Row) => boolean = () => true): Row | undefined {
  return rows.filter((r) => r.system === system && r.op === op && r.size === size && filter(r)).sort((a, b) => b.opsPerSec - a.opsPerSec)[0]
}

/** One row of ours against one of Redis. */
interface Comparison {
  name: string
  ours: number
  redis: number
  ratio: number
}

/** A comparison the issue sets a wanted ratio for. */
interface Target extends Comparison {
  want: number
  ok: boolean
}

function targets(rows: Row[]): Target[] {
  const out: Target[] = []
  const add = (name: string, ours: Row | undefined, redis: Row | undefined, want: number) => {
    if (!ours || !redis) return
    const ratio = ours.opsPerSec / redis.opsPerSec
    out.push({name, ours: ours.opsPerSec, redis: redis.opsPerSec, want, ratio, ok: ratio >= want})
  }
  for (const size of [MiB, 16 * MiB]) {
    for (const op of ['put', 'get']) {
      const redisBest = best(rows, 'redis', op, size)
      const ours = (transport: TransportMode) => best(rows, 'mooncake', op, size, (r) => r.transport === transport && r.concurrency === 8 && r.keys !== 1)
      add(`${fmtSize(size)} ${op}, 8 clients, tcp vs Redis best`, ours('tcp'), redisBest, 1)
      add(`${fmtSize(size)} ${op}, 8 clients, same-host vs 2x Redis best`, ours('auto'), redisBest, 2)
    }
  }
  // The 4 KiB target names no transport: both are reported, 'auto' (same host) being the default.
  for (const [ours, theirs] of [['batchPut', 'put'], ['batchGet', 'get'], ['batchGetInto', 'get']]) {
    for (const transport of ['tcp', 'auto'] as const) {
      const label = transport === 'tcp' ? 'tcp' : 'same-host, the default'
      add(`4KiB ${ours} (${label}) vs Redis c=50 P=1`, best(rows, 'mooncake', ours, 4 * KiB, (r) => r.transport === transport), best(rows, 'redis', theirs, 4 * KiB, (r) => r.pipeline === 1), 1)
    }
  }
  return out
}

/**
 * The 8-caller rows of 1 MiB and more against Redis over the same key pattern: one key against
 * redis-benchmark without -r, distinct keys against its -r rows. For reading the targets (which
 * take Redis' best row whatever its pattern), not targets themselves.
 */
function likeForLike(rows: Row[]): Comparison[] {
  const out: Comparison[] = []
  for (const size of [MiB, 16 * MiB]) {
    for (const op of ['put', 'get']) {
      for (const pattern of ['one key', 'distinct keys'] as const) {
        const match = (r: Row) => (pattern === 'one key' ? r.keys === 1 : (r.keys ?? 1) > 1)
        const redis = best(rows, 'redis', op, size, match)
        for (const transport of ['tcp', 'auto'] as const) {
          const ours = best(rows, 'mooncake', op, size, (r) => r.transport === transport && r.concurrency === 8 && match(r))
          if (!ours || !redis) continue
          const where = transport === 'tcp' ? 'tcp' : 'same-host'
          out.push({name: `${fmtSize(size)} ${op}, 8 clients, ${where}, ${pattern} (ours ${ours.keys}, Redis ${redis.keys})`, ours: ours.opsPerSec, redis: redis.opsPerSec, ratio: ours.opsPerSec / redis.opsPerSec})
        }
      }
    }
  }
  return out
}

function printTable(rows: Row[], goals: Target[], same: Comparison[]): void {
  const lines: string[] = []
  lines.push('| system | transport | op | value | callers | pipeline | keys | ops/s | GB/s | p50 ms | p99 ms |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    lines.push(
      `| ${r.system} | ${r.transport ?? '-'} | ${r.op} | ${fmtSize(r.size)} | ${r.concurrency} | ${r.pipeline ?? 1} | ${r.keys ?? '-'} | ${Math.round(r.opsPerSec)} | ${r.gbPerSec.toFixed(2)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} |`,
    )
  }
  lines.push('')
  lines.push('| target | mooncake ops/s | redis ops/s | ratio | wanted | met |')
  lines.push('|---|---|---|---|---|---|')
  for (const g of goals) lines.push(`| ${g.name} | ${Math.round(g.ours)} | ${Math.round(g.redis)} | ${g.ratio.toFixed(2)} | >= ${g.want} | ${g.ok ? 'yes' : 'NO'} |`)
  if (same.length > 0) {
    lines.push('')
    lines.push('| same key pattern as Redis (not targets) | mooncake ops/s | redis ops/s | ratio |')
    lines.push('|---|---|---|---|')
    for (const c of same) lines.push(`| ${c.name} | ${Math.round(c.ours)} | ${Math.round(c.redis)} | ${c.ratio.toFixed(2)} |`)
  }
  console.log(lines.join('\n'))
}

async function main(): Promise<void> {
  const started = Date.now()
  const master = await startFixture<{address: string}>('test/integration/fixtures/client-master.ts', [JSON.stringify({})])
  await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress: master.ready.address, size: SEGMENT_SIZE})], {timeoutMs: 120_000})
  log(`master ${master.ready.address}, segment ${SEGMENT_SIZE / MiB} MiB ready in ${Date.now() - started} ms`)
  const source = Buffer.allocUnsafeSlow(64 * MiB)
  randomFillSync(source)
  const dests = Array.from({length: Math.max(...CONCURRENCY)}, () => Buffer.alloc(Math.max(4 * KiB, ...SIZES)))
  const rows: Row[] = []
  try {
    for (const transport of transports) rows.push(...(await benchMooncake(master.ready.address, transport, source, dests)))
  } finally {
    await killAll()
  }
  if (!flag('no-redis')) rows.push(...(await benchRedis()))
  const goals = targets(rows)
  const same = likeForLike(rows)
  const seconds = (Date.now() - started) / 1000
  if (JSON_OUT) console.log(JSON.stringify({seconds, rows, targets: goals, sameKeyPattern: same}))
  else {
    printTable(rows, goals, same)
    console.log(`\n(${seconds.toFixed(0)} s)`)
  }
}

main().catch(async (err) => {
  console.error(err)
  await killAll()
  process.exit(1)
})
