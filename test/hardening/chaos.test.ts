/**
 * Short deterministic chaos run (bench/chaos): 1 master, 3 segment owners, 2 client processes
 * (2 MooncakeClients each) doing put/get/upsert/remove with verifiable values for 25 s while
 * owners are SIGKILLed and restarted under the same name, a client process is SIGKILLed and
 * restarted, the master's connections are cut once and owner 0 is partitioned from the master.
 * Invariants: every acknowledged write is read back or was removed/evicted/lost with its segment
 * (as the master recorded), no get returns other bytes, no space leaked, no client hung.
 */
import * as assert from 'uvu/assert'

import {runChaos} from '../../bench/chaos/chaos.js'
import {assertChaos, chaosSuite, SHORT_RUN, withLog} from '../helpers/chaos.js'

const {t, dir} = chaosSuite('chaos (short, deterministic)', 'chaos')

t('invariants hold under owner kills, a client kill, a connection cut and a partition', async () => {
  const result = await withLog((log) =>
    runChaos({
      ...SHORT_RUN,
      durationMs: 25_000,
      seed: 7,
      maxSize: 1024 * 1024,
      timeoutMs: 4000,
      dir,
      log,
      schedule: [
        {at: 3000, kind: 'kill-owner', target: 1, forMs: 800},
        {at: 7000, kind: 'cut-master'},
        {at: 9000, kind: 'kill-client', target: 1},
        {at: 12_000, kind: 'kill-owner', target: 2, forMs: 2000},
        {at: 15_000, kind: 'partition-owner', forMs: 2500},
        {at: 19_000, kind: 'kill-owner', target: 0, forMs: 500},
      ],
    }),
  )
  const brief = assertChaos(result, {name: 'chaos', faults: 6, faultFailed: /error|failed/, workerRuns: 3})
  assert.ok((result.erasures.segment ?? 0) > 0, `owner kills lost no object?\n${brief}`)
})

t.run()
