/**
 * Client processes ending in every way a program ends (closed or not, exit with transfers in
 * flight) never crash: the native engine's threads and the Node environment tear down in a
 * safe order. A SIGSEGV here shows as exit code null with signal SIGSEGV (or 139 from a shell).
 */
import {spawn} from 'node:child_process'
import path from 'node:path'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {killAll, ROOT, startFixture} from '../helpers/processes.js'

const ENDINGS = ['close', 'close-exit', 'no-close', 'close-no-wait', 'exit-in-flight']
const ROUNDS = 4
let address = ''

test.before(async () => {
  const master = await startFixture<{address: string}>('test/integration/fixtures/master.ts')
  address = master.ready.address
  await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress: address, size: 64 << 20})])
})

test.after(async () => {
  await killAll()
})

function run(ending: string): Promise<{code: number | null; signal: NodeJS.Signals | null; stderr: string}> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/hardening/fixtures/short-lived-client.ts'), address, ending], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({code, signal, stderr})))
}

test(`${ENDINGS.length * ROUNDS} client processes, ${ENDINGS.length} ways of ending, all exit 0`, async () => {
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    // Two at a time: teardown races need the CPU contended, not idle.
    for (let i = 0; i < ENDINGS.length; i += 2) {
      const batch = ENDINGS.slice(i, i + 2)
      const results = await Promise.all(batch.map(run))
      results.forEach((r, j) => {
        if (r.code !== 0) failures.push(`${batch[j]}: code ${r.code} signal ${r.signal} ${r.stderr.slice(-400)}`)
      })
    }
  }
  assert.equal(failures, [], failures.join('\n'))
})

test.run()
