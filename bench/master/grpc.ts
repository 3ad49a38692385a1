// Master control-plane throughput over gRPC, the master in its own process (as in production):
// PutStart+PutEnd pairs/s and GetReplicaList/s with 1, 16 and 64 concurrent callers, and the batch
// rpcs with 128 keys per call. Baseline in the same run: the same calls on an in-process
// MasterService, without gRPC.
//   node --import tsx bench/master/grpc.ts [--seconds 2] [--only TEXT] [--callers N] [--json]
// Each row also reports the CPU time per key (or call) of the client and of the master process,
// which depends less on what else runs on the machine than the rates do. `--only Batch` runs the
// rows whose name contains the text, `--callers 16` only that many concurrent callers.
// MOONCAKE_PROTO_CODEC=reflection runs both processes with proto-loader's reflection codec instead
// of the compiled one (and without the batch put wire paths of grpc-batch-wire.ts), and
// `--no-coalesce` sends every batch call as its own rpc.
// (`--serve` is the child's mode: it runs the master and prints its address.)
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import os from 'node:os'
import {performance} from 'node:perf_hooks'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {MasterService} from '../../src/lib/master/service.js'
import {startMasterServer} from '../../src/lib/master/server.js'
import {enableLinearRegex} from '../../src/lib/regex-engine.js'

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(`--${name}`)
const value = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}

const SEGMENT_BYTES = 2 ** 50 // the master only does arithmetic on it: no memory behind it
const OBJECT_BYTES = 4096
const BATCH = 128
const callersAt = args.indexOf('--callers')
const CONCURRENCY = callersAt >= 0 ? [Number(args[callersAt + 1])] : [1, 16, 64]
const seconds = value('seconds', 2)
const onlyAt = args.indexOf('--only')
const only = onlyAt >= 0 ? args[onlyAt + 1]! : ''

async function serve(): Promise<void> {
  enableLinearRegex()
  // The bench's client never pings: keep its segment alive for the whole run.
  const master = await startMasterServer({port: 0, metricsPort: -1, clientTtlMs: 3_600_000})
  process.stdout.write(`${master.address}\n`)
  process.once('SIGTERM', () => void master.close().then(() => process.exit(0)))
}

interface Row {
  op: string
  concurrency: number
  /** Keys (or calls, for single-key ops) per second. */
  perSecond: number
  p50Ms: number
  p99Ms: number
  calls: number
  /** CPU time of the client process per key (or call), µs. */
  clientCpuUs: number
  /** CPU time of the master process per key (or call), µs (0 for in-process rows). */
  masterCpuUs: number
}

/** The master child's pid, to read its CPU time from /proc (Linux). */
let masterPid: number | undefined

function masterCpuMs(): number {
  if (masterPid === undefined) return 0
  try {
    // Fields 14 and 15 of /proc/PID/stat (after the parenthesised command name): utime, stime in ticks.
    const stat = readFileSync(`/proc/${masterPid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return 0
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** Runs `op` in `concurrency` loops for the configured time; `op` returns how many keys it did. */
async function measure(op: string, concurrency: number, fn: (worker: number, i: number) => Promise<number>): Promise<Row | undefined> {
  if (only !== '' && !op.includes(only)) return undefined
  const latencies: number[] = []
  let keys = 0
  const cpu0 = process.cpuUsage()
  const master0 = masterCpuMs()
  const t0 = performance.now()
  const until = t0 + seconds * 1000
  await Promise.all(
    Array.from({length: concurrency}, async (_, worker) => {
      for (let i = 0; performance.now() < until; i++) {
        const start = performance.now()
        // Not `keys += await fn()`: that reads `keys` before the await and loses other workers' counts.
        const done = await fn(worker, i)
        keys += done
        latencies.push(performance.now() - start)
      }
    }),
  )
  const elapsed = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const masterMs = masterCpuMs() - master0
  latencies.sort((a, b) => a - b)
  return {
    op,
    concurrency,
    perSecond: Math.round(keys / elapsed),
    p50Ms: +quantile(latencies, 0.5).toFixed(3),
    p99Ms: +quantile(latencies, 0.99).toFixed(3),
    calls: latencies.length,
    clientCpuUs: +((cpu.user + cpu.system) / keys).toFixed(2),
    masterCpuUs: +((masterMs * 1000) / keys).toFixed(2),
  }
}

function push(rows: Row[], row: Row | undefined): void {
  if (row) rows.push(row)
}

let round = 0
const written: string[] = []

async function grpcRows(client: MasterClient): Promise<Row[]> {
  const rows: Row[] = []
  const clientId = 'bench'
  for (const c of CONCURRENCY) {
    const tag = `r${round++}`
    push(
      rows,
      await measure('PutStart+PutEnd', c, async (w, i) => {
        const key = `${tag}/${w}/${i}`
        await client.putStart({clientId, requestId: key, key, size: OBJECT_BYTES})
        await client.putEnd({clientId, key})
        written.push(key)
        return 1
      }),
    )
    push(
      rows,
      await measure('GetReplicaList', c, async (w, i) => {
        await client.getReplicaList(written[(w * 7919 + i * 104_729) % written.length]!)
        return 1
      }),
    )
  }
  for (const c of CONCURRENCY) {
    const tag = `b${round++}`
    push(
      rows,
      await measure(`BatchPutStart+End x${BATCH}`, c, async (w, i) => {
        const reqs = Array.from({length: BATCH}, (_, j) => {
          const key = `${tag}/${w}/${i}/${j}`
          return {clientId, requestId: key, key, size: OBJECT_BYTES}
        })
        const started = await client.batchPutStart(reqs)
        const ended = await client.batchPutEnd(reqs.map((r) => ({clientId, key: r.key})))
        const bad = [...started, ...ended].find((s) => !s.ok)
        if (bad && !bad.ok) throw new Error(`batch put failed: ${bad.code} ${bad.message}`)
        written.push(reqs[0]!.key)
        return BATCH
      }),
    )
    push(
      rows,
      await measure(`BatchGetReplicaList x${BATCH}`, c, async (w, i) => {
        const base = (w * 7919 + i * 104_729) % written.length
        const keys = Array.from({length: BATCH}, (_, j) => written[(base + j) % written.length]!)
        await client.batchGetReplicaList(keys)
        return BATCH
      }),
    )
  }
  return rows
}

/** The same calls on MasterService directly: what the state machine costs without the wire. */
async function baselineRows(): Promise<Row[]> {
  const service = new MasterService()
  service.mountSegment({clientId: 'b', segment: {id: 'b', name: 'b', endpoints: ['127.0.0.1:1'], size: SEGMENT_BYTES, hostId: 'h'}})
  const keys: string[] = []
  const put = await measure('in-process PutStart+PutEnd', 1, async (_, i) => {
    for (let j = 0; j < 1000; j++) {
      const key = `base/${i}/${j}`
      service.putStart({clientId: 'b', requestId: key, key, size: OBJECT_BYTES})
      service.putEnd({clientId: 'b', key})
      if (j === 0) keys.push(key)
    }
    return 1000
  })
  const get = keys.length === 0 ? undefined : await measure('in-process GetReplicaList', 1, async (_, i) => {
    for (let j = 0; j < 1000; j++) service.getReplicaList(keys[(i + j) % keys.length]!)
    return 1000
  })
  const rows = [put, get].filter((r): r is Row => r !== undefined)
  // Per-call latency is meaningless for the 1000-call loops above.
  for (const row of rows) row.p50Ms = row.p99Ms = 0
  return rows
}

async function main(): Promise<void> {
  // The child inherits node's flags (e.g. --cpu-prof, to profile both processes).
  const execArgv = process.execArgv.includes('tsx') ? process.execArgv : ['--import', 'tsx', ...process.execArgv]
  const child = spawn(process.execPath, [...execArgv, fileURLToPath(import.meta.url), '--serve'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  masterPid = child.pid
  const [address] = (await once(createInterface({input: child.stdout!}), 'line')) as [string]
  const client = await connectMaster({address, timeoutMs: 60_000, coalesceBatches: !flag('no-coalesce')})
  try {
    await client.mountSegment({clientId: 'bench', segment: {id: 'seg', name: 'bench-seg', endpoints: ['127.0.0.1:1'], size: SEGMENT_BYTES, hostId: 'h'}})
    const rows = [...(await grpcRows(client))]
    masterPid = undefined
    rows.push(...(await baselineRows()))
    const result = {
      bench: 'master-grpc',
      node: process.version,
      cpus: os.cpus().length,
      // The figures depend on what else runs: both processes share this machine's cores.
      loadAverage1m: +os.loadavg()[0]!.toFixed(2),
      seconds,
      codec: process.env['MOONCAKE_PROTO_CODEC'] === 'reflection' ? 'reflection' : 'compiled',
      coalesceBatches: !flag('no-coalesce'),
      objectBytes: OBJECT_BYTES,
      batch: BATCH,
      rows,
    }
    if (flag('json')) {
      process.stdout.write(JSON.stringify(result) + '\n')
    } else {
      console.log(
        `master over gRPC (separate process, ${seconds}s per row; single-key rows count calls, batch rows count keys; ${result.cpus} CPUs, load average ${result.loadAverage1m})`,
      )
      console.log(
        `${'op'.padEnd(34)}${'callers'.padStart(8)}${'per s'.padStart(11)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'client µs'.padStart(11)}${'master µs'.padStart(11)}`,
      )
      for (const r of rows) {
        console.log(
          `${r.op.padEnd(34)}${String(r.concurrency).padStart(8)}${r.perSecond.toLocaleString('en-US').padStart(11)}${r.p50Ms.toFixed(2).padStart(9)}${r.p99Ms.toFixed(2).padStart(9)}${r.clientCpuUs.toFixed(2).padStart(11)}${r.masterCpuUs.toFixed(2).padStart(11)}`,
        )
      }
    }
  } finally {
    client.close()
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
}

if (flag('serve')) await serve()
else await main()
