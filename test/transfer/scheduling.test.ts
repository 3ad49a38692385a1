// The engine's client threads run under SCHED_BATCH unless told not to (TransferEngineOptions.batchScheduling).
import {readdirSync, readFileSync} from 'node:fs'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {TransferEngine} from '../../src/lib/transfer/index.js'
import {waitFor} from '../helpers/processes.js'

const SCHED_BATCH = 3

/** Threads of this process whose scheduling policy (field 41 of /proc/.../stat) is SCHED_BATCH. */
function batchThreads(): number {
  let n = 0
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      if (Number(fields[41 - 3]) === SCHED_BATCH) n++
    } catch {
      // the thread ended while we looked
    }
  }
  return n
}

test('client threads run under SCHED_BATCH by default, server threads never; batchScheduling: false leaves them alone', async () => {
  assert.is(batchThreads(), 0, 'no engine yet')
  const plain = new TransferEngine({listenHosts: ['127.0.0.1'], clientThreads: 3, serverThreads: 2, batchScheduling: false})
  await plain.start()
  const batch = new TransferEngine({listenHosts: ['127.0.0.1'], clientThreads: 3, serverThreads: 2})
  await batch.start()
  try {
    // Each thread switches itself when it starts: give them a moment.
    await waitFor(() => batchThreads() === 3, 5000, 'the default engine\'s 3 client threads under SCHED_BATCH')
    await new Promise((r) => setTimeout(r, 100))
    assert.is(batchThreads(), 3, 'only the default engine\'s client threads')
  } finally {
    await batch.close()
    await plain.close()
  }
  assert.is(batchThreads(), 0, 'its threads are gone with the engine')
})

test.run()
