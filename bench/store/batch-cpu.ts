/**
 * Where the CPU of 4 KiB batches goes: keys/s of batchPut then batchGet, and CPU µs per key of the
 * client (this process, engine threads included), the master and the segment owner (each its own
 * process, read from /proc). No baseline of its own: bench/store/run.ts compares with Redis; this
 * one says which process to look at.
 *
 *   node --import tsx bench/store/batch-cpu.ts [--transport tcp|auto] [--seconds 3] [--callers 8] [--batch 256]
 *
 * Keep seconds x keys/s x 4 KiB under the 3 GiB segment (about 6 s at 120 k keys/s), or the gets
 * meet evicted keys. `--profile-master DIR` writes a V8 CPU profile of the master there.
 */
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

import {MooncakeClient} from '../../src/lib/client/client.js'
import type {TransportMode} from '../../src/lib/client/options.js'
import {killAll, startFixture} from '../../test/helpers/processes.js'

const KiB = 1024
const MiB = 1024 * KiB
const {values} = parseArgs({
  options: {
    transport: {type: 'string', default: 'tcp'},
    seconds: {type: 'string', default: '3'},
    callers: {type: 'string', default: '8'},
    batch: {type: 'string', default: '256'},
    'profile-master': {type: 'string'},
  },
})
const transport = values.transport as TransportMode
const seconds = Number(values.seconds)
const callers = Number(values.callers)
const batch = Number(values.batch)

/** CPU ms of a process so far (user + system), from /proc/PID/stat. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}

const profile = values['profile-master']
const master = await startFixture<{address: string}>('test/integration/fixtures/client-master.ts', [JSON.stringify({})], {
  nodeArgs: profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [],
})
const owner = await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress: master.ready.address, size: 3 * 1024 * MiB})], {timeoutMs: 120_000})
const client = await MooncakeClient.connect({masterAddress: master.ready.address, transport, timeoutMs: 60_000})
try {
  const source = Buffer.alloc(64 * MiB, 7)
  await client.registerLocalMemory(source)
  let stored = 0
  for (const phase of ['batchPut', 'batchGet'] as const) {
    let n = 0
    const before = {client: process.cpuUsage(), master: cpuMs(master.pid), owner: cpuMs(owner.pid)}
    const t0 = performance.now()
    const deadline = t0 + seconds * 1000
    await Promise.all(
      Array.from({length: callers}, async (_, c) => {
        let next = c * batch
        while (performance.now() < deadline) {
          if (phase === 'batchPut') {
            const base = n
            n += batch
            const items = Array.from({length: batch}, (_, j) => {
              const at = ((base + j) % 16_000) * 4 * KiB
              return {key: `cpu/${base + j}`, value: source.subarray(at, at + 4 * KiB)}
            })
            const res = await client.batchPut(items)
            const bad = res.find((r) => !r.ok)
            if (bad) throw new Error(`batchPut failed: ${JSON.stringify(bad)}`)
          } else {
            const res = await client.batchGet(Array.from({length: batch}, (_, j) => `cpu/${(next + j) % stored}`))
            const bad = res.find((r) => !r.ok)
            if (bad) throw new Error(`batchGet failed: ${JSON.stringify(bad)} (a key evicted? lower --seconds)`)
            n += batch
            next += callers * batch
          }
        }
      }),
    )
    const secs = (performance.now() - t0) / 1000
    const used = process.cpuUsage(before.client)
    const cpu = {client: (used.user + used.system) / 1000, master: cpuMs(master.pid) - before.master, owner: cpuMs(owner.pid) - before.owner}
    const perKey = (ms: number) => ((ms * 1000) / n).toFixed(1)
    const share = (ms: number) => ((ms / secs / 10) | 0) + '%'
    console.log(
      `${transport} ${phase}: ${(n / secs / 1000).toFixed(1)}k keys/s; CPU µs/key client ${perKey(cpu.client)} master ${perKey(cpu.master)} owner ${perKey(cpu.owner)}; ` +
        `CPU client ${share(cpu.client)} master ${share(cpu.master)} owner ${share(cpu.owner)}`,
    )
    if (phase === 'batchPut') stored = n
  }
} finally {
  await client.close()
  await master.kill('SIGTERM')
  await killAll()
}
