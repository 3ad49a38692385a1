/**
 * The chaos engine behind bench/chaos/run.ts and test/hardening/chaos.test.ts: a master (own
 * process, records why each object was erased), segment owners (own processes, fixed names and
 * ports; owner 0 reaches the master through a proxy), worker processes of MooncakeClients (they
 * reach the master through another proxy) writing ledgers; a seeded schedule of faults; then the
 * invariants (see docs/reliability.md, "Chaos").
 */
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {freePort, killAll, startFixture, type Fixture} from '../../test/helpers/processes.js'
import {auditSpace, commonResult, killOwner, MASTER_OPTIONS, prepareRun, restartOwner, runSchedule, Workload, type RunOptions, type ScheduledFault} from './common.js'
import {MASTER, READER, sleep, startOwner, type OwnerFixture} from './lib.js'
import {ChaosProxy} from './proxy.js'
import {prng} from './values.js'

export type FaultKind = 'kill-owner' | 'kill-client' | 'cut-master' | 'drop-master' | 'delay-master' | 'partition-owner'
export type Fault = ScheduledFault<FaultKind>

export interface ChaosOptions extends RunOptions {
  /** Per-operation deadline of the clients. @default 5_000 */
  timeoutMs?: number
  /** A fixed schedule; otherwise one is drawn from the seed. */
  schedule?: Fault[]
  /** Mean ms between faults of the drawn schedule. @default 4_000 */
  faultEveryMs?: number
}

export interface Violation {
  kind: string
  key?: string
  detail: string
}

export interface ChaosResult {
  options: Omit<ChaosOptions, 'log'>
  faults: Array<Fault & {done: string}>
  workerRuns: number
  /** Outcomes reported by the workers that finished (SIGKILLed ones report none). */
  counts: Record<string, number>
  /** Outcomes of every operation in the ledgers (all generations; INTERRUPTED = cut by SIGKILL). */
  ledgerCounts: Record<string, number>
  keys: number
  /** Operations whose result was checked against the ledger (acknowledged puts/upserts/removes, gets). */
  checkedOps: number
  verifiedGets: number
  finalCheck: Record<string, number>
  audit: Record<string, unknown>
  erasures: Record<string, number>
  violations: Violation[]
  longestOpMs: number
  elapsedMs: number
}

export function drawSchedule(seed: number, durationMs: number, owners: number, workers: number, everyMs: number): Fault[] {
  const rand = prng(seed ^ 0x5eed)
  const kinds: FaultKind[] = ['kill-owner', 'kill-owner', 'kill-client', 'cut-master', 'drop-master', 'delay-master', 'partition-owner']
  const out: Fault[] = []
  for (let t = 2000 + rand() * everyMs; t < durationMs - 3000; t += everyMs * (0.5 + rand())) {
    const kind = kinds[Math.floor(rand() * kinds.length)]
    const f: Fault = {at: Math.round(t), kind}
    if (kind === 'kill-owner') Object.assign(f, {target: Math.floor(rand() * owners), forMs: Math.round(300 + rand() * 2500)})
    if (kind === 'kill-client') f.target = Math.floor(rand() * workers)
    if (kind === 'drop-master') f.forMs = Math.round(500 + rand() * 2500)
    if (kind === 'delay-master') Object.assign(f, {forMs: Math.round(1000 + rand() * 3000), delayMs: Math.round(20 + rand() * 300)})
    if (kind === 'partition-owner') f.forMs = Math.round(500 + rand() * 3000)
    out.push(f)
  }
  return out
}

interface LedgerRec {
  t: number
  c: number
  op: 'put' | 'get' | 'upsert' | 'remove'
  key: string
  v?: number
  size?: number
  s: 'begin' | 'ok' | 'fail' | 'bad'
  code?: string
  why?: string
}

export type Erasures = Record<string, Array<[number, 'evict' | 'segment' | 'other']>>

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const {log, owners, ownerSize, workersN, timeoutMs} = prepareRun(opts, 5000)
  const schedule = opts.schedule ?? drawSchedule(opts.seed, opts.durationMs, owners, workersN, opts.faultEveryMs ?? 4000)
  const started = Date.now()
  const violations: Violation[] = []
  const proxies: ChaosProxy[] = []
  try {
    const master = (await startFixture(MASTER, [JSON.stringify(MASTER_OPTIONS)])) as Fixture<{address: string}>
    const direct = master.ready.address
    const clientProxy = await ChaosProxy.start(direct)
    const ownerProxy = await ChaosProxy.start(direct)
    proxies.push(clientProxy, ownerProxy)
    const ownerPorts = await Promise.all(Array.from({length: owners}, () => freePort()))
    const ownerAddr = (i: number) => (i === 0 ? ownerProxy.address : direct)
    const ownerProcs: Array<OwnerFixture | null> = await Promise.all(ownerPorts.map((port, i) => startOwner(ownerAddr(i), ownerSize, `chaos-${i}`, port)))
    const restart = (i: number) =>
      restartOwner(i, 20_000, 200, async () => {
        ownerProcs[i] = await startOwner(ownerAddr(i), ownerSize, `chaos-${i}`, ownerPorts[i])
      }, violations)

    const workload = new Workload(opts, timeoutMs, {masterAddress: clientProxy.address})
    await workload.startAll(workersN)
    log(`chaos: master ${direct}, ${owners} owners, ${workersN} workers, ${schedule.length} faults scheduled`)

    const faults = await runSchedule(schedule, {workload, log, name: 'chaos', errorChars: 200}, async (f) => {
      switch (f.kind) {
        case 'kill-owner':
          return killOwner(ownerProcs, f, restart)
        case 'kill-client':
          return workload.killClient(f.target ?? 0)
        case 'cut-master':
          return `${clientProxy.cut()} client connections and ${ownerProxy.cut()} owner connections reset`
        case 'drop-master':
          clientProxy.dropping = true
          await sleep(f.forMs ?? 1000)
          clientProxy.dropping = false
          return `clients' traffic dropped for ${f.forMs} ms, then connections reset (${clientProxy.cut()})`
        case 'delay-master':
          clientProxy.delayMs = f.delayMs ?? 100
          await sleep(f.forMs ?? 1000)
          clientProxy.delayMs = 0
          return `delayed ${f.delayMs} ms per chunk for ${f.forMs} ms`
        case 'partition-owner':
          ownerProxy.dropping = true
          await sleep(f.forMs ?? 1000)
          ownerProxy.dropping = false
          return `owner 0 cut off from the master for ${f.forMs} ms (${ownerProxy.cut()} connections reset after)`
      }
    })
    const totals = await workload.finish(violations)
    // Heal, let zombie puts of killed clients expire and the master sweep.
    clientProxy.dropping = ownerProxy.dropping = false
    clientProxy.delayMs = 0
    for (let i = 0; i < owners; i++) if (ownerProcs[i] === null) await restart(i)
    await sleep(MASTER_OPTIONS.putStartReleaseTimeoutMs + 2500)

    const erasureFile = path.join(opts.dir, 'erasures.json')
    await master.command({cmd: 'erasures', file: erasureFile})
    const erasures = JSON.parse(readFileSync(erasureFile, 'utf8')) as Erasures
    const verify = await checkLedgers(opts.dir, erasures, {masterAddress: direct}, violations)
    const audit = await auditSpace(master, 'master', violations)
    for (const o of ownerProcs) await o?.kill('SIGTERM')
    await master.kill('SIGTERM')
    return {
      options: {...opts, log: undefined} as Omit<ChaosOptions, 'log'>,
      faults,
      ...commonResult({workload, totals, verify, audit, erasures, violations, started}),
    }
  } finally {
    for (const p of proxies) await p.close().catch(() => {})
    await killAll()
  }
}

const ABSENT = 0

/**
 * Replays every ledger: per key, the set of values the key may hold (versions, 0 = absent) given
 * what was acknowledged; failed or interrupted operations widen it. A get or final read must land
 * in the set, or be a missing key whose disappearance the master recorded as an eviction or a
 * segment loss after the last acknowledged write.
 */
export async function checkLedgers(
  dir: string,
  erasures: Erasures,
  /** How the final reader reaches the master: {masterAddress} or {etcd, clusterId}. */
  target: {masterAddress?: string; etcd?: string[]; clusterId?: string},
  violations: Violation[],
) {
  interface KeyState {
    may: Set<number>
    /** When the key last became definitely present (an acknowledged write or read). */
    since: number
    pending?: LedgerRec
  }
  const keys = new Map<string, KeyState>()
  let checkedOps = 0
  /** Outcomes of every operation in the ledgers, SIGKILLed generations included. */
  const ledgerCounts: Record<string, number> = {}
  const legitimateLoss = (key: string, since: number): string | undefined => {
    for (const [t, r] of erasures[key] ?? []) if (t >= since - 5 && r !== 'other') return r
    return undefined
  }
  const missing = (key: string, st: KeyState, at: number, what: string) => {
    if (st.may.has(ABSENT)) return
    const why = legitimateLoss(key, st.since)
    if (why === undefined) {
      const e = (erasures[key] ?? []).map(([t, r]) => `${r}@${t}`).join(',')
      violations.push({kind: 'acknowledged-value-lost', key, detail: `${what} at ${at}: missing; acknowledged since ${st.since}, may be ${[...st.may].join('|')}; master erasures: ${e || 'none'}`})
    }
  }
  const files = readdirSync(dir).filter((f) => f.startsWith('ledger-')).sort()
  for (const f of files) {
    const lines = readFileSync(path.join(dir, f), 'utf8').split('\n')
    for (const line of lines) {
      if (!line) continue
      let r: LedgerRec
      try {
        r = JSON.parse(line) as LedgerRec
      } catch {
        continue // a line torn by SIGKILL
      }
      let st = keys.get(r.key)
      if (st === undefined) keys.set(r.key, (st = {may: new Set([ABSENT]), since: 0}))
      if (r.s === 'begin') {
        st.pending = r
        continue
      }
      const began = st.pending?.t ?? r.t
      st.pending = undefined
      const outcome = `${r.op}:${r.s === 'ok' ? 'OK' : r.s === 'bad' ? 'BAD' : r.code}`
      ledgerCounts[outcome] = (ledgerCounts[outcome] ?? 0) + 1
      const write = r.op === 'put' || r.op === 'upsert'
      if (r.s === 'ok') {
        checkedOps++
        if (write) st.may = new Set([r.v!])
        else if (r.op === 'remove') st.may = new Set([ABSENT])
        else {
          if (!st.may.has(r.v!)) violations.push({kind: 'get-returned-unexpected-version', key: r.key, detail: `got version ${r.v}, may be ${[...st.may].join('|')}`})
          st.may = new Set([r.v!])
        }
        // A loss (eviction, segment gone) is legitimate from the moment this operation began: a
        // segment may die while a write is in flight and its ack is already on the wire.
        if (!st.may.has(ABSENT)) st.since = began
      } else if (r.s === 'bad') {
        checkedOps++
        st.may.add(r.v ?? -1)
      } else if (r.code === 'OBJECT_NOT_FOUND' && (r.op === 'get' || r.op === 'remove')) {
        // (A put or upsert failing OBJECT_NOT_FOUND lost its in-progress object, e.g. at PutEnd
        // after a failover: a failed write, below, not an observation that the key is absent.)
        checkedOps++
        missing(r.key, st, r.t, `${r.op}`)
        st.may = new Set([ABSENT])
      } else if (r.code === 'OBJECT_ALREADY_EXISTS' && r.op === 'put') {
        checkedOps++
        // Present: keep what it may be (an earlier unacknowledged put may have landed).
        if (st.may.size > 1) st.may.delete(ABSENT)
      } else if (r.op === 'upsert') {
        // UpsertStart makes the old value unreadable at once (as the original); a failed upsert
        // revokes, so the key may now hold the new value or nothing.
        st.may.add(r.v!)
        st.may.add(ABSENT)
      } else if (write) st.may.add(r.v!)
      else if (r.op === 'remove') st.may.add(ABSENT)
    }
    // Operations cut short by SIGKILL: unknown outcome.
    for (const st of keys.values()) {
      const p = st.pending
      if (p === undefined) continue
      ledgerCounts[`${p.op}:INTERRUPTED`] = (ledgerCounts[`${p.op}:INTERRUPTED`] ?? 0) + 1
      if (p.op === 'put') st.may.add(p.v!)
      else if (p.op === 'upsert') st.may.add(p.v!).add(ABSENT)
      else if (p.op === 'remove') st.may.add(ABSENT)
      st.pending = undefined
    }
  }

  // Final read of every key ever touched.
  const final: Record<string, number> = {intact: 0, removed: 0, evicted: 0, 'segment-lost': 0, 'uncertain-absent': 0, unreadable: 0}
  const keysFile = path.join(dir, 'final-keys.json')
  const outFile = path.join(dir, 'final-reads.json')
  writeFileSync(keysFile, JSON.stringify([...keys.keys()]))
  const reader = await startFixture(READER, [JSON.stringify({masterAddress: '', ...target, keysFile, outFile})], {timeoutMs: 120_000})
  await Promise.race([reader.exited, sleep(5000)])
  const reads = JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, number | string>
  for (const [key, st] of keys) {
    const r = reads[key]
    if (typeof r === 'string') {
      if (r.startsWith('bad')) violations.push({kind: 'corrupt-final-read', key, detail: r})
      else {
        final.unreadable++
        violations.push({kind: 'final-read-failed', key, detail: r})
      }
      continue
    }
    const got = r
    checkedOps++
    if (st.may.has(got)) {
      if (got !== ABSENT) final.intact++
      else if (st.may.size === 1) final.removed++
      else final['uncertain-absent']++
    } else if (got === ABSENT) {
      const why = legitimateLoss(key, st.since)
      if (why === 'evict') final.evicted++
      else if (why === 'segment') final['segment-lost']++
      else missing(key, st, Date.now(), 'final read')
    } else violations.push({kind: 'final-read-unexpected-version', key, detail: `got version ${got}, may be ${[...st.may].join('|')}`})
  }
  return {checkedOps, final, keys: keys.size, ledgerCounts}
}
