/**
 * In-process benchmark of MasterService (no gRPC): what the state machine itself costs.
 *
 *   node --import tsx --expose-gc bench/master/inprocess.ts [--json] [--objects N]
 *
 * Measures PutStart+PutEnd pairs/s and GetReplicaList/s with 1, 16 and 64 interleaved callers,
 * the batch forms (128 keys per call), heap bytes per object at N (default 1 M) single-replica
 * objects (beyond the keys' own strings), QueryByRegex over N keys, and the longest tick() and
 * longest synchronous PutStart eviction while evicting at N objects.
 */
import {performance} from 'node:perf_hooks'

import type {PutEndRequest, PutStartRequest} from '../../src/lib/master/api.js'
import {MasterService} from '../../src/lib/master/service.js'

const args = process.argv.slice(2)
const json = args.includes('--json')
const objectsArg = args.indexOf('--objects')
const N = objectsArg >= 0 ? Number(args[objectsArg + 1]) : 1_000_000
const gc = (globalThis as {gc?: () => void}).gc
if (gc === undefined) {
  console.error('run with --expose-gc: node --import tsx --expose-gc bench/master/inprocess.ts')
  process.exit(2)
}

const GiB = 2 ** 30
const log = (s: string): void => {
  if (!json) console.error(s)
}

class Clock {
  t = Date.now()
  now(): number {
    return this.t
  }
}

function mountAll(svc: MasterService, count: number, size: number): void {
  for (let i = 0; i < count; i++) {
    const d = {id: `seg-${i}`, name: `seg-${i}`, endpoints: [`10.0.0.${i}:7000`], size, hostId: `host-${i % 8}`}
    svc.mountSegment({clientId: `owner-${i}`, segment: d})
    svc.reMountSegment({clientId: `owner-${i}`, segments: [d]})
  }
}

function fullGc(): void {
  for (let i = 0; i < 3; i++) gc!()
}

interface Row {
  name: string
  value: number
  unit: string
}
const rows: Row[] = []
const result: Record<string, number> = {}
function record(key: string, name: string, value: number, unit: string): void {
  rows.push({name, value, unit})
  result[key] = value
}

// --- throughput ---------------------------------------------------------------------------------

function putThroughput(callers: number, total: number): number {
  const svc = new MasterService({shardCount: 1024}, {clock: new Clock()})
  mountAll(svc, 16, 64 * GiB)
  const clients = Array.from({length: callers}, (_, i) => `client-${i}`)
  const starts: PutStartRequest[] = new Array(callers)
  const ends: PutEndRequest[] = new Array(callers)
  const t0 = performance.now()
  let done = 0
  while (done < total) {
    const n = Math.min(callers, total - done)
    for (let c = 0; c < n; c++) {
      const key = `put/${callers}/${done + c}`
      starts[c] = {clientId: clients[c], requestId: `r${done + c}`, key, size: 4096}
      svc.putStart(starts[c])
      ends[c] = {clientId: clients[c], key, checksum: 12345}
    }
    for (let c = 0; c < n; c++) svc.putEnd(ends[c])
    done += n
  }
  return total / ((performance.now() - t0) / 1000)
}

function getThroughput(svc: MasterService, keys: string[], callers: number, total: number): number {
  // `callers` interleaved readers, each walking its own stride of the key space.
  const cursors = Array.from({length: callers}, (_, i) => Math.floor((i * keys.length) / callers))
  const t0 = performance.now()
  let done = 0
  while (done < total) {
    for (let c = 0; c < callers && done < total; c++, done++) {
      svc.getReplicaList(keys[cursors[c]])
      cursors[c] = (cursors[c] + 7919) % keys.length
    }
  }
  return total / ((performance.now() - t0) / 1000)
}

function batchPutThroughput(total: number): number {
  const svc = new MasterService({}, {clock: new Clock()})
  mountAll(svc, 16, 64 * GiB)
  const t0 = performance.now()
  for (let done = 0; done < total; done += 128) {
    const starts: PutStartRequest[] = []
    const ends: PutEndRequest[] = []
    for (let i = 0; i < 128; i++) {
      const key = `bput/${done + i}`
      starts.push({clientId: 'c', requestId: `r${done + i}`, key, size: 4096})
      ends.push({clientId: 'c', key})
    }
    svc.batchPutStart(starts)
    svc.batchPutEnd(ends)
  }
  return total / ((performance.now() - t0) / 1000)
}

function batchGetThroughput(svc: MasterService, keys: string[], total: number): number {
  const t0 = performance.now()
  let at = 0
  for (let done = 0; done < total; done += 128) {
    const batch: string[] = []
    for (let i = 0; i < 128; i++) {
      batch.push(keys[at])
      at = (at + 7919) % keys.length
    }
    svc.batchGetReplicaList(batch)
  }
  return total / ((performance.now() - t0) / 1000)
}

// --- main -----------------------------------------------------------------------------------------

const started = performance.now()
log(`MasterService in process, ${N.toLocaleString()} objects for the memory/regex/eviction parts`)

putThroughput(16, 100_000) // warm-up (JIT), not recorded
fullGc()
for (const callers of [1, 16, 64]) {
  const v = putThroughput(callers, 300_000)
  record(`putPairsPerSec_${callers}`, `PutStart+PutEnd pairs/s, ${callers} caller(s)`, Math.round(v), 'pairs/s')
  fullGc()
}
record('batchPutPairsPerSec', 'BatchPutStart+BatchPutEnd (128/batch), keys/s', Math.round(batchPutThroughput(200_000)), 'keys/s')
fullGc()

// Memory: keys built first (their cost is the baseline), then N single-replica objects.
const keys: string[] = new Array(N)
for (let i = 0; i < N; i++) keys[i] = `model-a/layer-${i % 80}/block-${i.toString(16).padStart(8, '0')}`
const clock = new Clock()
// Owners do not ping here: a long clientTtl keeps them alive while the fake clock jumps.
const svc = new MasterService({evictionHighWatermarkRatio: 0.95, evictionRatio: 0.05, clientTtlMs: 86_400_000}, {clock})
// 1 KiB objects; capacity sized so that N objects fill 96 % of it (above the 0.95 watermark).
const objectSize = 1024
const segCount = 64
const segSize = Math.ceil((N * objectSize) / 0.96 / segCount / 8) * 8
mountAll(svc, segCount, segSize)
fullGc()
const heapBefore = process.memoryUsage().heapUsed
const tFill = performance.now()
for (let i = 0; i < N; i++) {
  svc.putStart({clientId: 'writer', requestId: `r${i}`, key: keys[i], size: objectSize})
  svc.putEnd({clientId: 'writer', key: keys[i], checksum: i})
}
const fillMs = performance.now() - tFill
fullGc()
const heapAfter = process.memoryUsage().heapUsed
record('bytesPerObject', `heap per object at ${N.toLocaleString()} objects (beyond the key)`, Math.round((heapAfter - heapBefore) / N), 'bytes')
record('fillPairsPerSec', `PutStart+PutEnd pairs/s while filling to ${N.toLocaleString()}`, Math.round(N / (fillMs / 1000)), 'pairs/s')

for (const callers of [1, 16, 64]) {
  record(`getPerSec_${callers}`, `GetReplicaList/s at ${N.toLocaleString()} objects, ${callers} caller(s)`, Math.round(getThroughput(svc, keys, callers, 300_000)), 'calls/s')
}
record('batchGetKeysPerSec', 'BatchGetReplicaList (128/batch), keys/s', Math.round(batchGetThroughput(svc, keys, 300_000)), 'keys/s')

{
  const t0 = performance.now()
  const hits = svc.queryByRegex('block-000[0-9a-f]{3}7f$').length
  record('queryByRegexMs', `QueryByRegex over ${N.toLocaleString()} keys (${hits} hits)`, Math.round(performance.now() - t0), 'ms')
}
{
  const t0 = performance.now()
  let pages = 0
  let after: string | undefined
  let count = 0
  for (;;) {
    const page = svc.listKeys({after, limit: 10_000})
    count += page.keys.length
    pages++
    if (page.next === undefined) break
    after = page.next
  }
  record('listKeysAllMs', `ListKeys, every key in pages of 10 000 (${count} keys, ${pages} pages)`, Math.round(performance.now() - t0), 'ms')
}

// Eviction at N objects: every lease expired, used = 96 % > watermark 95 %.
clock.t += 60_000
{
  let maxTick = 0
  let ticks = 0
  const before = svc.stats().keys
  do {
    clock.t += 10
    const t0 = performance.now()
    svc.tick({loopLagMs: 0})
    const ms = performance.now() - t0
    if (ms > maxTick) maxTick = ms
    ticks++
  } while ((svc.metrics().evictionInProgress || svc.stats().used / svc.stats().capacity > 0.95) && ticks < 2000)
  const evicted = before - svc.stats().keys
  record('maxTickMs', `longest tick() during eviction at ${N.toLocaleString()} objects (${evicted} evicted in ${ticks} ticks)`, Number(maxTick.toFixed(2)), 'ms')
}
{
  // Fill the pool to the brim, then keep putting: every PutStart has to evict synchronously.
  let i = 0
  try {
    for (; i < N; i++) {
      svc.putStart({clientId: 'writer', requestId: `f${i}`, key: `fill/${i}`, size: objectSize})
      svc.putEnd({clientId: 'writer', key: `fill/${i}`})
      if (svc.metrics().syncEvictions > 0) break
    }
  } catch {
    // full
  }
  clock.t += 60_000
  const t0 = performance.now()
  const puts = 20_000
  const lat = new Float64Array(puts)
  for (let j = 0; j < puts; j++) {
    const a = performance.now()
    svc.putStart({clientId: 'writer', requestId: `e${j}`, key: `evict/${j}`, size: objectSize})
    lat[j] = performance.now() - a
    svc.putEnd({clientId: 'writer', key: `evict/${j}`})
  }
  const rate = puts / ((performance.now() - t0) / 1000)
  lat.sort()
  record('fullPoolPutStartP99Ms', 'PutStart p99 latency into a full pool', Number(lat[Math.floor(puts * 0.99)].toFixed(3)), 'ms')
  record('fullPoolPutPairsPerSec', 'PutStart+PutEnd pairs/s into a full pool (sync eviction)', Math.round(rate), 'pairs/s')
  record('maxSyncEvictMs', 'longest synchronous eviction in one PutStart', Number(svc.metrics().maxSyncEvictMs.toFixed(2)), 'ms')
}
record('totalSeconds', 'bench duration', Math.round((performance.now() - started) / 1000), 's')

if (json) {
  console.log(JSON.stringify({objects: N, node: process.version, ...result}))
} else {
  const w = Math.max(...rows.map((r) => r.name.length))
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${r.value.toLocaleString('en-US').padStart(12)} ${r.unit}`)
}
