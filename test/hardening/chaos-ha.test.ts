/**
 * Short deterministic HA chaos run (bench/chaos/ha.ts): a real etcd, three masters in the
 * election, 3 segment owners and 2 client processes (2 MooncakeClients each) finding the leader
 * through etcd, put/get/upsert/remove with verifiable values for 23 s while the leader is killed
 * (-9) twice, paused for 3.5 s and cut off from etcd (not from its clients) for 3 s, both past
 * its 2 s lease, a standby and an owner are killed and the masters' connections are cut.
 * Invariants: a leader serves again within 3x the lease TTL after every kill, pause or
 * isolation, every acknowledged write survives the failovers (read back, or removed/evicted/lost
 * with its segment as a master recorded), no get returns other bytes, no space leaked on the
 * final leader, no client hung, no master crashed by itself.
 */
import * as assert from 'uvu/assert'

import {failoverSummary, runHaChaos} from '../../bench/chaos/ha.js'
import {assertChaos, chaosSuite, SHORT_RUN, withLog} from '../helpers/chaos.js'

const {t, dir} = chaosSuite('chaos with HA masters (short, deterministic)', 'chaos-ha')
const TTL = 2000

t('acknowledged writes survive leader kills and a leader pause; a leader serves again within 3x TTL', async () => {
  const result = await withLog((log) =>
    runHaChaos({
      ...SHORT_RUN,
      durationMs: 23_000,
      seed: 11,
      maxSize: 512 * 1024,
      timeoutMs: 8000,
      haLeaseTtlMs: TTL,
      failoverBoundMs: 3 * TTL,
      dir,
      log,
      schedule: [
        {at: 2500, kind: 'kill-leader', forMs: 1000},
        {at: 5000, kind: 'kill-owner', target: 1, forMs: 500},
        {at: 7000, kind: 'pause-leader', forMs: 3500},
        {at: 11_500, kind: 'isolate-leader', forMs: 3000},
        {at: 15_500, kind: 'kill-standby', forMs: 500},
        {at: 16_000, kind: 'cut-master'},
        {at: 16_500, kind: 'kill-leader', forMs: 800},
      ],
    }),
  )
  const brief = assertChaos(result, {
    name: 'chaos-ha',
    faults: 7,
    faultFailed: /error|failed|skipped|no leader/,
    workerRuns: 2,
    brief: {failovers: result.failovers},
    report: `failovers ${JSON.stringify(failoverSummary(result.failovers))}`,
  })
  // Both kills, the pause (3.5 s) and the isolation from etcd (3 s) outlast the 2 s lease: each
  // forced an election, measured and within the bound.
  const elections = result.failovers.filter((f) => f.electedMs !== null)
  assert.is(elections.length, 4, brief)
  for (const f of elections) assert.ok(f.servedMs !== null && f.servedMs <= 3 * TTL, brief)
  assert.is(result.masterRestarts, 3, brief)
  // Writes resumed after every failover (the workload went on through the new leader).
  for (const f of elections) assert.ok(f.firstWriteMs !== null && f.firstWriteMs !== undefined, brief)
})

t.run()
