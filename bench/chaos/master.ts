/**
 * Chaos/load master: a master in its own process (like test/integration/fixtures/client-master.ts)
 * that also records why each object left the table, for the chaos checker:
 *   evict   - MasterService.evictObject (watermark or PutStart without space)
 *   segment - purge() after the object's segments were unmounted (owner dead or unmounted)
 *   other   - remove, revoke, zombie take-over
 * argv[2] = JSON of MasterServiceOptions + {port}. Prints {"ready":"master",address,pid}.
 * stdin commands (one JSON per line, one JSON reply line each):
 *   {"cmd":"mem"}                 process memory (rss, heapUsed) and stats()
 *   {"cmd":"audit"}               atomic snapshot: stats, metrics, sum of live memory replica sizes
 *   {"cmd":"erasures","file":F}   writes the erase log {key: [[t, reason], ...]} to F
 * Env MOONCAKE_CHAOS_ERASURES=0: no erase log (and no hooks), for the load test.
 */
import {writeFileSync} from 'node:fs'
import {createInterface} from 'node:readline'

import {grantMinter} from '../../src/lib/client/engine-data-path.js'
import {startMasterServer} from '../../src/lib/master/server.js'
import {MasterService} from '../../src/lib/master/service.js'

const opts = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>
const service = new MasterService(opts, {mintGrant: grantMinter})

type Reason = 'evict' | 'segment' | 'other'
const erasures = new Map<string, Array<[number, Reason]>>()
const reasons: Reason[] = []
const proto = service as unknown as Record<string, (...args: unknown[]) => unknown>
const wrap = (name: string, reason: Reason | null, after?: (args: unknown[], result: unknown) => void) => {
  const orig = proto[name]
  if (typeof orig !== 'function') throw new Error(`MasterService.${name} not found (chaos hooks out of date)`)
  proto[name] = function (this: unknown, ...args: unknown[]) {
    if (reason !== null) reasons.push(reason)
    try {
      const result = orig.apply(this, args)
      after?.(args, result)
      return result
    } finally {
      if (reason !== null) reasons.pop()
    }
  }
}
// The load test turns the log off (MOONCAKE_CHAOS_ERASURES=0): it grows with every erasure.
const recording = process.env.MOONCAKE_CHAOS_ERASURES !== '0'
if (recording) {
  wrap('evictObject', 'evict')
  wrap('purge', 'segment')
  wrap('eraseObject', null, (args) => {
    const o = args[0] as {key: string}
    const reason = reasons.length > 0 ? reasons[reasons.length - 1] : 'other'
    let list = erasures.get(o.key)
    if (list === undefined) erasures.set(o.key, (list = []))
    list.push([Date.now(), reason])
  })
}

const master = await startMasterServer({host: '127.0.0.1', port: 0, metricsPort: -1, ...opts, service})
process.stdout.write(`${JSON.stringify({ready: 'master', address: master.address, pid: process.pid})}\n`)

function audit(): Record<string, unknown> {
  const stats = service.stats()
  const metrics = service.metrics()
  let liveBytes = 0
  let liveBytesAligned = 0
  let memReplicas = 0
  let processing = 0
  let objects = 0
  let after: string | undefined
  for (;;) {
    const page = service.listKeys({after, limit: 10_000})
    const infos = service.batchQuery(page.keys)
    for (const r of infos) {
      if (!r.ok || r.value === undefined) continue
      objects += 1
      for (const rep of r.value.replicas) {
        if (rep.type !== 'memory') continue
        if (rep.status !== 'COMPLETE') processing += 1
        memReplicas += 1
        liveBytes += r.value.size
        liveBytesAligned += Math.ceil(r.value.size / 8) * 8
      }
    }
    if (page.next === undefined) break
    after = page.next
  }
  return {ok: true, stats, metrics, objects, memReplicas, processing, liveBytes, liveBytesAligned}
}

const rl = createInterface({input: process.stdin})
rl.on('line', (line) => {
  let reply: Record<string, unknown>
  try {
    const cmd = JSON.parse(line) as {cmd: string; file?: string}
    if (cmd.cmd === 'mem') {
      const m = process.memoryUsage()
      reply = {ok: true, t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, stats: service.stats(), metrics: service.metrics()}
    } else if (cmd.cmd === 'audit') reply = audit()
    else if (cmd.cmd === 'erasures') {
      writeFileSync(cmd.file!, JSON.stringify(Object.fromEntries(erasures)))
      reply = {ok: true, keys: erasures.size}
    } else reply = {ok: false, error: `unknown command ${cmd.cmd}`}
  } catch (err) {
    reply = {ok: false, error: String(err)}
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`)
})
const stop = async () => {
  await master.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
