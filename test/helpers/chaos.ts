/**
 * What the chaos tests (test/hardening/chaos*.test.ts) share: a suite that leaves no process or
 * directory behind, a run whose log is printed only when it fails, and the invariants every chaos
 * run must show, with the one-line report each prints.
 */
import {rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {suite, type Test} from 'uvu'
import * as assert from 'uvu/assert'

import type {ChaosResult} from '../../bench/chaos/chaos.js'
import {killAll} from './processes.js'

/** The small topology of the short runs: 3 owners of 16 MiB, 2 worker processes of 2 clients with 16 keys each. */
export const SHORT_RUN = {owners: 3, ownerMiB: 16, workers: 2, clientsPerWorker: 2, keysPerClient: 16, minSize: 64}

/** A uvu suite and the run's directory (`mooncake-NAME-test-PID` in the temp dir), both cleaned up after. */
export function chaosSuite(title: string, name: string): {t: Test; dir: string} {
  const t = suite(title)
  const dir = path.join(os.tmpdir(), `mooncake-${name}-test-${process.pid}`)
  t.after(async () => {
    await killAll()
    // MOONCAKE_KEEP_CHAOS=1 keeps the ledgers and master logs for a look after a failure.
    if (!process.env.MOONCAKE_KEEP_CHAOS) rmSync(dir, {recursive: true, force: true})
  })
  return {t, dir}
}

/** `run(log)`, its log kept in memory: a run that throws throws with the log appended. */
export async function withLog<R>(run: (log: (line: string) => void) => Promise<R>): Promise<R> {
  const lines: string[] = []
  try {
    return await run((l) => lines.push(l))
  } catch (err) {
    throw new Error(`${String((err as Error)?.stack ?? err)}\n${lines.join('\n')}`)
  }
}

export interface ChaosExpectations {
  /** Report prefix. */
  name: string
  /** Faults in the schedule: each must have run. */
  faults: number
  /** What a fault's outcome must not say. */
  faultFailed: RegExp
  /** Worker processes started (generations included). */
  workerRuns: number
  /** More of the result for the assertion messages (and `report`, appended to the printed line). */
  brief?: Record<string, unknown>
  report?: string
}

/**
 * Prints the run's report line and asserts what every chaos run must show: no violation, every
 * fault done, enough operations checked and gets verified, objects intact at the end. Returns the
 * summary for the caller's own assertions' messages.
 */
export function assertChaos(result: Omit<ChaosResult, 'options' | 'faults'> & {faults: Array<{done: string}>}, e: ChaosExpectations): string {
  const brief = JSON.stringify({faults: result.faults, ...e.brief, counts: result.counts, ledgerCounts: result.ledgerCounts, final: result.finalCheck, erasures: result.erasures, violations: result.violations.slice(0, 10)}, null, 1)
  const operations = Object.values(result.ledgerCounts).reduce((a, b) => a + b, 0)
  const report = e.report === undefined ? '' : `, ${e.report}`
  console.log(`${e.name}: ${operations} operations, ${result.checkedOps} outcomes checked, final ${JSON.stringify(result.finalCheck)}${report}, ${result.violations.length} violations`)
  assert.is(result.violations.length, 0, brief)
  assert.is(result.faults.length, e.faults, brief)
  for (const f of result.faults) assert.not.match(f.done, e.faultFailed, brief)
  assert.ok(result.checkedOps > 200, `only ${result.checkedOps} operations checked\n${brief}`)
  assert.ok(result.verifiedGets > 50, brief)
  assert.ok((result.finalCheck.intact ?? 0) > 0, brief)
  assert.is(result.workerRuns, e.workerRuns, brief)
  return brief
}
