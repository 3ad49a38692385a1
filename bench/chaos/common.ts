/**
 * What the plain (chaos.ts) and the HA (ha.ts) chaos engines do alike: the master's timeouts, the
 * worker processes and their summaries, the fault timers, owner kills and restarts, the final
 * space audit and the part of the result both report. Each engine keeps only its own topology
 * and faults.
 */
import {mkdirSync, rmSync} from 'node:fs'
import path from 'node:path'

import type {Fixture} from '../../test/helpers/processes.js'
import type {ChaosResult, checkLedgers, Violation} from './chaos.js'
import {mergeCounts, MiB, sleep, startWorker, type WorkerSummary} from './lib.js'

/** Master timeouts short enough that dead clients and zombie puts are swept within a short run. */
export const MASTER_OPTIONS = {
  clientTtlMs: 1500,
  leaseTtlMs: 2000,
  putStartDiscardTimeoutMs: 2000,
  putStartReleaseTimeoutMs: 3000,
}

/** The options both engines take. */
export interface RunOptions {
  durationMs: number
  seed: number
  /** Segment owner processes. @default 3 */
  owners?: number
  /** Each owner's segment. @default 24 */
  ownerMiB?: number
  /** Worker processes. @default 3 */
  workers?: number
  /** MooncakeClients per worker. @default 2 */
  clientsPerWorker?: number
  /** @default 24 */
  keysPerClient?: number
  /** Value sizes, bytes. @default 64 */
  minSize?: number
  /** @default 2 MiB */
  maxSize?: number
  /** Per-operation deadline of the clients (default: the engine's). */
  timeoutMs?: number
  /** Ledgers, erasure logs and final reads go here (emptied first). */
  dir: string
  /** @default console.error */
  log?: (line: string) => void
}

/** The options with their defaults (timeoutMs: the engine's), once `dir` is emptied. */
export function prepareRun(opts: RunOptions, defaultTimeoutMs: number) {
  rmSync(opts.dir, {recursive: true, force: true})
  mkdirSync(opts.dir, {recursive: true})
  return {
    log: opts.log ?? ((l: string) => console.error(l)),
    owners: opts.owners ?? 3,
    ownerSize: (opts.ownerMiB ?? 24) * MiB,
    workersN: opts.workers ?? 3,
    timeoutMs: opts.timeoutMs ?? defaultTimeoutMs,
  }
}

interface WorkerRun {
  fixture: Fixture
  summary: Promise<WorkerSummary | null>
  gen: number
  deadline: number
}

/**
 * The worker processes of a run: one per `proc`, and a new generation of it after a kill-client;
 * each writes its ledger into the run's dir and runs until the workload's end.
 */
export class Workload {
  /** When the workload began: reset once every first generation is up. */
  start = Date.now()
  /** Worker processes started, all generations. */
  runs = 0
  private readonly base: Record<string, unknown>
  private readonly summaries: Promise<WorkerSummary | null>[] = []
  private readonly current: WorkerRun[] = []

  /** `reach`: how the workers find the master ({masterAddress} or the HA fields). */
  constructor(
    private readonly opts: RunOptions,
    private readonly timeoutMs: number,
    reach: Record<string, unknown>,
  ) {
    this.base = {
      ...reach,
      seed: opts.seed,
      clients: opts.clientsPerWorker ?? 2,
      keysPerClient: opts.keysPerClient ?? 24,
      minSize: opts.minSize ?? 64,
      maxSize: opts.maxSize ?? 2 * MiB,
      timeoutMs,
      stagingBytes: 4 * MiB,
    }
  }

  /** Starts generation 0 of `n` workers, then the workload's clock. */
  async startAll(n: number): Promise<void> {
    for (let p = 0; p < n; p++) await this.launch(p, 0)
    this.start = Date.now()
  }

  private async launch(proc: number, gen: number): Promise<void> {
    const durationMs = Math.max(1000, this.opts.durationMs - (Date.now() - this.start))
    const w = await startWorker({...this.base, proc, gen, durationMs, ledger: path.join(this.opts.dir, `ledger-p${proc}-g${gen}.jsonl`)})
    this.runs++
    this.current[proc] = {...w, gen, deadline: Date.now() + durationMs + this.timeoutMs + 15_000}
    this.summaries.push(w.summary)
  }

  /** The kill-client fault: SIGKILL of worker `p`, and its next generation unless the run is nearly over. */
  async killClient(p: number): Promise<string> {
    const w = this.current[p]
    await w.fixture.kill('SIGKILL')
    if (Date.now() - this.start >= this.opts.durationMs - 2000) return 'killed near the end, not restarted'
    await this.launch(p, w.gen + 1)
    return `restarted as gen ${w.gen + 1}`
  }

  /**
   * Waits for every worker (the last generation of each must finish within its deadline: a hung
   * or crashed one is a violation) and adds up what they reported; theirs are added to `violations`.
   */
  async finish(violations: Violation[]): Promise<{counts: Record<string, number>; longestOpMs: number; verifiedGets: number}> {
    for (let p = 0; p < this.current.length; p++) {
      for (;;) {
        const w = this.current[p]
        const s = await Promise.race([w.summary, sleep(Math.max(0, w.deadline - Date.now())).then(() => 'hung' as const)])
        if (w !== this.current[p]) continue
        if (s === 'hung') {
          violations.push({kind: 'client-hung', detail: `worker ${p} gen ${w.gen} did not finish by its deadline`})
          await w.fixture.kill('SIGKILL')
        } else if (s === null) {
          const e = await w.fixture.exited
          violations.push({kind: 'client-crashed', detail: `worker ${p} gen ${w.gen} exited (code ${e.code}, signal ${e.signal}) without a summary: ${w.fixture.stderr().slice(-500)}`})
        }
        break
      }
    }
    const counts: Record<string, number> = {}
    let longestOpMs = 0
    let verifiedGets = 0
    for (const s of await Promise.all(this.summaries)) {
      if (s === null) continue
      mergeCounts(counts, s.counts)
      longestOpMs = Math.max(longestOpMs, s.longestOpMs)
      verifiedGets += s.verifiedGets
      for (const v of s.violations) violations.push({kind: String(v.kind), key: v.key as string | undefined, detail: JSON.stringify(v)})
    }
    return {counts, longestOpMs, verifiedGets}
  }
}

/** A scheduled fault: its kind, when, and its target and duration where it has them. */
export interface ScheduledFault<K extends string> {
  /** ms after the start of the workload. */
  at: number
  kind: K
  /** Owner or worker index. */
  target?: number
  /** How long a drop, delay, partition or pause lasts, or how long a killed process stays down. */
  forMs?: number
  delayMs?: number
}

/**
 * Runs every fault of `schedule` at its time after `workload.start` (concurrently: one may still
 * be under way when the next is due), each by `apply`, which says what it did; an error is what it
 * did too. Resolves once all are done, with each fault and its outcome in the order they ended.
 */
export async function runSchedule<F extends ScheduledFault<string>>(
  schedule: readonly F[],
  o: {workload: Workload; log: (line: string) => void; /** Log prefix. */ name: string; /** How much of an error to keep. */ errorChars: number},
  apply: (f: F) => Promise<string>,
): Promise<Array<F & {done: string}>> {
  const faults: Array<F & {done: string}> = []
  await Promise.all(
    schedule.map(async (f) => {
      await sleep(Math.max(0, o.workload.start + f.at - Date.now()))
      let done: string
      try {
        done = await apply(f)
      } catch (err) {
        done = `error: ${String(err).slice(0, o.errorChars)}`
      }
      faults.push({...f, done})
      o.log(`${o.name}: t=${((Date.now() - o.workload.start) / 1000).toFixed(1)}s ${f.kind}${f.target !== undefined ? ` #${f.target}` : ''}: ${done}`)
    }),
  )
  return faults
}

/** The kill-owner fault: SIGKILL of owner `i` (unless already down), `forMs` down, then `restart`. */
export async function killOwner(
  procs: Array<{kill(signal: NodeJS.Signals): Promise<unknown>} | null>,
  f: ScheduledFault<string>,
  restart: (i: number) => Promise<string>,
  onDown?: (i: number) => void,
): Promise<string> {
  const i = f.target ?? 0
  const o = procs[i]
  if (o === null) return 'already down'
  procs[i] = null
  onDown?.(i)
  await o.kill('SIGKILL')
  await sleep(f.forMs ?? 1000)
  return restart(i)
}

/**
 * Tries `start` for owner `i` every 300 ms for `withinMs`: its name stays taken until the master
 * drops the dead incarnation. Never up again is a violation.
 */
export async function restartOwner(i: number, withinMs: number, errorChars: number, start: () => Promise<void>, violations: Violation[]): Promise<string> {
  const deadline = Date.now() + withinMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      await start()
      return 'restarted'
    } catch (err) {
      last = String(err).slice(0, errorChars)
      await sleep(300)
    }
  }
  violations.push({kind: 'owner-restart-failed', detail: `chaos-${i}: ${last}`})
  return `restart failed: ${last}`
}

export type Audit = Record<string, unknown> & {stats: {used: number}; liveBytesAligned: number; processing: number}

/** The master's audit; space it counts as used beyond its live replicas is a leak (`who` names the master). */
export async function auditSpace(master: Fixture<unknown>, who: string, violations: Violation[]): Promise<Audit> {
  const audit = await master.command<Audit>({cmd: 'audit'}, 30_000)
  if (audit.stats.used !== audit.liveBytesAligned) {
    violations.push({kind: 'space-leak', detail: `${who} used ${audit.stats.used} bytes, live memory replicas ${audit.liveBytesAligned} (8-byte aligned; ${String(audit.liveBytes)} raw), ${audit.processing} replicas not COMPLETE`})
  }
  return audit
}

/** The part of the result both engines report, from what the workers, the ledgers and the master said. */
export function commonResult(r: {
  workload: Workload
  totals: Awaited<ReturnType<Workload['finish']>>
  verify: Awaited<ReturnType<typeof checkLedgers>>
  audit: Audit
  erasures: Record<string, Array<[number, string]>>
  violations: Violation[]
  started: number
}): Omit<ChaosResult, 'options' | 'faults'> {
  const erasureCounts: Record<string, number> = {}
  for (const list of Object.values(r.erasures)) for (const [, reason] of list) erasureCounts[reason] = (erasureCounts[reason] ?? 0) + 1
  return {
    workerRuns: r.workload.runs,
    counts: r.totals.counts,
    ledgerCounts: r.verify.ledgerCounts,
    keys: r.verify.keys,
    checkedOps: r.verify.checkedOps,
    verifiedGets: r.totals.verifiedGets + r.verify.final.intact,
    finalCheck: r.verify.final,
    audit: r.audit,
    erasures: erasureCounts,
    violations: r.violations,
    longestOpMs: r.totals.longestOpMs,
    elapsedMs: Date.now() - r.started,
  }
}
