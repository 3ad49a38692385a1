/**
 * Steady-state single-key puts or gets with CPU time per operation, by process: for A/B
 * comparisons of one change in one sitting (bench/store/run.ts's 0.7 s phases include warm-up
 * and move 10-20 % between runs).
 *
 *   node --import tsx bench/store/steady.ts [--op put|get] [--transport tcp|auto] [--size BYTES]
 *                                          [--callers N] [--seconds S] [--json]
 *
 * A master and a 3 GiB segment owner run as separate node processes, the client in this one with
 * `--callers` concurrent callers (default 8). Values come from registered memory at offsets 4 KiB
 * apart, as in run.ts. Puts run in rounds of up to 2000 keys (the pool is cleared between rounds);
 * gets read 1000 keys written first. Each round prints ops/s and CPU µs per operation of the
 * client, master and owner processes (from /proc, 10 ms ticks for the children); the summary is
 * the median round after the first two (warm-up); --json adds the client's stats (RPC coalescing).
 */
import {readFileSync} from 'node:fs'

import {MooncakeClient} from '../../src/lib/client/client.js'
import type {TransportMode} from '../../src/lib/client/options.js'
import {killAll, startFixture} from '../../test/helpers/processes.js'

const MiB = 1024 * 1024
const argv = process.argv.slice(2)
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt
}
const OP = opt('op', 'put')
const TRANSPORT = opt('transport', 'tcp') as TransportMode
const SIZE = Number(opt('size', String(MiB)))
const CALLERS = Number(opt('callers', '8'))
const SECONDS = Number(opt('seconds', '10'))
const JSON_OUT = argv.includes('--json')
if (!['put', 'get'].includes(OP) || !Number.isInteger(SIZE) || SIZE < 1 || SIZE > 32 * MiB || !(CALLERS >= 1) || !(SECONDS > 0)) {
  console.error('usage: steady.ts [--op put|get] [--transport tcp|auto] [--size 1..33554432] [--callers N] [--seconds S] [--json]')
  process.exit(2)
}

/** CPU time of a child process so far, in µs (utime + stime, 10 ms ticks). */
function cpuMicros(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) * 10_000
}

interface Round {
  opsPerSec: number
  clientMicros: number
  masterMicros: number
  ownerMicros: number
}

const master = await startFixture<{address: string}>('test/integration/fixtures/client-master.ts', [JSON.stringify({})])
const owner = await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress: master.ready.address, size: 3 * 1024 * MiB})], {timeoutMs: 120_000})
const client = await MooncakeClient.connect({masterAddress: master.ready.address, transport: TRANSPORT, timeoutMs: 60_000})
const rounds: Round[] = []
try {
  const source = Buffer.alloc(64 * MiB, 3)
  client.registerLocalMemory(source)
  const dests = Array.from({length: CALLERS}, () => Buffer.alloc(SIZE))
  for (const d of dests) client.registerLocalMemory(d)
  const spread = Math.max(1, Math.floor((source.length - SIZE) / 4096))
  const value = (i: number) => source.subarray((i % spread) * 4096, (i % spread) * 4096 + SIZE)
  const perRound = Math.max(CALLERS, Math.min(2000, Math.floor((2500 * MiB) / SIZE)))
  const readable = Math.max(1, Math.min(1000, Math.floor((2000 * MiB) / SIZE)))
  if (OP === 'get') for (let i = 0; i < readable; i++) await client.put(`k${i}`, value(i))
  const end = performance.now() + SECONDS * 1000
  for (let round = 0; performance.now() < end; round++) {
    const t0 = performance.now()
    const c0 = [process.cpuUsage(), cpuMicros(master.pid), cpuMicros(owner.pid)] as const
    let next = 0
    await Promise.all(
      Array.from({length: CALLERS}, async (_, c) => {
        while (next < perRound && performance.now() < end) {
          const i = next++
          if (OP === 'get') await client.getInto(`k${i % readable}`, dests[c]!)
          else await client.put(`p/${round}/${i}`, value(i))
        }
      }),
    )
    const cpu = process.cpuUsage(c0[0])
    const r: Round = {
      opsPerSec: next / ((performance.now() - t0) / 1000),
      clientMicros: (cpu.user + cpu.system) / next,
      masterMicros: (cpuMicros(master.pid) - c0[1]) / next,
      ownerMicros: (cpuMicros(owner.pid) - c0[2]) / next,
    }
    rounds.push(r)
    if (!JSON_OUT) console.error(`round ${round}: ${r.opsPerSec.toFixed(0)} ops/s, CPU µs/op client ${r.clientMicros.toFixed(0)} master ${r.masterMicros.toFixed(0)} owner ${r.ownerMicros.toFixed(0)}`)
    if (OP === 'put') await client.removeAll({force: true})
  }
} finally {
  await client.close()
  await killAll()
}
const warm = rounds.length > 3 ? rounds.slice(2) : rounds
const median = [...warm].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(warm.length / 2)]!
const summary = {op: OP, transport: TRANSPORT, size: SIZE, callers: CALLERS, rounds: rounds.length, median, coalescing: client.stats}
if (JSON_OUT) console.log(JSON.stringify(summary))
else {
  console.log(`${OP} ${SIZE} B x ${CALLERS} callers, ${TRANSPORT}: median ${median.opsPerSec.toFixed(0)} ops/s; CPU µs/op client ${median.clientMicros.toFixed(0)}, master ${median.masterMicros.toFixed(0)}, owner ${median.ownerMicros.toFixed(0)} (${warm.length} rounds after warm-up)`)
}
