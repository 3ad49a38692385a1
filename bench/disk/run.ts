/**
 * Disk tier benchmark (issue 6): a get served from the disk tier (FILE_READ: header check,
 * positional reads straight into the caller's buffer, CRC32C verified) against `cat FILE >
 * /dev/null` of the same file, for 1 MiB and 64 MiB values, with a warm and a cold page cache.
 *
 *   node --import tsx bench/disk/run.ts [--json] [--drop-caches]
 *
 * A master (--root-fs-dir under the repository's file system, not tmpfs) and one segment owner
 * run as processes; the objects are put, written to disk by the owner, then the owner is killed so
 * that only the disk replicas are left. Cold runs evict the file from the page cache before each
 * read with posix_fadvise(DONTNEED) (`dd iflag=nocache count=0`), which touches only that file;
 * `--drop-caches` uses `echo 3 > /proc/sys/vm/drop_caches` instead (root, machine-wide).
 * `cat` is timed as a process (spawn included); the cost of spawning `cat /dev/null` is measured
 * too and reported, so the ratio can be read both ways.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import path from 'node:path'
import {performance} from 'node:perf_hooks'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {freePort, killAll, ROOT, startFixture, waitFor} from '../../test/helpers/processes.js'

const MiB = 2 ** 20
const JSON_OUT = process.argv.includes('--json')
const DROP_ALL = process.argv.includes('--drop-caches')
const CASES = [
  {size: MiB, warm: 30, cold: 10},
  {size: 64 * MiB, warm: 6, cold: 4},
]

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function evict(file: string): void {
  if (DROP_ALL) {
    execFileSync('sync')
    writeFileSync('/proc/sys/vm/drop_caches', '3')
    return
  }
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
}

function catMs(file: string): number {
  const t0 = performance.now()
  const r = spawnSync('sh', ['-c', `cat "$1" > /dev/null`, 'sh', file])
  if (r.status !== 0) throw new Error(`cat failed: ${r.stderr}`)
  return performance.now() - t0
}

/** The same bytes read in this process (open, read(2) into the buffer, close): no header, no checksum, no master. */
async function rawMs(file: string, dest: Buffer): Promise<number> {
  const t0 = performance.now()
  const fh = await open(file, 'r')
  let done = 0
  for (;;) {
    const {bytesRead} = await fh.read(dest, done % dest.length, Math.min(16 * MiB, dest.length - (done % dest.length)), done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  await fh.close()
  return performance.now() - t0
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(ROOT, '.bench-disk-'))
  const results: Array<Record<string, number | string>> = []
  try {
    const port = await freePort()
    const master = await startFixture<{address: string}>('test/integration/fixtures/client-master.ts', [
      JSON.stringify({port, rootFsDir: dir, clusterId: 'bench', clientTtlMs: 1000, leaseTtlMs: 200}),
    ])
    const owner = await startFixture('test/integration/fixtures/segment-owner.ts', [
      JSON.stringify({masterAddress: master.ready.address, size: 160 * MiB, pingIntervalMs: 100}),
    ], {timeoutMs: 30_000})
    const client = await MooncakeClient.connect({masterAddress: master.ready.address, transport: 'tcp', timeoutMs: 30_000})
    const paths = new Map<number, string>()
    for (const c of CASES) {
      const key = `bench/${c.size}`
      await client.put(key, randomBytes(c.size))
      const p = await waitFor(
        async () => (await client.query(key)).replicas.find((r) => r.type === 'disk' && r.status === 'COMPLETE')?.path,
        60_000,
        'disk replica written',
      )
      paths.set(c.size, p)
    }
    owner.child.kill('SIGKILL')
    await waitFor(async () => (await client.query(`bench/${MiB}`)).replicas.every((r) => r.type === 'disk'), 15_000, 'owner gone')

    const spawnMs = median(Array.from({length: 10}, () => catMs('/dev/null')))
    for (const c of CASES) {
      const key = `bench/${c.size}`
      const file = paths.get(c.size)!
      const dest = Buffer.alloc(c.size)
      for (const mode of ['warm', 'cold'] as const) {
        const n = mode === 'warm' ? c.warm : c.cold
        const get: number[] = []
        const cat: number[] = []
        const raw: number[] = []
        if (mode === 'warm') {
          catMs(file)
          await client.getInto(key, dest)
        }
        for (let i = 0; i < n; i++) {
          if (mode === 'cold') evict(file)
          let t0 = performance.now()
          await client.getInto(key, dest)
          get.push(performance.now() - t0)
          if (mode === 'cold') evict(file)
          t0 = performance.now()
          cat.push(catMs(file))
          if (mode === 'cold') evict(file)
          raw.push(await rawMs(file, Buffer.alloc(c.size + 8192)))
        }
        const g = median(get)
        const k = median(cat)
        results.push({
          size: c.size,
          cache: mode,
          getMs: +g.toFixed(3),
          catMs: +k.toFixed(3),
          rawReadMs: +median(raw).toFixed(3),
          catMinusSpawnMs: +Math.max(0.001, k - spawnMs).toFixed(3),
          getGBps: +(c.size / g / 1e6).toFixed(2),
          ratio: +(g / k).toFixed(2),
          ratioExSpawn: +(g / Math.max(0.001, k - spawnMs)).toFixed(2),
          runs: n,
        })
      }
    }
    await client.close()
    if (JSON_OUT) {
      process.stdout.write(`${JSON.stringify({spawnMs: +spawnMs.toFixed(3), evict: DROP_ALL ? 'drop_caches' : 'fadvise', results}, null, 2)}\n`)
    } else {
      console.log(`cache eviction: ${DROP_ALL ? 'echo 3 > /proc/sys/vm/drop_caches' : 'posix_fadvise DONTNEED (dd iflag=nocache count=0)'}; spawning cat /dev/null: ${spawnMs.toFixed(2)} ms`)
      console.log('| size | cache | get (ms, median) | get GB/s | cat (ms) | cat - spawn (ms) | raw read in process (ms) | get / cat | get / (cat - spawn) |')
      console.log('|---|---|---|---|---|---|---|---|---|')
      for (const r of results) {
        console.log(`| ${Number(r.size) / MiB} MiB | ${r.cache} | ${r.getMs} | ${r.getGBps} | ${r.catMs} | ${r.catMinusSpawnMs} | ${r.rawReadMs} | ${r.ratio} | ${r.ratioExSpawn} |`)
      }
    }
  } finally {
    await killAll()
    rmSync(dir, {recursive: true, force: true})
  }
}

await main()
