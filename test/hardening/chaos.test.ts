/**
 * Short deterministic chaos run (bench/chaos): 1 master, 3 segment owners, 2 client processes
 * (2 MooncakeClients each) doing put/get/upsert/remove with verifiable values for 25 s while
 * owners are SIGKILLed and restarted under the same name, a client process is SIGKILLed and
 * restarted, the master's connections are cut once and owner 0 is partitioned from the master.
 * Invariants: every acknowledged write is read back or was removed/evicted/lost with its segment
 * (as the master recorded), no get returns other bytes, no space leaked, no client hung.
 */
import {rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {runChaos, type ChaosResult} from '../../bench/chaos/chaos.js'
import {killAll} from '../helpers/processes.js'

const t = suite('chaos (short, deterministic)')
const dir = path.join(os.tmpdir(), `mooncake-chaos-test-${process.pid}`)

t.after(async () => {
  await killAll()
  rmSync(dir, {recursive: true, force: true})
})

t('invariants hold under owner kills, a client kill, a connection cut and a partition', async () => {
  const lines: string[] = []
  let result: ChaosResult | undefined
  try {
    result = await runChaos({
      durationMs: 25_000,
      seed: 7,
      owners: 3,
      ownerMiB: 16,
      workers: 2,
      clientsPerWorker: 2,
      keysPerClient: 16,
      minSize: 64,
      maxSize: 1024 * 1024,
      timeoutMs: 4000,
      dir,
      log: (l) => lines.push(l),
      schedule: [
        {at: 3000, kind: 'kill-owner', target: 1, forMs: 800},
        {at: 7000, kind: 'cut-master'},
        {at: 9000, kind: 'kill-client', target: 1},
        {at: 12_000, kind: 'kill-owner', target: 2, forMs: 2000},
        {at: 15_000, kind: 'partition-owner', forMs: 2500},
        {at: 19_000, kind: 'kill-owner', target: 0, forMs: 500},
      ],
    })
  } catch (err) {
    throw new Error(`${String((err as Error)?.stack ?? err)}\n${lines.join('\n')}`)
  }
  const brief = JSON.stringify({faults: result.faults, counts: result.counts, final: result.finalCheck, erasures: result.erasures, violations: result.violations.slice(0, 10)}, null, 1)
  const operations = Object.values(result.ledgerCounts).reduce((a, b) => a + b, 0)
  console.log(`chaos: ${operations} operations, ${result.checkedOps} outcomes checked, final ${JSON.stringify(result.finalCheck)}, ${result.violations.length} violations`)
  assert.is(result.violations.length, 0, brief)
  assert.is(result.faults.length, 6, brief)
  for (const f of result.faults) assert.not.match(f.done, /error|failed/, brief)
  assert.ok(result.checkedOps > 200, `only ${result.checkedOps} operations checked\n${brief}`)
  assert.ok(result.verifiedGets > 50, brief)
  assert.ok((result.finalCheck.intact ?? 0) > 0, brief)
  assert.ok((result.erasures.segment ?? 0) > 0, `owner kills lost no object?\n${brief}`)
  assert.is(result.workerRuns, 3, brief)
})

t.run()
