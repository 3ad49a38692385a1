// gRPC fuzzer against a LIVE master in another process (test/integration/fixtures/master.ts).
//   node --import tsx bench/fuzz/grpc.ts [--rounds 200] [--seed 1] [--keys 200] [--key-length 64] [--regex-only]
//
// Every method of mooncake.v1.Master is called (each unary one also as a frame of the Pipeline
// stream), with raw bytes through a custom serializer:
// schema-aware messages whose fields hold hostile values (negative / 2^53+1 / 2^64-1 numbers,
// out-of-range enums, bools of 2, empty, 4097-byte and 1 MiB keys, invalid UTF-8, NULs, wrong
// wire types, thousands of repeated items), random protobuf bytes, truncated varints and lengths,
// and pathological regexes (`(a+)+$`, `(.*)*x`, 10k-character alternations, backreferences,
// lookarounds) on the regex methods, with thousands of long keys in the store for them to scan.
// Each answer must come within the deadline and be success or a clean error: a mooncake-error-code
// in the metadata that is not INTERNAL_ERROR (grpc-js's own RESOURCE_EXHAUSTED for a message above
// the size limit is accepted). A concurrent ping loop in a worker thread (its own event loop)
// measures the master's responsiveness: no ping may take more than 200 ms.
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {Worker} from 'node:worker_threads'

import * as grpc from '@grpc/grpc-js'

import {connectMaster} from '../../src/lib/client/master-client.js'
import type * as w from '../../src/lib/proto/generated/index.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
import {killAll, startFixture, type Fixture} from '../../test/helpers/processes.js'
import {Rng} from './wire.js'

const MiB = 1 << 20

// ---------------------------------------------------------------------------------------------
// A minimal protobuf writer.

function varint(v: bigint): Buffer {
  let x = BigInt.asUintN(64, v)
  const out: number[] = []
  do {
    let b = Number(x & 0x7fn)
    x >>= 7n
    if (x > 0n) b |= 0x80
    out.push(b)
  } while (x > 0n)
  return Buffer.from(out)
}
const tag = (field: number, wt: number) => varint(BigInt((field << 3) | wt))
const lenField = (field: number, data: Buffer) => Buffer.concat([tag(field, 2), varint(BigInt(data.length)), data])

interface FieldDesc {
  name: string
  number: number
  label: string
  type: string
  typeName: string
}
type Descs = Map<string, FieldDesc[]>

const NUMBERS = [0n, 1n, -1n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 99n, 1_000_000_000_000n]
const bigKey = Buffer.alloc(MiB, 0x61)

function hostileString(r: Rng): Buffer {
  return r.weighted<() => Buffer>([
    [10, () => Buffer.from('k' + r.int(50))],
    [6, () => Buffer.alloc(0)],
    [4, () => Buffer.alloc(4096, 0x62)],
    [4, () => Buffer.alloc(4097, 0x62)],
    [3, () => Buffer.concat([Buffer.alloc(4095, 0x62), Buffer.from('é')])], // 4097 bytes, 4096 chars
    [2, () => Buffer.alloc(2000, 0xe2).fill(Buffer.from('€'))], // multi-byte near the limit
    [3, () => bigKey],
    [6, () => Buffer.from([0x6b, 0xff, 0xfe, 0x6b])],
    [4, () => Buffer.from([0xed, 0xa0, 0x80])], // an encoded surrogate
    [3, () => Buffer.from([0xc0, 0x80])], // overlong NUL
    [3, () => Buffer.from('a\0b')],
    [3, () => r.bytes(1 + r.int(64))],
    [2, () => Buffer.from('127.0.0.1:1')],
    [2, () => Buffer.from('[::1]:99999')],
  ])()
}

function fieldValue(r: Rng, f: FieldDesc, descs: Descs, depth: number): Buffer {
  // Sometimes the wrong wire type on purpose.
  if (r.chance(0.05)) return r.pick([Buffer.concat([tag(f.number, 0), varint(r.pick(NUMBERS))]), lenField(f.number, r.bytes(r.int(20))), Buffer.concat([tag(f.number, 1), r.bytes(8)]), Buffer.concat([tag(f.number, 5), r.bytes(4)])])
  switch (f.type) {
    case 'TYPE_STRING':
    case 'TYPE_BYTES':
      return lenField(f.number, hostileString(r))
    case 'TYPE_MESSAGE': {
      const inner = depth > 3 ? Buffer.alloc(0) : message(r, f.typeName, descs, depth + 1)
      return lenField(f.number, inner)
    }
    case 'TYPE_BOOL':
      return Buffer.concat([tag(f.number, 0), varint(r.pick([0n, 1n, 2n, 2n ** 64n - 1n]))])
    case 'TYPE_ENUM':
      return Buffer.concat([tag(f.number, 0), varint(r.pick([0n, 1n, 2n, 3n, 99n, -1n, 2n ** 31n]))])
    case 'TYPE_DOUBLE':
    case 'TYPE_FIXED64':
    case 'TYPE_SFIXED64':
      return Buffer.concat([tag(f.number, 1), r.bytes(8)])
    case 'TYPE_FLOAT':
    case 'TYPE_FIXED32':
    case 'TYPE_SFIXED32':
      return Buffer.concat([tag(f.number, 5), r.bytes(4)])
    default:
      return Buffer.concat([tag(f.number, 0), varint(r.pick(NUMBERS))])
  }
}

function message(r: Rng, typeName: string, descs: Descs, depth = 0): Buffer {
  const fields = descs.get(typeName.includes('.') ? typeName : `mooncake.v1.${typeName}`) ?? []
  const parts: Buffer[] = []
  let total = 0
  // At most ~4 MiB per message (one 1 MiB string, or thousands of small items).
  fields: for (const f of fields) {
    if (r.chance(0.25)) continue // missing field
    const n = f.label === 'LABEL_REPEATED' ? r.weighted([[6, 1], [2, 0], [2, 3], [0.5, 2000]]) : r.chance(0.05) ? 2 : 1
    for (let i = 0; i < n; i++) {
      const part = fieldValue(r, f, descs, depth)
      if (total + part.length > 4 * MiB) break fields
      parts.push(part)
      total += part.length
    }
  }
  if (r.chance(0.1)) parts.push(Buffer.concat([tag(50 + r.int(1000), 0), varint(7n)])) // unknown field
  return Buffer.concat(parts)
}

const PATHOLOGICAL_REGEXES = [
  '(a+)+$',
  '(a|a)+$',
  '(.*)*x',
  '(a*)*b',
  '^(a|aa)+$',
  '(x+x+)+y',
  '(\\w+\\s?)+$',
  '(a+){10}$',
  Array.from({length: 10_000}, (_, i) => `k${i}`).join('|'), // 10k alternations (too long)
  Array.from({length: 800}, (_, i) => `a${i}`).join('|'), // long, but under the limit
  '(a)\\1',
  '(?<x>a)\\k<x>',
  '(?=a)a',
  '(?!b)a',
  '(?<=a)b',
  '(?<!a)b',
  '[',
  '(',
  'a{99999999}',
  'a{2,1}',
  '\\',
  '(?',
  '[z-a]',
  '.*'.repeat(2000),
  '(((((((((((((((((((((a)))))))))))))))))))))*',
  '',
  'a'.repeat(4097),
  '\u0000',
  '[\\s\\S]*[\\s\\S]*[\\s\\S]*[\\s\\S]*z',
]

// ---------------------------------------------------------------------------------------------

export interface GrpcFuzzOptions {
  seed: number
  /** Random messages per method (beyond the fixed cases). */
  rounds: number
  /** In-flight calls. @default 4 */
  concurrency?: number
  /** Keys stored before fuzzing, for the regex methods to scan. @default 200 */
  keys?: number
  /** Longest key stored (lengths spread from a quarter of it up). @default 64 */
  keyLength?: number
  /** Only the pathological regexes, on the regex methods (the stall probe). @default false */
  regexOnly?: boolean
  log?: (line: string) => void
}

export interface GrpcFuzzReport {
  seed: number
  methods: number
  calls: number
  seconds: number
  byOutcome: Record<string, number>
  pings: number
  /** Longest ping that counts (see slowPingsWhileMasterIdle). */
  maxPingMs: number
  /** Pings over 200 ms while the master used < 90% of that in CPU: the machine was busy, not the master. */
  slowPingsWhileMasterIdle: number
  slowestCall: {method: string; ms: number; what: string}
  violations: string[]
}

const PINGER = `
const {parentPort, workerData} = require('node:worker_threads')
const grpc = require(workerData.grpcPath)
const client = new grpc.Client(workerData.address, grpc.credentials.createInsecure())
let max = 0, count = 0, slow = [], scheduled = 0
let stop = false
parentPort.on('message', (m) => { if (m === 'stop') stop = true })
const fs = require('node:fs')
// CPU time (ms) of the master: a slow ping during which the master barely ran is the machine's
// scheduler (other processes), not a stalled event loop.
const cpuMs = () => {
  try {
    const f = fs.readFileSync('/proc/' + workerData.pid + '/stat', 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  } catch { return 0 }
}
let lastCpu = 0
const ping = () => new Promise((resolve) => {
  const t0 = performance.now()
  lastCpu = cpuMs()
  client.makeUnaryRequest('/mooncake.v1.Master/ServiceReady', (b) => b, (b) => b, Buffer.alloc(0), new grpc.Metadata(), {deadline: Date.now() + 10000}, (err) => {
    const ms = performance.now() - t0
    resolve(err ? -1 : ms)
  })
})
;(async () => {
  while (!stop) {
    const ms = await ping()
    count++
    if (ms < 0) slow.push('ping failed')
    else {
      const cpu = cpuMs() - lastCpu
      // A stall: the ping waited beyond the limit while the master was busy for most of it.
      if (ms > workerData.limitMs && cpu >= workerData.limitMs * 0.9) {
        if (ms > max) max = ms
        if (slow.length < 20) slow.push(ms.toFixed(0) + ' ms (master CPU ' + cpu + ' ms) at ' + new Date().toISOString())
      } else if (ms <= workerData.limitMs && ms > max) max = ms
      else if (ms > workerData.limitMs) scheduled++
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  client.close()
  parentPort.postMessage({max, count, slow, scheduled})
})()
`

export async function runGrpcFuzz(o: GrpcFuzzOptions): Promise<GrpcFuzzReport> {
  const log = o.log ?? (() => {})
  const r = new Rng(o.seed)
  const concurrency = o.concurrency ?? Number(process.env.FUZZ_CONCURRENCY ?? 4)
  const proto = loadMooncakeProto()
  // The reflection definitions: they carry the message descriptors (requestType) the fuzzer reads.
  const def = proto.reflectionMaster as unknown as Record<string, grpc.MethodDefinition<unknown, unknown> & {requestType: {type: {name: string; field: FieldDesc[]}}}>
  const descs: Descs = new Map()
  for (const [name, t] of Object.entries(proto.packageDefinition)) {
    const field = (t as {type?: {field?: FieldDesc[]}}).type?.field
    if (Array.isArray(field)) descs.set(name, field)
  }
  const violations: string[] = []
  const violate = (v: string) => {
    if (violations.length < 200) violations.push(v)
    log(`VIOLATION: ${v}`)
  }
  const master: Fixture<{address: string}> = await startFixture('test/integration/fixtures/master.ts', [JSON.stringify({port: 0, metricsPort: -1})])
  const address = master.ready.address
  const report: GrpcFuzzReport = {seed: o.seed, methods: 0, calls: 0, seconds: 0, byOutcome: {}, pings: 0, maxPingMs: 0, slowPingsWhileMasterIdle: 0, slowestCall: {method: '', ms: 0, what: ''}, violations}
  const started = Date.now()
  let pinger: Worker | undefined
  try {
    // Long keys for the regex methods to scan.
    const mc = await connectMaster({address})
    try {
      await mc.mountSegment({clientId: 'fuzz', segment: {id: 'seg-id', name: 'seg', endpoints: ['127.0.0.1:1'], size: 1 << 30, hostId: 'h'}})
      const n = o.keys ?? 200
      const longest = o.keyLength ?? 64
      for (let i = 0; i < n; i += 100) {
        await Promise.all(
          Array.from({length: Math.min(100, n - i)}, async (_, j) => {
            const key = `${'a'.repeat(Math.floor(longest / 4) + ((i + j) % Math.ceil((longest * 3) / 4)))}-${i + j}`.slice(-longest)
            await mc.putStart({clientId: 'fuzz', requestId: `r${i + j}`, key, size: 64})
            await mc.putEnd({clientId: 'fuzz', key})
          }),
        )
      }
    } finally {
      mc.close()
    }

    const grpcPath = path.join(path.dirname(fileURLToPath(import.meta.resolve('@grpc/grpc-js'))), 'index.js')
    pinger = new Worker(PINGER, {eval: true, workerData: {address, grpcPath, limitMs: 200, pid: master.pid}})
    const pingResult = new Promise<{max: number; count: number; slow: string[]; scheduled: number}>((resolve) => pinger!.once('message', resolve))

    const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 128 * MiB,
      'grpc.max_receive_message_length': 128 * MiB,
    })
    // One Pipeline stream for the framed jobs (re-opened if the master ends it).
    let frameId = 0
    const frameWaiters = new Map<number, (res: w.PipelineResponse__Output) => void>()
    let frameStream: grpc.ClientDuplexStream<w.PipelineRequest, w.PipelineResponse__Output> | undefined
    const frames = () => {
      if (frameStream) return frameStream
      const p = def.Pipeline!
      const s = client.makeBidiStreamRequest(p.path, p.requestSerialize, p.responseDeserialize, new grpc.Metadata(), {}) as grpc.ClientDuplexStream<w.PipelineRequest, w.PipelineResponse__Output>
      s.on('data', (res: w.PipelineResponse__Output) => {
        const waiter = frameWaiters.get(res.id)
        frameWaiters.delete(res.id)
        waiter?.(res)
      })
      s.on('error', (err: grpc.ServiceError) => {
        if (frameStream === s) frameStream = undefined
        if (err.code !== grpc.status.CANCELLED) violate(`the Pipeline stream failed: ${err.details}`)
        for (const [id, waiter] of frameWaiters) {
          frameWaiters.delete(id)
          waiter({id, status: err.code, body: Buffer.alloc(0), message: err.details, errorCode: '', leader: ''})
        }
      })
      frameStream = s
      return s
    }
    const call = (name: string, body: Buffer, what: string): Promise<void> => {
      const framed = name.startsWith('frame:')
      const method = framed ? name.slice('frame:'.length) : name
      const m = def[method]!
      const t0 = Date.now()
      report.calls++
      const settle = (err: grpc.ServiceError | null) => {
        const ms = Date.now() - t0
        if (ms > report.slowestCall.ms) report.slowestCall = {method, ms, what}
        if (process.env.FUZZ_DEBUG && ms > 200) log(`slow call ${ms} ms: ${method} ${what} (${body.length} bytes) -> ${err ? err.details : 'OK'}`)
        let outcome: string
        if (!err) outcome = 'OK'
        else {
          const code = err.metadata?.get('mooncake-error-code')[0] as string | undefined
          outcome = code ?? `grpc:${grpc.status[err.code]}`
          if (err.code === grpc.status.DEADLINE_EXCEEDED && !code) violate(`${method} (${what}): no answer within the deadline`)
          else if (!code && !(err.code === grpc.status.RESOURCE_EXHAUSTED && body.length > 64 * MiB)) violate(`${method} (${what}): an error without mooncake-error-code: ${grpc.status[err.code]} ${err.details}`)
          else if (code === 'INTERNAL_ERROR') violate(`${method} (${what}): INTERNAL_ERROR ${err.details}`)
        }
        report.byOutcome[outcome] = (report.byOutcome[outcome] ?? 0) + 1
      }
      return new Promise((resolve) => {
        if (framed) {
          // The same request as a frame of the Pipeline stream: the frame's answer is judged like a call's.
          const id = ++frameId
          frameWaiters.set(id, (res) => {
            const md = new grpc.Metadata()
            if (res.errorCode) md.set('mooncake-error-code', res.errorCode)
            settle(res.status === 0 ? null : Object.assign(new Error(res.message), {code: res.status, details: res.message, metadata: md}))
            resolve()
          })
          frames().write({id, method: m.path, body, deadlineMs: Date.now() + 10_000})
          return
        }
        if (m.responseStream) {
          const stream = client.makeServerStreamRequest(m.path, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), {deadline: Date.now() + 10_000})
          let pages = 0
          stream.on('data', () => {
            if (++pages > 100_000) stream.cancel()
          })
          stream.on('error', (err: grpc.ServiceError) => {
            if (err.code !== grpc.status.CANCELLED) settle(err)
            resolve()
          })
          stream.on('end', () => {
            settle(null)
            resolve()
          })
          return
        }
        client.makeUnaryRequest(m.path, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), {deadline: Date.now() + 10_000}, (err) => {
          settle(err)
          resolve()
        })
      })
    }

    // The cases, method by method.
    const jobs: Array<[string, Buffer, string]> = []
    const methods = Object.keys(def).filter((name) => name !== 'UnmountSegment')
    // UnmountSegment last, so the segment the other calls use stays around.
    methods.push('UnmountSegment')
    report.methods = methods.length
    for (const name of methods) {
      if (o.regexOnly && !name.includes('Regex')) continue
      const reqType = def[name]!.requestType.type.name
      if (!o.regexOnly) {
      jobs.push([name, Buffer.alloc(0), 'empty message'])
      jobs.push([name, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), 'length beyond the buffer'])
      jobs.push([name, Buffer.from([0x08, 0xff, 0xff, 0xff]), 'truncated varint'])
      jobs.push([name, Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'an 11-byte varint'])
      jobs.push([name, Buffer.from([0x0b, 0x0b, 0x0b, 0x0b]), 'unterminated groups'])
      jobs.push([name, Buffer.from([0x07]), 'wire type 7'])
      jobs.push([name, lenField(1, bigKey), 'field 1 = 1 MiB'])
      jobs.push([name, lenField(1, Buffer.from([0xff, 0xfe, 0xfd])), 'field 1 = invalid UTF-8'])
      jobs.push([name, Buffer.concat(Array.from({length: 2000}, () => lenField(1, Buffer.from([0x80])))), '2000 invalid UTF-8 strings'])
      jobs.push([name, Buffer.concat([tag(1, 0), varint(-1n), tag(2, 0), varint(2n ** 63n), tag(3, 0), varint(2n ** 53n + 1n), tag(4, 0), varint(-1n)]), 'negative and huge numbers'])
      for (let i = 0; i < 3; i++) jobs.push([name, r.bytes(1 + r.int(2048)), 'random bytes'])
      for (let i = 0; i < o.rounds; i++) jobs.push([name, message(r, reqType, descs), 'hostile fields'])
      // Each unary method's cases again, as frames of the Pipeline stream.
      if (!def[name]!.requestStream && !def[name]!.responseStream) {
        for (const [n, body, what] of jobs.filter(([n]) => n === name)) jobs.push([`frame:${n}`, body, what])
      }
      }
      if (name.includes('Regex') || name === 'GetAllKeys') {
        for (const re of PATHOLOGICAL_REGEXES) {
          const field = name === 'GetAllKeys' ? 3 : 1
          jobs.push([name, lenField(field, Buffer.from(re)), `regex ${JSON.stringify(re.length > 40 ? re.slice(0, 40) + '...' : re)} (${re.length} chars)`])
        }
      }
    }
    // One message above the 64 MiB limit.
    if (!o.regexOnly) jobs.push(['BatchExistKey', Buffer.concat(Array.from({length: 65}, () => lenField(1, bigKey))), 'a 65 MiB message'])
    // Remove* run last with dryRun-less hostile input may delete the keys: keep their order.
    let next = 0
    await Promise.all(
      Array.from({length: concurrency}, async () => {
        while (next < jobs.length) {
          const [name, body, what] = jobs[next++]!
          await call(name, body, what)
        }
      }),
    )
    frameStream?.cancel()
    client.close()
    pinger.postMessage('stop')
    const pings = await pingResult
    report.pings = pings.count
    report.maxPingMs = Math.round(pings.max)
    report.slowPingsWhileMasterIdle = pings.scheduled
    for (const s of pings.slow) violate(`the master did not answer a ping within 200 ms: ${s}`)
    if (pings.count < 5) violate(`only ${pings.count} pings completed`)
    // Still serving, and still consistent.
    const after = await connectMaster({address})
    try {
      await after.stats()
    } catch (err) {
      violate(`the master stopped serving: ${(err as Error).message}`)
    } finally {
      after.close()
    }
    if (master.child.exitCode !== null) violate(`the master exited: ${master.stderr().slice(-2000)}`)
  } finally {
    await pinger?.terminate()
    await master.kill('SIGKILL')
    await killAll()
  }
  report.seconds = (Date.now() - started) / 1000
  return report
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({
    options: {
      rounds: {type: 'string', default: '200'},
      seed: {type: 'string', default: '1'},
      keys: {type: 'string', default: '200'},
      'key-length': {type: 'string', default: '64'},
      'regex-only': {type: 'boolean', default: false},
    },
  })
  const report = await runGrpcFuzz({
    seed: Number(values.seed),
    rounds: Number(values.rounds),
    keys: Number(values.keys),
    keyLength: Number(values['key-length']),
    regexOnly: values['regex-only'],
    log: (l) => process.stderr.write(l + '\n'),
  })
  process.stdout.write(JSON.stringify(report, null, 2) + '\n')
  process.exit(report.violations.length > 0 ? 1 : 0)
}
