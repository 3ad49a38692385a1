/**
 * The HA chaos engine behind `bench/chaos/run.ts --ha` and test/hardening/chaos-ha.test.ts: a real
 * etcd, three masters in the election (own processes, bench/chaos/master.ts with --etcd; each
 * advertises a userspace proxy in front of it, so clients' and owners' connections can be cut or
 * delayed), segment owners and worker processes that find the leader through etcd, a seeded
 * schedule of faults that adds master faults (SIGKILL of the leader or of a standby and a restart,
 * SIGSTOP/SIGCONT of the leader, the leader cut off from etcd while clients still reach it: each
 * master reaches etcd through its own proxy) to the owner/client/connection faults, then the invariants of the
 * plain chaos run (checkLedgers) plus: after every leader kill or pause a leader serves again
 * within `failoverBoundMs`, and no master crashed by itself. See docs/reliability.md, "HA chaos".
 */
import {appendFileSync, readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {startEtcd, type EtcdServer} from '../../test/helpers/etcd.js'
import {freePort, killAll, startFixture, type Fixture} from '../../test/helpers/processes.js'
import {checkLedgers, type ChaosResult, type Erasures, type Violation} from './chaos.js'
import {auditSpace, commonResult, killOwner, MASTER_OPTIONS, prepareRun, restartOwner, runSchedule, Workload, type RunOptions, type ScheduledFault} from './common.js'
import {connectHaMaster} from './ha-connect.js'
import {MASTER, sleep} from './lib.js'
import {ChaosProxy} from './proxy.js'
import {prng} from './values.js'

export type HaFaultKind = 'kill-leader' | 'kill-standby' | 'pause-leader' | 'isolate-leader' | 'kill-owner' | 'kill-client' | 'cut-master' | 'delay-master'
export type HaFault = ScheduledFault<HaFaultKind>

export interface HaChaosOptions extends RunOptions {
  /** Per-operation deadline of the clients. @default 8_000 */
  timeoutMs?: number
  /** Lease TTL of the leader key (whole seconds). @default 2_000 */
  haLeaseTtlMs?: number
  /** A leader must serve again (a call through etcd answered) this long after a kill or pause. @default 3 x haLeaseTtlMs */
  failoverBoundMs?: number
  schedule?: HaFault[]
  /** Mean ms between faults of the drawn schedule. @default 5_000 */
  faultEveryMs?: number
}

export interface Failover {
  fault: 'kill-leader' | 'pause-leader' | 'isolate-leader'
  at: number
  /** The old leader's index, and the index of the master serving afterwards. */
  from: number
  to: number | null
  /** Until a master other than the old one reports itself leader on /health (null: it never did, e.g. a short pause). */
  electedMs: number | null
  /** Until a call through etcd (ExistKey, what every client does after a failover) succeeded. */
  servedMs: number | null
  /** Until the first write that began after the fault was acknowledged (from the ledgers). */
  firstWriteMs?: number | null
}

export interface HaChaosResult extends Omit<ChaosResult, 'options' | 'faults'> {
  options: Omit<HaChaosOptions, 'log'>
  faults: Array<HaFault & {done: string}>
  failovers: Failover[]
  masterRestarts: number
  /**
   * Segments a new leader restored but dropped because their owner did not re-mount within
   * clientTtl: with the owner down at the time (its data died with it: a legitimate loss) or alive
   * (its keys count as lost without reason: an acknowledged one missing is a violation).
   */
  restoreExpired: {ownerDown: number; ownerAlive: number; keysOwnerAlive: number; details: string[]}
  /** Segments unmounted on a leader (declared dead after clientTtl, ...) while their owner process was alive. */
  unmountsOwnerAlive: string[]
  /** Outcomes of the operations in flight while a leader was being replaced. */
  acrossFailovers: Record<string, number>
}

export function drawHaSchedule(seed: number, durationMs: number, owners: number, workers: number, everyMs: number, ttlMs: number): HaFault[] {
  const rand = prng(seed ^ 0x4a5eed)
  const kinds: HaFaultKind[] = ['kill-leader', 'kill-leader', 'kill-leader', 'pause-leader', 'isolate-leader', 'kill-standby', 'kill-owner', 'kill-owner', 'kill-client', 'cut-master', 'delay-master']
  const out: HaFault[] = []
  for (let t = 2000 + rand() * everyMs; t < durationMs - 4000; t += everyMs * (0.5 + rand())) {
    const kind = kinds[Math.floor(rand() * kinds.length)]
    const f: HaFault = {at: Math.round(t), kind}
    if (kind === 'kill-leader' || kind === 'kill-standby') f.forMs = Math.round(300 + rand() * 3000)
    // Pauses both shorter than the lease (the leader resumes and keeps leading, or steps down) and longer (a failover).
    if (kind === 'pause-leader') f.forMs = Math.round(300 + rand() * (ttlMs + 1500))
    // Cut off from etcd only (clients still reach it): past its deadline it must stop acknowledging.
    if (kind === 'isolate-leader') f.forMs = Math.round(ttlMs + 500 + rand() * 1500)
    if (kind === 'kill-owner') Object.assign(f, {target: Math.floor(rand() * owners), forMs: Math.round(300 + rand() * 2500)})
    if (kind === 'kill-client') f.target = Math.floor(rand() * workers)
    if (kind === 'delay-master') Object.assign(f, {forMs: Math.round(1000 + rand() * 3000), delayMs: Math.round(20 + rand() * 200)})
    out.push(f)
  }
  return out
}

interface MasterSlot {
  port: number
  /** What clients and owners dial (the master's --advertise). */
  proxy: ChaosProxy
  /** The master's only way to etcd (isolate-leader swallows its bytes). */
  etcdProxy: ChaosProxy
  fx: Fixture<{address: string; httpAddress: string; pid: number}> | null
  /** We killed it (a crash is any other exit). */
  expectedExit: boolean
  incarnation: number
}

async function health(httpAddress: string, timeoutMs = 400): Promise<{role: string; ready: boolean} | undefined> {
  try {
    const res = await fetch(`http://${httpAddress}/health`, {signal: AbortSignal.timeout(timeoutMs)})
    return (await res.json()) as {role: string; ready: boolean}
  } catch {
    return undefined
  }
}

export async function runHaChaos(opts: HaChaosOptions): Promise<HaChaosResult> {
  const {log, owners, ownerSize, workersN, timeoutMs} = prepareRun(opts, 8000)
  const ttlMs = opts.haLeaseTtlMs ?? 2000
  const boundMs = opts.failoverBoundMs ?? 3 * ttlMs
  const schedule = opts.schedule ?? drawHaSchedule(opts.seed, opts.durationMs, owners, workersN, opts.faultEveryMs ?? 5000, ttlMs)
  const started = Date.now()
  const violations: Violation[] = []
  const failovers: Failover[] = []
  let masterRestarts = 0
  const slots: MasterSlot[] = []
  let etcd: EtcdServer | undefined
  let probe: Awaited<ReturnType<typeof connectHaMaster>> | undefined
  try {
    etcd = await startEtcd()
    const clusterId = `chaos-${opts.seed}-${process.pid}`
    const ha = {etcd: [etcd.endpoint], clusterId}

    async function startMasterIn(i: number): Promise<void> {
      const s = slots[i]
      const options = {
        ...MASTER_OPTIONS,
        ...ha,
        etcd: [s.etcdProxy.address],
        haLeaseTtlMs: ttlMs,
        port: s.port,
        metricsPort: 0,
        advertise: s.proxy.address,
        erasureLog: path.join(opts.dir, `erasures-m${i}-${s.incarnation++}.jsonl`),
      }
      const deadline = Date.now() + 20_000
      for (;;) {
        try {
          s.fx = (await startFixture(MASTER, [JSON.stringify(options)], {timeoutMs: 30_000, env: {GRPC_NODE_VERBOSITY: 'NONE', MOONCAKE_HA_DEBUG: '1'}})) as MasterSlot['fx']
          s.expectedExit = false
          const fx = s.fx!
          // Role changes and errors of every incarnation, time-stamped, for the report.
          const logFile = path.join(opts.dir, `master-m${i}-${s.incarnation - 1}.log`)
          appendFileSync(logFile, `${Date.now()} started pid ${fx.pid}\n${fx.stderr()}`)
          fx.child.stderr!.on('data', (d: Buffer) => appendFileSync(logFile, `${Date.now()} ${d.toString().trimEnd().replace(/\n/g, `\n${Date.now()} `)}\n`))
          void fx.exited.then((e) => {
            if (s.fx === fx && !s.expectedExit) violations.push({kind: 'master-crashed', detail: `master ${i} exited (code ${e.code}, signal ${e.signal}): ${fx.stderr().slice(-800)}`})
          })
          return
        } catch (err) {
          // The port of a SIGKILLed incarnation can take a moment to be free again.
          if (Date.now() > deadline) throw err
          await sleep(300)
        }
      }
    }
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      slots.push({port, proxy: await ChaosProxy.start(`127.0.0.1:${port}`), etcdProxy: await ChaosProxy.start(etcd.endpoint), fx: null, expectedExit: false, incarnation: 0})
    }
    await Promise.all(slots.map((_, i) => startMasterIn(i)))

    const roles = async () =>
      Promise.all(slots.map(async (s) => (s.fx === null || s.fx.child.exitCode !== null || s.fx.child.signalCode !== null ? undefined : health(s.fx.ready.httpAddress))))
    /** The index of the one serving leader, or undefined (none, or more than one answering, or only process `excludePid`). */
    const leaderIndex = async (excludePid?: number): Promise<number | undefined> => {
      const hs = await roles()
      const ls = hs.map((h, i) => (slots[i].fx?.pid !== excludePid && h?.role === 'leader' && h.ready ? i : -1)).filter((i) => i >= 0)
      return ls.length === 1 ? ls[0] : undefined
    }
    const waitLeader = async (timeout: number): Promise<number | undefined> => {
      const end = Date.now() + timeout
      for (;;) {
        const l = await leaderIndex()
        if (l !== undefined || Date.now() > end) return l
        await sleep(20)
      }
    }
    if ((await waitLeader(15_000)) === undefined) throw new Error('no leader elected among the three masters within 15 s')
    probe = await connectHaMaster({...ha, timeoutMs: 1000, attemptTimeoutMs: 300})

    const ownerPorts = await Promise.all(Array.from({length: owners}, () => freePort()))
    const startOwner = (i: number) =>
      startFixture('bench/chaos/owner.ts', [JSON.stringify({...ha, size: ownerSize, name: `chaos-${i}`, port: ownerPorts[i], pingIntervalMs: 200})], {
        timeoutMs: 30_000,
        env: {GRPC_NODE_VERBOSITY: 'NONE'},
      })
    const ownerProcs: Array<Fixture | null> = await Promise.all(ownerPorts.map((_, i) => startOwner(i)))
    /** When each owner was down: [SIGKILL, restarted] (the end is Infinity while down). */
    const ownerDown: Array<Array<[number, number]>> = ownerPorts.map(() => [])
    const restart = (i: number) =>
      restartOwner(
        i,
        25_000,
        300,
        // SEGMENT_ALREADY_EXISTS until the master drops the dead incarnation (clientTtl, or the pending restore's expiry).
        async () => {
          ownerProcs[i] = await startOwner(i)
          const last = ownerDown[i][ownerDown[i].length - 1]
          if (last !== undefined && last[1] === Infinity) last[1] = Date.now()
        },
        violations,
      )

    const workload = new Workload(opts, timeoutMs, {masterAddress: '', ...ha, attemptTimeoutMs: 1500})
    await workload.startAll(workersN)
    log(`chaos-ha: etcd ${etcd.endpoint}, 3 masters, ${owners} owners, ${workersN} workers, ${schedule.length} faults scheduled`)

    /**
     * Time until a leader serves again after `t0`: another master process than `fromPid` (a
     * restarted incarnation of the same slot counts) elected, and a call through etcd answered.
     */
    async function measure(kind: Failover['fault'], from: number, fromPid: number, t0: number, resumed?: Promise<void>): Promise<Failover> {
      const end = t0 + 4 * boundMs
      const elected = (async () => {
        while (Date.now() < end) {
          const l = await leaderIndex(fromPid)
          if (l !== undefined) return {to: l, ms: Date.now() - t0}
          await sleep(20)
        }
        return undefined
      })()
      // A paused or isolated leader may still answer before its deadline passes (it is still the
      // leader then): only an answer from another master, or from it once the fault is over,
      // means a leader serves again.
      let over = resumed === undefined
      void resumed?.then(() => (over = true))
      let servedMs: number | null = null
      while (Date.now() < end) {
        try {
          await probe!.existKey('chaos-ha-probe')
          if (kind === 'kill-leader' || over || (probe as unknown as {address: string}).address !== slots[from].proxy.address) {
            servedMs = Date.now() - t0
            break
          }
        } catch {
          // no leader yet
        }
        await sleep(10)
      }
      // A short pause may end with the old leader serving again: no election then.
      await resumed
      const e = await Promise.race([elected, sleep(kind === 'pause-leader' ? 300 : Math.max(0, end - Date.now())).then(() => undefined)])
      const to = e?.to ?? (await leaderIndex()) ?? null
      return {fault: kind, at: t0 - workload.start, from, to, electedMs: e?.ms ?? null, servedMs}
    }

    // Master faults one at a time: a failover is measured from a known leader.
    let masterLock: Promise<unknown> = Promise.resolve()
    const serially = <T>(fn: () => Promise<T>): Promise<T> => {
      const run = masterLock.then(fn, fn)
      masterLock = run.catch(() => {})
      return run
    }
    const alive = () => slots.filter((s) => s.fx !== null).length

    async function killMaster(kind: 'kill-leader' | 'kill-standby', f: HaFault): Promise<string> {
      const leader = await waitLeader(2 * boundMs)
      if (leader === undefined) return 'no leader to start from'
      if (alive() < 3) return `skipped: only ${alive()} masters up`
      const i = kind === 'kill-leader' ? leader : slots.findIndex((s, j) => j !== leader && s.fx !== null)
      const s = slots[i]
      const fx = s.fx!
      s.expectedExit = true
      s.fx = null
      const t0 = Date.now()
      fx.child.kill('SIGKILL')
      await fx.exited
      const fo = kind === 'kill-leader' ? measure('kill-leader', i, fx.pid, t0) : undefined
      await sleep(f.forMs ?? 1000)
      await startMasterIn(i)
      masterRestarts++
      if (fo === undefined) return `master ${i} (standby) killed, restarted after ${f.forMs} ms`
      const r = await fo
      failovers.push(r)
      if (r.servedMs === null || r.servedMs > boundMs) violations.push({kind: 'failover-slow', detail: `after kill -9 of leader ${i} at ${r.at} ms: served after ${r.servedMs} ms (bound ${boundMs})`})
      return `leader ${i} killed; master ${r.to} elected after ${r.electedMs} ms, serving after ${r.servedMs} ms; restarted after ${f.forMs} ms`
    }

    async function pauseLeader(f: HaFault): Promise<string> {
      const leader = await waitLeader(2 * boundMs)
      if (leader === undefined) return 'no leader to start from'
      const fx = slots[leader].fx!
      const t0 = Date.now()
      process.kill(fx.pid, 'SIGSTOP')
      const resumed = sleep(f.forMs ?? 1000).then(() => {
        process.kill(fx.pid, 'SIGCONT')
      })
      const r = await measure('pause-leader', leader, fx.pid, t0, resumed)
      failovers.push(r)
      if (r.servedMs === null || r.servedMs > Math.max(boundMs, (f.forMs ?? 0) + 1000)) {
        violations.push({kind: 'failover-slow', detail: `after SIGSTOP of leader ${leader} for ${f.forMs} ms at ${r.at} ms: served after ${r.servedMs} ms (bound ${boundMs})`})
      }
      return `leader ${leader} paused ${f.forMs} ms; ${r.electedMs === null ? `it kept leading (master ${r.to} leads)` : `master ${r.to} elected after ${r.electedMs} ms`}, serving after ${r.servedMs} ms`
    }

    async function isolateLeader(f: HaFault): Promise<string> {
      const leader = await waitLeader(2 * boundMs)
      if (leader === undefined) return 'no leader to start from'
      const s = slots[leader]
      const t0 = Date.now()
      s.etcdProxy.dropping = true
      const resumed = sleep(f.forMs ?? 1000).then(() => {
        s.etcdProxy.dropping = false
        s.etcdProxy.cut()
      })
      const r = await measure('isolate-leader', leader, s.fx!.pid, t0, resumed)
      failovers.push(r)
      if (r.servedMs === null || r.servedMs > boundMs) {
        violations.push({kind: 'failover-slow', detail: `after cutting leader ${leader} off etcd for ${f.forMs} ms at ${r.at} ms: served after ${r.servedMs} ms (bound ${boundMs})`})
      }
      return `leader ${leader} cut off from etcd for ${f.forMs} ms; ${r.electedMs === null ? `no election (master ${r.to} leads)` : `master ${r.to} elected after ${r.electedMs} ms`}, serving after ${r.servedMs} ms`
    }

    const faults = await runSchedule(schedule, {workload, log, name: 'chaos-ha', errorChars: 300}, async (f) => {
      switch (f.kind) {
        case 'kill-leader':
        case 'kill-standby': {
          const kind = f.kind
          return serially(() => killMaster(kind, f))
        }
        case 'pause-leader':
          return serially(() => pauseLeader(f))
        case 'isolate-leader':
          return serially(() => isolateLeader(f))
        case 'kill-owner':
          return killOwner(ownerProcs, f, restart, (i) => ownerDown[i].push([Date.now(), Infinity]))
        case 'kill-client':
          return workload.killClient(f.target ?? 0)
        case 'cut-master':
          return `${slots.reduce((n, s) => n + s.proxy.cut(), 0)} connections to the masters reset`
        case 'delay-master':
          for (const s of slots) s.proxy.delayMs = f.delayMs ?? 100
          await sleep(f.forMs ?? 1000)
          for (const s of slots) s.proxy.delayMs = 0
          return `delayed ${f.delayMs} ms per chunk for ${f.forMs} ms`
      }
    })
    const totals = await workload.finish(violations)

    // Heal: every master and owner up, a leader serving, owners re-mounted, zombie puts expired.
    for (const s of slots) s.proxy.delayMs = 0
    await masterLock
    for (const s of slots) s.etcdProxy.dropping = false
    for (let i = 0; i < 3; i++) if (slots[i].fx === null) await startMasterIn(i)
    for (let i = 0; i < owners; i++) if (ownerProcs[i] === null) await restart(i)
    const leader = await waitLeader(2 * boundMs)
    if (leader === undefined) throw new Error('no leader after the faults healed')
    await sleep(MASTER_OPTIONS.putStartReleaseTimeoutMs + MASTER_OPTIONS.clientTtlMs + 2500)

    const erasures: Erasures = {}
    const restoreExpired = {ownerDown: 0, ownerAlive: 0, keysOwnerAlive: 0, details: [] as string[]}
    const restoreEvents = new Set<string>()
    const unmountsOwnerAlive: string[] = []
    for (const f of readdirSync(opts.dir).filter((n) => n.startsWith('erasures-'))) {
      for (const line of readFileSync(path.join(opts.dir, f), 'utf8').split('\n')) {
        if (!line) continue
        let rec: [string, number, 'evict' | 'segment' | 'other' | 'restore', string?]
        try {
          rec = JSON.parse(line) as typeof rec
        } catch {
          continue // a line torn by SIGKILL
        }
        const [key, t, reason, detail] = rec
        if (key === '#unmount') {
          // [#unmount, t, segment name, reason]: a segment dropped while its owner was alive.
          const owner = Number(/^chaos-(\d+)$/.exec(reason)?.[1] ?? -1)
          const down = (ownerDown[owner] ?? []).some(([a, b]) => a <= t + 100 && b >= t - MASTER_OPTIONS.clientTtlMs - 1000)
          if (!down && detail !== undefined) unmountsOwnerAlive.push(`${reason} (${detail}) at ${t - workload.start} ms (${f})`)
          continue
        }
        if (reason !== 'restore') {
          ;(erasures[key] ??= []).push([t, reason])
          continue
        }
        // The pending restore began at the promotion, clientTtl before it expired: was the
        // segment's owner down at any moment from then on?
        const owner = Number(/^chaos-(\d+):/.exec(detail ?? '')?.[1] ?? -1)
        const from = t - MASTER_OPTIONS.clientTtlMs - 1000
        const down = (ownerDown[owner] ?? []).some(([a, b]) => a <= t && b >= from)
        ;(erasures[key] ??= []).push([t, down ? 'segment' : 'other'])
        const event = `${f}:${detail}:${Math.round(t / 1000)}`
        if (!restoreEvents.has(event)) {
          restoreEvents.add(event)
          if (down) restoreExpired.ownerDown++
          else restoreExpired.ownerAlive++
          restoreExpired.details.push(`${detail} at ${t - workload.start} ms (${f}), owner ${down ? 'down' : 'alive'}`)
        }
        if (!down) restoreExpired.keysOwnerAlive++
      }
    }
    for (const list of Object.values(erasures)) list.sort((a, b) => a[0] - b[0])
    const verify = await checkLedgers(opts.dir, erasures, ha, violations)
    const auditOf = (await leaderIndex()) ?? leader
    const audit = await auditSpace(slots[auditOf].fx!, `leader ${auditOf}:`, violations)
    const acrossFailovers = firstWrites(opts.dir, failovers, workload.start)
    for (const o of ownerProcs) await o?.kill('SIGTERM')
    for (const s of slots) {
      s.expectedExit = true
      await s.fx?.kill('SIGTERM')
    }
    return {
      options: {...opts, log: undefined} as Omit<HaChaosOptions, 'log'>,
      faults,
      failovers,
      masterRestarts,
      restoreExpired,
      unmountsOwnerAlive,
      acrossFailovers,
      ...commonResult({workload, totals, verify, audit, erasures, violations, started}),
    }
  } finally {
    probe?.close()
    for (const s of slots) s.expectedExit = true
    for (const s of slots) await s.proxy.close().catch(() => {})
    for (const s of slots) await s.etcdProxy.close().catch(() => {})
    await killAll()
    await etcd?.stop()
  }
}

/**
 * Fills in, per failover, when the first write that began after it was acknowledged; and counts
 * the outcomes of the operations in flight across a failover (begun before a leader served again,
 * ended after the fault): in-progress puts and read leases are not carried over, so these may
 * fail (not a violation: the checker treats a failed write as of unknown outcome).
 */
function firstWrites(dir: string, failovers: Failover[], workloadStart: number): Record<string, number> {
  const acks: Array<[number, number]> = []
  const ops: Array<{b: number; e: number; outcome: string}> = []
  for (const f of readdirSync(dir).filter((n) => n.startsWith('ledger-'))) {
    const begins = new Map<number, number>()
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line) continue
      let r: {t: number; c: number; op: string; s: string; code?: string}
      try {
        r = JSON.parse(line) as typeof r
      } catch {
        continue
      }
      if (r.s === 'begin') {
        begins.set(r.c, r.t)
        continue
      }
      const b = begins.get(r.c) ?? r.t
      ops.push({b, e: r.t, outcome: `${r.op}:${r.s === 'ok' ? 'OK' : r.s === 'bad' ? 'BAD' : r.code}`})
      if ((r.op === 'put' || r.op === 'upsert') && r.s === 'ok') acks.push([b, r.t])
    }
  }
  const across: Record<string, number> = {}
  for (const fo of failovers) {
    const t0 = workloadStart + fo.at
    let first: number | null = null
    for (const [b, t] of acks) if (b >= t0 && (first === null || t < first)) first = t
    fo.firstWriteMs = first === null ? null : first - t0
    if (fo.electedMs === null) continue
    const until = t0 + (fo.servedMs ?? fo.electedMs)
    for (const o of ops) if (o.b < until && o.e > t0) across[o.outcome] = (across[o.outcome] ?? 0) + 1
  }
  return across
}

/** p50 and max of the failover times that happened. */
export function failoverSummary(failovers: Failover[]): Record<string, unknown> {
  const stat = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b)
    return s.length === 0 ? null : {n: s.length, p50: s[Math.floor((s.length - 1) / 2)], max: s[s.length - 1]}
  }
  const real = failovers.filter((f) => f.electedMs !== null)
  return {
    failovers: real.length,
    pausesWithoutElection: failovers.filter((f) => f.fault === 'pause-leader' && f.electedMs === null).length,
    electedMs: stat(real.map((f) => f.electedMs!)),
    servedMs: stat(real.map((f) => f.servedMs ?? Infinity)),
    firstWriteMs: stat(real.filter((f) => f.firstWriteMs != null).map((f) => f.firstWriteMs!)),
  }
}
