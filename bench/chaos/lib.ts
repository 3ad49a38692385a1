/** Small helpers shared by bench/chaos/run.ts and bench/load/run.ts. */
import {startFixture, type Fixture} from '../../test/helpers/processes.js'

export const MiB = 2 ** 20
export const MASTER = 'bench/chaos/master.ts'
export const OWNER = 'test/integration/fixtures/segment-owner.ts'
export const WORKER = 'bench/chaos/worker.ts'
export const READER = 'bench/chaos/reader.ts'

export type OwnerFixture = Fixture<{name: string; endpoints: string[]; pid: number}>

export interface WorkerSummary {
  proc: number
  gen: number
  elapsedMs: number
  counts: Record<string, number>
  errors: Record<string, Record<string, number>>
  lat: Record<string, number[]>
  violations: Array<Record<string, unknown>>
  longestOpMs: number
  verifiedGets: number
  bytesVerified: number
}

export function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`)
  if (i >= 0) return argv[i + 1]
  const eq = argv.find((a) => a.startsWith(`--${name}=`))
  return eq?.slice(name.length + 3)
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length
  if (n < 2) return 0
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my)
    den += (xs[i] - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

export async function startOwner(masterAddress: string, size: number, name?: string, port?: number): Promise<OwnerFixture> {
  return startFixture(OWNER, [JSON.stringify({masterAddress, size, name, port, pingIntervalMs: 200})], {timeoutMs: 30_000})
}

/** Starts a worker process and returns it with a promise of its summary line. */
export async function startWorker(options: Record<string, unknown>): Promise<{fixture: Fixture; summary: Promise<WorkerSummary | null>}> {
  const fixture = await startFixture(WORKER, [JSON.stringify(options)], {timeoutMs: 60_000})
  let resolveSummary!: (s: WorkerSummary | null) => void
  const summary = new Promise<WorkerSummary | null>((r) => (resolveSummary = r))
  let buf = ''
  fixture.child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      if (line.startsWith('{"summary"')) resolveSummary((JSON.parse(line) as {summary: WorkerSummary}).summary)
    }
  })
  void fixture.exited.then(() => setTimeout(() => resolveSummary(null), 100))
  return {fixture, summary}
}

export function mergeCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
