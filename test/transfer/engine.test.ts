// One process: options, lifecycle, segments and registrations. Transfers between processes
// are in transfer.test.ts.
import {existsSync, statSync} from 'node:fs'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {ErrorCode, isMooncakeError} from '../../src/lib/errors.js'
import {loadNative, resolveTransferOptions, TRANSFER_DEFAULTS, TransferEngine} from '../../src/lib/transfer/index.js'

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return isMooncakeError(err) ? err.code : `not a MooncakeError: ${String(err)}`
  }
  return undefined
}

test('options: defaults and validation', () => {
  const o = resolveTransferOptions()
  assert.equal(o.listenHosts, ['127.0.0.1'])
  assert.is(o.sliceSize, 1 << 20)
  assert.is(o.lanesPerPeer, 4)
  assert.is(o.requestTimeoutMs, 30_000)
  assert.equal(resolveTransferOptions({lanesPerPeer: undefined}), {...TRANSFER_DEFAULTS, listenHosts: ['127.0.0.1']})
  assert.is(code(() => resolveTransferOptions({sliceSize: 1000})), 'INVALID_PARAMS')
  assert.is(code(() => resolveTransferOptions({sliceSize: 32 << 20})), 'INVALID_PARAMS')
  assert.is(code(() => resolveTransferOptions({listenHosts: ['localhost']})), 'INVALID_PARAMS')
  assert.is(code(() => resolveTransferOptions({port: 70000})), 'INVALID_PARAMS')
  assert.is(code(() => resolveTransferOptions({lanesPerPeer: 0})), 'INVALID_PARAMS')
  assert.ok(resolveTransferOptions({listenHosts: ['::1', '127.0.0.2']}))
  assert.is(o.batchScheduling, true)
  assert.is(code(() => resolveTransferOptions({batchScheduling: 'no' as unknown as boolean})), 'INVALID_PARAMS')
  assert.is(code(() => resolveTransferOptions({sweepOnStart: 0 as unknown as boolean})), 'INVALID_PARAMS')
})

test('state machine: created -> running -> closing -> closed', async () => {
  const engine = new TransferEngine({listenHosts: ['127.0.0.1']})
  assert.is(engine.state, 'created')
  assert.is(code(() => engine.createSegment('a', 4096)), 'UNAVAILABLE_IN_CURRENT_STATUS')
  const {endpoints} = await engine.start()
  assert.is(engine.state, 'running')
  assert.is(endpoints.length, 1)
  assert.match(endpoints[0], /^127\.0\.0\.1:\d+$/)
  let again: unknown
  try {
    await engine.start()
  } catch (err) {
    again = err
  }
  assert.ok(isMooncakeError(again, 'UNAVAILABLE_IN_CURRENT_STATUS'))
  const closing = engine.close()
  assert.is(engine.state, 'closing')
  await closing
  assert.is(engine.state, 'closed')
  await engine.close()
  assert.is(engine.state, 'closed')
})

test('a busy port is reported, not crashed on', async () => {
  const a = new TransferEngine()
  const {endpoints} = await a.start()
  const port = Number(endpoints[0].split(':')[1])
  const b = new TransferEngine({port})
  let err: unknown
  try {
    await b.start()
  } catch (e) {
    err = e
  }
  assert.ok(isMooncakeError(err, 'UNAVAILABLE'), String(err))
  await a.close()
})

test('segments: shared-memory file, window, grant key, close unlinks', async () => {
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  const seg = engine.createSegment('s1', 1 << 20)
  assert.match(seg.path, /^\/dev\/shm\/mooncake\/seg-\d+-[0-9a-f]{16}$/)
  assert.is(seg.path.includes(String(process.pid)), true)
  assert.is(statSync(seg.path).mode & 0o777, 0o600)
  assert.is(statSync('/dev/shm/mooncake').mode & 0o777, 0o700)
  assert.is(seg.grantKey?.length, 32)
  assert.is(engine.createSegment('s2', 4096, {grants: false}).grantKey, undefined)
  assert.is(code(() => engine.createSegment('s1', 4096)), 'SEGMENT_ALREADY_EXISTS')
  assert.is(code(() => engine.createSegment('', 4096)), 'INVALID_PARAMS')
  assert.is(code(() => engine.createSegment('z', 0)), 'INVALID_PARAMS')
  const w = seg.window(100, 10)
  w.fill(7)
  assert.is(seg.window(0, 1 << 20)[105], 7)
  assert.is(code(() => seg.window(1 << 20, 1)), 'BUFFER_OVERFLOW')
  assert.is(code(() => seg.window(0, (1 << 20) + 1)), 'BUFFER_OVERFLOW')
  assert.is(code(() => seg.window(-1, 1)), 'BUFFER_OVERFLOW')
  const path = seg.path
  engine.closeSegment('s1')
  assert.ok(seg.closed)
  assert.not.ok(existsSync(path))
  // A window taken before close stays valid memory (the mapping outlives the file).
  assert.is(w[0], 7)
  assert.is(code(() => seg.window(0, 1)), 'SEGMENT_NOT_FOUND')
  const other = engine.getSegment('s2')!.path
  await engine.close()
  assert.not.ok(existsSync(other))
})

test('segments larger than 4 GiB: windows anywhere, at most 1 GiB each', async () => {
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  const size = 2 ** 32 + 8192
  const seg = engine.createSegment('big', size, {grants: false})
  const tail = seg.window(size - 4096, 4096)
  tail.fill(0xab)
  assert.is(seg.window(2 ** 32 + 4096, 4096)[0], 0xab)
  assert.is(code(() => seg.window(0, 2 ** 30 + 1)), 'BUFFER_OVERFLOW')
  assert.is(seg.window(2 ** 31, 2 ** 30).length, 2 ** 30)
  await engine.close()
})

test('registered memory: empty and overlapping registrations are refused', async () => {
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  const buf = Buffer.alloc(1 << 20)
  engine.registerLocalMemory(buf)
  assert.is(code(() => engine.registerLocalMemory(buf)), 'INVALID_PARAMS')
  assert.is(code(() => engine.registerLocalMemory(buf.subarray(100, 200))), 'INVALID_PARAMS')
  assert.is(code(() => engine.registerLocalMemory(Buffer.alloc(0))), 'INVALID_PARAMS')
  const ab = new ArrayBuffer(8192)
  engine.registerLocalMemory(new Uint8Array(ab, 0, 4096))
  engine.registerLocalMemory(new Uint8Array(ab, 4096, 4096))
  assert.is(code(() => engine.registerLocalMemory(new Uint8Array(ab, 4000, 200))), 'INVALID_PARAMS')
  await engine.unregisterLocalMemory(buf)
  let err: unknown
  try {
    await engine.unregisterLocalMemory(buf)
  } catch (e) {
    err = e
  }
  assert.ok(isMooncakeError(err, 'INVALID_PARAMS'))
  engine.registerLocalMemory(buf)
  await engine.close()
})

test('the native submit refuses rows that the TypeScript layer would never write (negative, huge, NaN)', () => {
  const native = loadNative()
  const id = native.engineCreate({...resolveTransferOptions({listenHosts: []}), listenHosts: []} as never)
  try {
    native.engineStart(id)
    const local = Buffer.alloc(4096)
    native.memoryRegister(id, local)
    // op, peer, segment, local, local offset, remote offset, length, grant
    const good = [1, 0, 0, 0, 0, 0, 16, -1]
    const bad: Array<[number, number]> = [[0, -1], [0, 256], [1, -1], [1, 2 ** 32], [2, Number.NaN], [3, -1], [4, -1], [5, 2 ** 64], [6, Number.POSITIVE_INFINITY], [7, 0]]
    for (const [field, value] of bad) {
      const row = Float64Array.from(good)
      row[field] = value
      let status: unknown
      try {
        native.submit(id, [['127.0.0.1:1']], ['s'], [local], undefined, row, 1 << 20, 1000, 1)
      } catch (err) {
        status = (err as {status?: number}).status
      }
      assert.is(status, ErrorCode.INVALID_PARAMS, `field ${field} = ${value}`)
    }
  } finally {
    native.engineClose(id)
    native.engineRelease(id)
  }
})

test('submit refuses bad requests one by one, with codes', async () => {
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  const buf = Buffer.alloc(4096)
  const unregistered = Buffer.alloc(4096)
  engine.registerLocalMemory(buf)
  const peer = ['127.0.0.1:1']
  const base = {op: 'read' as const, local: buf, peer, segment: 's', offset: 0, length: 16}
  const results = await engine.submit([
    {...base, length: 0},
    {...base, length: 8192},
    {...base, local: unregistered},
    {...base, peer: ['nowhere']},
    {...base, segment: ''},
    {...base, offset: -1},
    {...base, localOffset: 4090},
  ])
  assert.equal(
    results.map((r) => (r.ok ? 'ok' : r.code)),
    ['INVALID_PARAMS', 'BUFFER_OVERFLOW', 'INVALID_PARAMS', 'INVALID_PARAMS', 'INVALID_PARAMS', 'INVALID_PARAMS', 'BUFFER_OVERFLOW'],
  )
  // Nothing listens on port 1: the request fails promptly with TRANSFER_FAIL.
  const t0 = Date.now()
  const [r] = await engine.submit([base], {transport: 'tcp'})
  assert.is(r.ok, false)
  assert.is(!r.ok && r.code, 'TRANSFER_FAIL')
  assert.ok(Date.now() - t0 < 3000)
  await engine.close()
})

test.run()
