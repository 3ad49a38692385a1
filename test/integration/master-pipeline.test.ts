// The Pipeline rpc end to end, against masters in their own processes over real TCP: the same
// answers and errors as unary calls, many calls in flight matched by id, a master killed or
// frozen under calls in flight, an idle stream that lets the process exit, and signed frames.
// grpc-js's channelz counters show how many gRPC calls (HTTP/2 streams) the client really opened.
import {setTimeout as sleep} from 'node:timers/promises'

import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient, type MasterClientOptions} from '../../src/lib/client/master-client.js'
import {isMooncakeError} from '../../src/lib/errors.js'
import {killAll, startFixture, waitFor} from '../helpers/processes.js'
import {type MasterProcess, rejects, segment, spawnMaster} from './master-grpc-helpers.js'

const masters: MasterProcess[] = []
const clients: MasterClient[] = []

async function master(options: Record<string, unknown> = {}): Promise<MasterProcess> {
  const m = await spawnMaster(options)
  masters.push(m)
  return m
}

async function client(options: MasterClientOptions): Promise<MasterClient> {
  const c = await connectMaster(options)
  clients.push(c)
  return c
}

test.after(async () => {
  for (const c of clients) c.close()
  for (const m of masters) {
    // A stopped process would never handle SIGTERM.
    if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGCONT')
    await m.stop('SIGKILL')
  }
  await killAll()
})

/** gRPC calls this process has started towards `address` (all its channels), per grpc-js's channelz. */
function callsStarted(address: string): Promise<number> {
  type Top = {channel?: Array<{data?: {target?: string; calls_started?: unknown}}>}
  return new Promise((resolve, reject) => {
    const request = {request: {start_channel_id: '0', max_results: '10000'}}
    const getTop = grpc.getChannelzHandlers().GetTopChannels as unknown as (call: unknown, cb: (err: unknown, res?: Top) => void) => void
    getTop(request, (err, res) => {
      if (err) return reject(err)
      let n = 0
      for (const ch of res?.channel ?? []) if (ch.data?.target?.endsWith(address)) n += Number(ch.data.calls_started)
      resolve(n)
    })
  })
}

type Outcome = {ok: unknown} | {code: string; message: string}

/** Lease deadlines depend on the moment each call ran: only whether one was granted compares. */
function normalize(value: unknown): unknown {
  if (value === undefined) return undefined
  return JSON.parse(JSON.stringify(value, (k, v: unknown) => (k === 'leaseExpiresAt' ? (typeof v === 'number' && v > 0 ? 'granted' : v) : v)))
}

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return {ok: normalize(await p)}
  } catch (err) {
    if (!isMooncakeError(err)) throw err
    return {code: err.code, message: err.message}
  }
}

const codeOf = (o: Outcome) => ('code' in o ? o.code : 'ok')

/** What `p` rejects with, and when; a success fails the test. */
async function failure(p: Promise<unknown>, what: string): Promise<{err: unknown; at: number}> {
  try {
    await p
  } catch (err) {
    return {err, at: Date.now()}
  }
  assert.unreachable(`${what} succeeded`)
  throw new Error('unreachable')
}

test('pipelined and unary calls give identical answers and identical errors', async () => {
  // Two fresh masters driven through the same sequence: one client pipelined, one not.
  const [mp, mu] = await Promise.all([master(), master()])
  const piped = await client({address: mp.address, timeoutMs: 10_000})
  const unary = await client({address: mu.address, timeoutMs: 10_000, pipeline: false})
  const put = (key: string, requestId: string, size = 1000) => ({clientId: 'w', requestId, key, size})
  const steps: Array<[string, string, (c: MasterClient) => Promise<unknown>]> = [
    ['stats of an empty master', 'ok', (c) => c.stats()],
    ['putStart before any segment', 'NO_AVAILABLE_HANDLE', (c) => c.putStart(put('k1', 'r1'))],
    ['mountSegment', 'ok', (c) => c.mountSegment({clientId: 'owner', segment: segment('seg-a', 8 << 20)})],
    ['putStart', 'ok', (c) => c.putStart(put('k1', 'r1'))],
    ['putStart retried with its request id', 'ok', (c) => c.putStart(put('k1', 'r1'))],
    ['putStart of a key being written', 'OBJECT_ALREADY_EXISTS', (c) => c.putStart(put('k1', 'r2'))],
    ['putStart of size 0', 'INVALID_PARAMS', (c) => c.putStart(put('k0', 'r0', 0))],
    ['getReplicaList of a put in progress', 'REPLICA_IS_NOT_READY', (c) => c.getReplicaList('k1')],
    ['putEnd by another client', 'ILLEGAL_CLIENT', (c) => c.putEnd({clientId: 'intruder', key: 'k1'})],
    ['putEnd', 'ok', (c) => c.putEnd({clientId: 'w', key: 'k1', checksum: 0xdeadbeef})],
    ['putEnd again', 'ok', (c) => c.putEnd({clientId: 'w', key: 'k1', checksum: 0xdeadbeef})],
    ['putEnd of a key never started', 'OBJECT_NOT_FOUND', (c) => c.putEnd({clientId: 'w', key: 'nope'})],
    ['getReplicaList', 'ok', (c) => c.getReplicaList('k1')],
    ['getReplicaList of a missing key', 'OBJECT_NOT_FOUND', (c) => c.getReplicaList('missing')],
    ['query', 'ok', (c) => c.query('k1')],
    ['query of a missing key', 'OBJECT_NOT_FOUND', (c) => c.query('missing')],
    ['existKey', 'ok', (c) => c.existKey('k1')],
    ['existKey of a missing key', 'ok', (c) => c.existKey('missing')],
    ['batchGetReplicaList with a missing key', 'ok', (c) => c.batchGetReplicaList(['k1', 'missing'])],
    ['querySegments', 'ok', (c) => c.querySegments('seg-a')],
    ['querySegments of an unknown segment', 'SEGMENT_NOT_FOUND', (c) => c.querySegments('seg-x')],
    ['remove under a lease', 'OBJECT_HAS_LEASE', (c) => c.remove({key: 'k1'})],
    ['stats', 'ok', (c) => c.stats()],
    ['remove --force', 'ok', (c) => c.remove({key: 'k1', force: true})],
    ['remove of a missing key', 'OBJECT_NOT_FOUND', (c) => c.remove({key: 'k1', force: true})],
    ['ping', 'ok', (c) => c.ping({clientId: 'owner'})],
  ]
  const [pipedBefore, unaryBefore] = await Promise.all([callsStarted(mp.address), callsStarted(mu.address)])
  for (const [what, expected, run] of steps) {
    const viaPipeline = await outcome(run(piped))
    const viaUnary = await outcome(run(unary))
    assert.is(codeOf(viaPipeline), expected, `${what} over Pipeline: ${JSON.stringify(viaPipeline)}`)
    assert.equal(viaPipeline, viaUnary, what)
  }
  assert.is(await piped.existKey('missing'), false)
  assert.equal((await piped.stats()).keys, 0)
  // The pipelined client sent all of that over the stream it opened to connect (one more if a
  // loaded machine left it idle for 2 s); the other opened a stream per call, which shows the
  // counters count what they should.
  const pipedCalls = (await callsStarted(mp.address)) - pipedBefore
  const unaryCalls = (await callsStarted(mu.address)) - unaryBefore
  assert.ok(pipedCalls <= 2, `the pipelined client opened ${pipedCalls} streams for ${steps.length + 2} calls`)
  assert.ok(unaryCalls >= steps.length, `the unary client opened ${unaryCalls} streams for ${steps.length} calls`)
})

test('1000 calls in flight at once on one stream: each gets its own answer or error', async () => {
  const m = await master()
  const c = await client({address: m.address, timeoutMs: 20_000})
  await c.mountSegment({clientId: 'owner', segment: segment('seg-b', 64 << 20)})
  const n = 500
  const keys = Array.from({length: n}, (_, i) => `conc/${i}`)
  const reqs = keys.map((key, i) => ({clientId: 'w', requestId: `r-${key}`, key, size: 100 + i}))
  assert.ok((await c.batchPutStart(reqs)).every((r) => r.ok))
  assert.ok((await c.batchPutEnd(keys.map((key) => ({clientId: 'w', key})))).every((r) => r.ok))

  const before = await callsStarted(m.address)
  const lists = keys.map((key) => c.getReplicaList(key))
  const infos = keys.map((key) => c.query(key))
  const missing = keys.map((key) => outcome(c.query(`${key}/missing`)))
  const [listed, queried, notFound] = await Promise.all([Promise.all(lists), Promise.all(infos), Promise.all(missing)])
  for (let i = 0; i < n; i++) {
    assert.is(listed[i]!.size, 100 + i, `getReplicaList ${keys[i]}`)
    assert.is(listed[i]!.replicas.length, 1)
    assert.is(queried[i]!.key, keys[i])
    assert.is(queried[i]!.size, 100 + i)
    const o = notFound[i]!
    assert.is(codeOf(o), 'OBJECT_NOT_FOUND')
    assert.match((o as {message: string}).message, JSON.stringify(`${keys[i]}/missing`))
  }
  const streams = (await callsStarted(m.address)) - before
  assert.ok(streams <= 1, `${streams} streams opened for ${3 * n} calls`)
})

test('master killed under calls in flight: they fail UNAVAILABLE at once; a master restarted on the port serves the same client', async () => {
  let m = await master()
  const port = Number(m.address.split(':').at(-1))
  const c = await client({address: m.address, timeoutMs: 20_000})
  await c.mountSegment({clientId: 'owner', segment: segment('seg-c', 8 << 20)})
  // Frozen first, so that every call below is certainly in flight (sent, unanswered) when it dies.
  m.child.kill('SIGSTOP')
  const inFlight: Array<[string, Promise<unknown>]> = []
  for (let i = 0; i < 40; i++) {
    inFlight.push([`getReplicaList ${i}`, c.getReplicaList(`k/${i}`)])
    inFlight.push([`query ${i}`, c.query(`k/${i}`)])
    // Not idempotent, so never retried: the stream's own failure must surface.
    inFlight.push([`remove ${i}`, c.remove({key: `k/${i}`})])
    inFlight.push([`putRevoke ${i}`, c.putRevoke({clientId: 'w', key: `k/${i}`})])
  }
  inFlight.push(['stats', c.stats()])
  const settled = inFlight.map(async ([what, p]) => ({what, ...(await failure(p, `${what} against a dead master`))}))
  await sleep(300)
  const killedAt = Date.now()
  await m.stop('SIGKILL')
  const failures = await Promise.all(settled)
  for (const {what, err, at} of failures) {
    assert.ok(isMooncakeError(err), `${what}: ${String(err)}`)
    assert.is(err.code, 'UNAVAILABLE', `${what}: ${err.message}`)
    assert.not.match(err.message, /did not answer/, `${what} failed by its deadline, not by the stream's end`)
    assert.ok(at - killedAt < 5_000, `${what} failed ${at - killedAt} ms after the kill`)
  }

  m = await master({port})
  assert.is(m.address, `127.0.0.1:${port}`)
  // The same client object, on a new stream (grpc-js reconnects within its 2 s backoff).
  const stats = await waitFor(() => c.stats().catch(() => undefined), 15_000, 'the restarted master')
  assert.is(stats.keys, 0)
  assert.is((await c.ping({clientId: 'owner'})).status, 'NEED_REMOUNT')
  await c.mountSegment({clientId: 'owner', segment: segment('seg-c', 8 << 20)})
  await c.putStart({clientId: 'w', requestId: 'again', key: 'k/again', size: 64})
  await c.putEnd({clientId: 'w', key: 'k/again'})
  const answers = await Promise.all(Array.from({length: 200}, (_, i) => outcome(i === 0 ? c.query('k/again') : c.query(`k/${i}`))))
  assert.is((answers[0] as {ok: {size: number}}).ok.size, 64)
  for (let i = 1; i < 200; i++) assert.match((answers[i] as {message: string}).message, JSON.stringify(`k/${i}`))
})

test('a frozen master: calls fail at their own deadline; after SIGCONT late answers are dropped and the client goes on', async () => {
  const m = await master()
  const c = await client({address: m.address, timeoutMs: 1_500})
  await c.mountSegment({clientId: 'owner', segment: segment('seg-d', 8 << 20)})
  const keys = Array.from({length: 50}, (_, i) => `d/${i}`)
  await c.batchPutStart(keys.map((key, i) => ({clientId: 'w', requestId: key, key, size: 10 + i})))
  await c.batchPutEnd(keys.map((key) => ({clientId: 'w', key})))
  m.child.kill('SIGSTOP')
  try {
    const t0 = Date.now()
    const timed = async (p: Promise<unknown>) => {
      const {err, at} = await failure(p, 'a call to a frozen master')
      return {err, took: at - t0}
    }
    // A shorter deadline on the same stream (connectMaster's per-call timeout; not in the MasterClient type).
    const short = timed((c as unknown as {serviceReady(timeoutMs: number): Promise<unknown>}).serviceReady(700))
    const long = keys.slice(0, 20).map((key) => timed(c.getReplicaList(key)))
    const s = await short
    assert.ok(isMooncakeError(s.err) && s.err.code === 'UNAVAILABLE', String(s.err))
    assert.match(s.err.message, 'did not answer ServiceReady within 700 ms')
    assert.ok(s.took >= 690 && s.took < 1_700, `ServiceReady(700 ms) failed after ${s.took} ms`)
    for (const l of await Promise.all(long)) {
      assert.ok(isMooncakeError(l.err) && l.err.code === 'UNAVAILABLE', String(l.err))
      assert.match(l.err.message, 'did not answer GetReplicaList within 1500 ms')
      assert.ok(l.took >= 1_490 && l.took < 2_500, `GetReplicaList (1500 ms) failed after ${l.took} ms`)
    }
  } finally {
    m.child.kill('SIGCONT')
  }
  // Sent right away, so these share the stream with the late answers to the calls above.
  const infos = await Promise.all(keys.map((key) => c.query(key)))
  infos.forEach((info, i) => {
    assert.is(info.key, keys[i])
    assert.is(info.size, 10 + i)
  })
  // Past the idle time the stream is ended; the next call opens another one.
  await sleep(2_500)
  const before = await callsStarted(m.address)
  assert.is((await c.getReplicaList('d/7')).size, 17)
  assert.is((await callsStarted(m.address)) - before, 1, 'one new stream after the idle one ended')
})

test('a process that never closes its client exits on its own once the stream is idle', async () => {
  const m = await master()
  const child = await startFixture<{keys: number; missing: string}>('test/integration/fixtures/pipeline-no-close.ts', [m.address])
  const t0 = Date.now()
  assert.is(child.ready.keys, 0)
  assert.is(child.ready.missing, 'OBJECT_NOT_FOUND')
  const exit = await Promise.race([child.exited, sleep(6_000).then(() => undefined)])
  assert.ok(exit !== undefined, `still running ${Date.now() - t0} ms after its last call; stderr: ${child.stderr()}`)
  assert.equal(exit, {code: 0, signal: null}, child.stderr())
})

test('signed calls over the pipeline; a wrong or missing token is refused as for unary calls', async () => {
  const token = 'pipeline test token'
  const m = await master({token})
  const c = await client({address: m.address, token})
  const before = await callsStarted(m.address)
  await c.mountSegment({clientId: 'owner', segment: segment('seg-f', 8 << 20)})
  await c.putStart({clientId: 'w', requestId: 'f', key: 'f/1', size: 123})
  await c.putEnd({clientId: 'w', key: 'f/1'})
  assert.is((await c.getReplicaList('f/1')).size, 123)
  // Each frame carries its own nonce: many signed calls at once are all accepted.
  const many = await Promise.all(Array.from({length: 200}, (_, i) => outcome(i % 2 ? c.existKey('f/1') : c.query(`f/missing/${i}`))))
  many.forEach((o, i) => assert.is(codeOf(o), i % 2 ? 'ok' : 'OBJECT_NOT_FOUND', JSON.stringify(o)))
  assert.ok((await callsStarted(m.address)) - before <= 2, 'signed calls went over the pipeline')

  const refusals: string[] = []
  for (const options of [{token: 'wrong'}, {token: 'wrong', pipeline: false}, {}, {pipeline: false}]) {
    const err = await rejects(connectMaster({address: m.address, ...options}), 'UNAUTHENTICATED')
    refusals.push(err.message)
  }
  assert.is(refusals[0], refusals[1], 'a wrong token: the same refusal over Pipeline and unary')
  assert.is(refusals[2], refusals[3], 'no token: the same refusal over Pipeline and unary')
  // The refused clients did not disturb the signed one.
  assert.is((await c.query('f/1')).size, 123)
})

// The calls beside an oversized message must not share its fate: over unary calls only that call
// fails. (On a Pipeline stream, grpc-js ends the whole stream when one message is over the limit.)
test('an oversized request fails alone: the calls in flight beside it still get their answers', async () => {
  const m = await master()
  const huge = Array.from({length: 70_000}, (_, i) => `${i}-${'x'.repeat(1000)}`)
  for (const pipeline of [false, true]) {
    const c = await client({address: m.address, timeoutMs: 20_000, pipeline})
    const before = Array.from({length: 20}, (_, i) => outcome(c.existKey(`small/${i}`)))
    const big = outcome(c.batchExistKey(huge))
    const after = Array.from({length: 20}, (_, i) => outcome(c.existKey(`small/${i}`)))
    const bigOutcome = await big
    assert.is(codeOf(bigOutcome), 'INVALID_PARAMS', JSON.stringify(bigOutcome))
    for (const o of [...(await Promise.all(before)), ...(await Promise.all(after))]) {
      assert.equal(o, {ok: false}, `pipeline: ${pipeline}: a call in flight beside the oversized request failed with it`)
    }
  }
})

test('an oversized answer fails alone: a call in flight beside it still gets its answer', async () => {
  const m = await master({leaseTtlMs: 2_000})
  const setup = await client({address: m.address, timeoutMs: 30_000})
  await setup.mountSegment({clientId: 'owner', segment: segment('seg-big', 1 << 30)})
  // 20 000 keys of 4 KB: the QueryByRegex answer is about 80 MB, over the 64 MiB limit.
  for (let b = 0; b < 4; b++) {
    const reqs = Array.from({length: 5_000}, (_, i) => ({clientId: 'w', requestId: '', key: `big/${b}/${i}/${'y'.repeat(4_000)}`, size: 1}))
    assert.ok((await setup.batchPutStart(reqs)).every((r) => r.ok))
    assert.ok((await setup.batchPutEnd(reqs.map((r) => ({clientId: 'w', key: r.key})))).every((r) => r.ok))
  }
  for (const pipeline of [false, true]) {
    const c = await client({address: m.address, timeoutMs: 30_000, pipeline})
    // A call that stays in flight: draining a segment whose object is under a lease.
    const name = `seg-drain-${pipeline}`
    await c.mountSegment({clientId: 'owner', segment: segment(name, 1 << 20)})
    const key = `leased/${pipeline}`
    await c.putStart({clientId: 'w', requestId: '', key, size: 1, config: {preferredSegments: [name]}})
    await c.putEnd({clientId: 'w', key})
    assert.is((await c.getReplicaList(key)).replicas[0]?.memory?.segment, name)
    const drain = outcome(c.unmountSegment({name, drain: true}))
    await sleep(200)
    const big = await outcome(c.queryByRegex('^big/'))
    assert.is(codeOf(big), 'INVALID_PARAMS', JSON.stringify(big))
    // The master unmounts the segment once the lease is over (it did so even when its answer was lost).
    assert.equal(await drain, {ok: undefined}, `pipeline: ${pipeline}: the drain in flight beside the oversized answer failed with it`)
  }
})

// As with unary calls, a master told to stop lets the calls in flight finish and takes no new
// ones: it exits at once, and its clients see UNAVAILABLE (a transport failure, retried when safe).
test('SIGTERM: a master with a busy pipelined client exits at once and refuses new calls as UNAVAILABLE', async () => {
  for (const pipeline of [false, true]) {
    const m = await master()
    const c = await client({address: m.address, timeoutMs: 5_000, pipeline})
    await c.mountSegment({clientId: 'owner', segment: segment('seg-t', 64 << 20)})
    let stopping = 0
    let done = false
    let acceptedAfter = 0
    const errors = new Map<string, number>()
    const busy = (async () => {
      for (let i = 0; !done; i++) {
        try {
          await c.putStart({clientId: 'w', requestId: '', key: `t/${i}`, size: 10})
          if (stopping) acceptedAfter++
        } catch (err) {
          const code = isMooncakeError(err) ? err.code : String(err)
          errors.set(code, (errors.get(code) ?? 0) + 1)
          await sleep(20)
        }
      }
    })()
    await sleep(300)
    stopping = Date.now()
    await m.stop('SIGTERM')
    const exitMs = Date.now() - stopping
    await sleep(100)
    done = true
    await busy
    const seen = `pipeline: ${pipeline}: exit after ${exitMs} ms, ${acceptedAfter} putStarts accepted after SIGTERM, errors ${JSON.stringify([...errors])}`
    assert.is(m.child.exitCode, 0, seen)
    assert.ok(exitMs < 1_000, seen)
    assert.equal([...errors.keys()], ['UNAVAILABLE'], seen)
  }
})

test.run()
