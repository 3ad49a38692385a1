/**
 * Cost of the tombstone log on the remove path (docs/disk-tier.md "Remove"): TombstoneLog.record
 * per removed file in a burst, against building the file path alone (the baseline), in the same
 * run; then the worst case of an isolated remove (the log created, then removed).
 * Usage: npx tsx bench/disk/tombstones.ts
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {TombstoneLog} from '../../src/lib/disk/tombstones.js'
const dir = mkdtempSync(path.join(tmpdir(), 'tb-'))
const log = new TombstoneLog(dir)
const name = (i: number) => path.join(dir, 'ab', 'cd', 'f'.repeat(64) + '-v' + i)
for (let i = 0; i < 1000; i++) log.record(name(i))
const n = 200_000
const t0 = performance.now()
for (let i = 0; i < n; i++) log.record(name(i))
const t1 = performance.now()
const s0 = performance.now()
for (let i = 0; i < n; i++) name(i)
const s1 = performance.now()
// Worst case: an isolated remove creates the log, and the deletion that follows removes it.
const m = 20_000
const i0 = performance.now()
for (let i = 0; i < m; i++) {
  log.record(name(i))
  log.clear()
}
const i1 = performance.now()
console.log(`record: ${(((t1 - t0) * 1000) / n).toFixed(2)} us/remove in a burst (baseline path.join only ${(((s1 - s0) * 1000) / n).toFixed(2)} us), ratio ${((t1 - t0) / (s1 - s0)).toFixed(1)}`)
console.log(`isolated remove (create, append, close, unlink the log): ${(((i1 - i0) * 1000) / m).toFixed(2)} us`)
log.close(); rmSync(dir, {recursive: true})
