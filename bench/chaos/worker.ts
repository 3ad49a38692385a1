/**
 * Chaos/load worker: one process running N logical clients (one MooncakeClient each), each doing
 * put/get/upsert/remove on its own keys `w<proc>g<gen>c<i>/k<j>` with values from values.ts.
 * argv[2] = JSON WorkerOptions. Prints {"ready":"worker"} once connected, then runs for durationMs
 * (or until SIGTERM) and prints one summary line {"summary":{...}} and exits 0.
 * With `ledger`, every operation is appended to that file (JSON lines) before it starts (s:"begin")
 * and when it ends (s:"ok" / "fail" with code / "bad" with why), so a checker can rebuild what
 * was acknowledged even if this process is SIGKILLed.
 */
import {closeSync, openSync, writeSync} from 'node:fs'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {connectHaMaster} from './ha-connect.js'
import {makeValue, prng, verifyValue} from './values.js'

export interface WorkerOptions {
  masterAddress: string
  /** HA: find the leader through etcd (masterAddress is then ignored). */
  etcd?: string[]
  clusterId?: string
  /** HA: deadline of one attempt on one master. @default 1_500 */
  attemptTimeoutMs?: number
  proc: number
  gen: number
  seed: number
  clients: number
  durationMs: number
  keysPerClient: number
  minSize: number
  maxSize: number
  timeoutMs: number
  ledger?: string
  /** Sample one latency in every N (all by default). */
  sampleEvery?: number
  stagingBytes?: number
}

const o = JSON.parse(process.argv[2] ?? '{}') as WorkerOptions
const ledgerFd = o.ledger ? openSync(o.ledger, 'a') : -1
const log = (rec: Record<string, unknown>) => {
  if (ledgerFd >= 0) writeSync(ledgerFd, `${JSON.stringify({t: Date.now(), ...rec})}\n`)
}

type Op = 'put' | 'get' | 'upsert' | 'remove'
const counts: Record<string, number> = {}
const errors: Record<string, Record<string, number>> = {put: {}, get: {}, upsert: {}, remove: {}}
const lat: Record<Op, number[]> = {put: [], get: [], upsert: [], remove: []}
const violations: Array<Record<string, unknown>> = []
let longestOpMs = 0
let verifiedGets = 0
let bytesVerified = 0
let stopping = false
const start = Date.now()
process.on('SIGTERM', () => {
  stopping = true
})

const masters: Array<{close(): void}> = []
const clients = await Promise.all(
  Array.from({length: o.clients}, async () => {
    const master = o.etcd ? await connectHaMaster(o) : undefined
    if (master) masters.push(master)
    return MooncakeClient.connect({
      masterAddress: o.masterAddress,
      master,
      transport: 'tcp',
      timeoutMs: o.timeoutMs,
      stagingBytes: o.stagingBytes ?? 8 * 2 ** 20,
      maxInflightBytes: o.stagingBytes ?? 8 * 2 ** 20,
    })
  }),
)
process.stdout.write(`${JSON.stringify({ready: 'worker', pid: process.pid})}\n`)

const logMin = Math.log(o.minSize)
const logMax = Math.log(o.maxSize)

async function run(ci: number): Promise<void> {
  const client = clients[ci]
  const rand = prng((o.seed * 1_000_003 + o.proc * 7919 + o.gen * 104_729 + ci) >>> 0)
  const prefix = `w${o.proc}g${o.gen}c${ci}/`
  // What this logical client believes: present version, 0 = absent, -1 = unknown.
  const state = new Map<string, number>()
  let nextVersion = 1
  const sampleEvery = o.sampleEvery ?? 1
  let n = 0
  while (!stopping && Date.now() - start < o.durationMs) {
    const key = `${prefix}k${Math.floor(rand() * o.keysPerClient)}`
    const cur = state.get(key) ?? 0
    const r = rand()
    let op: Op
    if (cur === 0) op = r < 0.15 ? 'get' : 'put'
    else if (cur === -1) op = r < 0.6 ? 'get' : 'remove'
    else op = r < 0.55 ? 'get' : r < 0.75 ? 'upsert' : 'remove'
    const version = op === 'put' || op === 'upsert' ? nextVersion++ : 0
    const size = version ? Math.max(16, Math.round(Math.exp(logMin + rand() * (logMax - logMin)))) : 0
    log({c: ci, op, key, v: version, size, s: 'begin'})
    const t0 = performance.now()
    try {
      if (op === 'put' || op === 'upsert') {
        await client.put(key, makeValue(key, version, size), {upsert: op === 'upsert'})
        state.set(key, version)
        log({c: ci, op, key, v: version, size, s: 'ok'})
      } else if (op === 'remove') {
        await client.remove(key)
        state.set(key, 0)
        log({c: ci, op, key, s: 'ok'})
      } else {
        const bytes = await client.get(key)
        const verdict = verifyValue(key, bytes)
        if (!verdict.ok) {
          violations.push({kind: 'corrupt-get', key, why: verdict.why})
          log({c: ci, op, key, s: 'bad', why: verdict.why, v: verdict.version})
          state.set(key, -1)
        } else {
          verifiedGets += 1
          bytesVerified += bytes.length
          state.set(key, verdict.version)
          log({c: ci, op, key, v: verdict.version, size: bytes.length, s: 'ok'})
        }
      }
      const ms = performance.now() - t0
      if (n++ % sampleEvery === 0) lat[op].push(ms)
      counts[`${op}:OK`] = (counts[`${op}:OK`] ?? 0) + 1
    } catch (err) {
      const code = err instanceof MooncakeError ? err.code : `JS:${(err as Error)?.name ?? 'unknown'}`
      if (!(err instanceof MooncakeError)) violations.push({kind: 'non-mooncake-error', op, key, message: String(err)})
      errors[op][code] = (errors[op][code] ?? 0) + 1
      counts[`${op}:${code}`] = (counts[`${op}:${code}`] ?? 0) + 1
      log({c: ci, op, key, v: version, s: 'fail', code})
      if (code === 'OBJECT_NOT_FOUND') state.set(key, 0)
      else if (code === 'OBJECT_ALREADY_EXISTS' && op === 'put') state.set(key, -1)
      else if (op !== 'get' || code !== 'OBJECT_NOT_FOUND') state.set(key, -1)
      // Back off a little after failures that mean the cluster is unwell.
      if (code === 'UNAVAILABLE' || code === 'RPC_TIMEOUT' || code === 'DEADLINE_EXCEEDED') await new Promise((r) => setTimeout(r, 50))
    }
    const ms = performance.now() - t0
    if (ms > longestOpMs) longestOpMs = ms
    if (ms > o.timeoutMs + 5000) violations.push({kind: 'op-past-deadline', op, key, ms: Math.round(ms)})
  }
}

await Promise.all(clients.map((_, i) => run(i)))
await Promise.all(clients.map((c) => c.close().catch(() => {})))
for (const m of masters) m.close()
if (ledgerFd >= 0) closeSync(ledgerFd)
// stdout to a pipe is asynchronous: exit only once the (large) summary line has been flushed.
process.stdout.write(
  `${JSON.stringify({summary: {proc: o.proc, gen: o.gen, elapsedMs: Date.now() - start, counts, errors, lat, violations, longestOpMs: Math.round(longestOpMs), verifiedGets, bytesVerified}})}\n`,
  () => process.exit(0),
)

