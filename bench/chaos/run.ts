/**
 * Chaos run: mixed put/get/upsert/remove from several client processes while segment owners and
 * clients are SIGKILLed and restarted and the master's connections are cut, dropped and delayed
 * through userspace proxies; then the invariants are checked (docs/reliability.md, "Chaos").
 *
 *   node --import tsx bench/chaos/run.ts [--duration 120] [--seed 1] [--owners 3] [--workers 3]
 *        [--clients 2] [--fault-every 4000] [--out bench/chaos/results/chaos-SEED.json]
 *   node --import tsx bench/chaos/run.ts --ha [--duration 120] [--seed 1] [--ttl 2000] [--fault-every 5000] ...
 *
 * --ha: a real etcd, three masters in the election, owners and clients finding the leader through
 * etcd, and master faults (kill -9 / SIGSTOP of the leader, the leader cut off from etcd, kill -9
 * of a standby) in the schedule (bench/chaos/ha.ts); failover times are reported (docs/reliability.md,
 * "HA chaos").
 *
 * Exit 0 when no invariant was violated, 1 otherwise.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {ROOT} from '../../test/helpers/processes.js'
import {runChaos, type ChaosResult} from './chaos.js'
import {failoverSummary, runHaChaos, type HaChaosResult} from './ha.js'
import {argValue} from './lib.js'

const argv = process.argv.slice(2)
const haMode = argv.includes('--ha')
const durationS = Number(argValue(argv, 'duration') ?? 120)
const seed = Number(argValue(argv, 'seed') ?? 1)
const out = path.resolve(ROOT, argValue(argv, 'out') ?? `bench/chaos/results/chaos${haMode ? '-ha' : ''}-seed${seed}-${durationS}s.json`)
const common = {
  durationMs: durationS * 1000,
  seed,
  owners: Number(argValue(argv, 'owners') ?? 3),
  workers: Number(argValue(argv, 'workers') ?? 3),
  clientsPerWorker: Number(argValue(argv, 'clients') ?? 2),
  dir: path.join(os.tmpdir(), `mooncake-chaos-${process.pid}`),
}
const result: ChaosResult | HaChaosResult = haMode
  ? await runHaChaos({...common, haLeaseTtlMs: Number(argValue(argv, 'ttl') ?? 2000), faultEveryMs: Number(argValue(argv, 'fault-every') ?? 5000)})
  : await runChaos({...common, faultEveryMs: Number(argValue(argv, 'fault-every') ?? 4000)})
mkdirSync(path.dirname(out), {recursive: true})
writeFileSync(out, JSON.stringify({command: `node --import tsx bench/chaos/run.ts ${argv.join(' ')}`.trim(), ...result}, null, 1))
const byKind: Record<string, number> = {}
for (const f of result.faults) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1
const vk: Record<string, number> = {}
const ha = 'failovers' in result ? {failover: failoverSummary(result.failovers), masterRestarts: result.masterRestarts, restoreExpired: result.restoreExpired, unmountsOwnerAlive: result.unmountsOwnerAlive, acrossFailovers: result.acrossFailovers} : {}
for (const v of result.violations) vk[v.kind] = (vk[v.kind] ?? 0) + 1
console.log(
  JSON.stringify(
    {
      seed,
      durationS,
      elapsedS: Math.round(result.elapsedMs / 1000),
      faults: byKind,
      ...ha,
      workerRuns: result.workerRuns,
      operations: Object.values(result.ledgerCounts).reduce((a, b) => a + b, 0),
      ledgerCounts: result.ledgerCounts,
      keys: result.keys,
      checkedOps: result.checkedOps,
      verifiedGets: result.verifiedGets,
      finalCheck: result.finalCheck,
      erasures: result.erasures,
      audit: {used: (result.audit.stats as {used: number}).used, liveBytesAligned: result.audit.liveBytesAligned, objects: result.audit.objects, processing: result.audit.processing},
      longestOpMs: result.longestOpMs,
      violations: vk,
      firstViolations: result.violations.slice(0, 10),
    },
    null,
    1,
  ),
)
console.log(`written ${out}; ledgers and erasure log in ${result.options.dir}`)
process.exit(result.violations.length === 0 ? 0 : 1)
