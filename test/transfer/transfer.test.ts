// Two real processes: a segment owner (fixtures/owner.ts) and this process as the client.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {mintGrant, TransferEngine, type Grant, type TransferTransport} from '../../src/lib/transfer/index.js'
import {crc32cJs} from '../../src/lib/client/crc32c.js'
import {killAllOwners, pseudoRandom, sha256, spawnOwner, type Owner} from './helpers.js'

const MiB = 1 << 20
const SEG_SIZE = 300 * MiB
let owner: Owner
let engine: TransferEngine
let grant: Grant
let src: Buffer
let dst: Buffer

test.before(async () => {
  owner = await spawnOwner(['--size', String(SEG_SIZE), '--hosts', '127.0.0.1,127.0.0.2'])
  engine = new TransferEngine({listenHosts: []})
  await engine.start()
  grant = mintGrant(owner.grantKey, {segment: 'seg', offset: 0, length: SEG_SIZE, ops: ['read', 'write'], expiresAt: Date.now() + 3_600_000})
  src = pseudoRandom(256 * MiB, 1)
  dst = Buffer.alloc(256 * MiB + 4096)
  engine.registerLocalMemory(src)
  engine.registerLocalMemory(dst)
})

test.after(async () => {
  await engine?.close()
  await killAllOwners()
})

const SIZES = [1, 4095, 64 * 1024 + 3, MiB, 16 * MiB + 5, 256 * MiB]

for (const transport of ['tcp', 'memcpy'] as TransferTransport[]) {
  test(`${transport}: write then read back 1 B to 256 MiB`, async () => {
    let offset = 0
    for (const size of SIZES) {
      const at = size === 256 * MiB ? 7 : offset // unaligned remote offsets too
      const localAt = size < MiB ? 13 : 0
      const peer = owner.ready.endpoints
      const [w] = await engine.submit([{op: 'write', local: src, localOffset: localAt, peer, segment: 'seg', offset: at, length: size, grant}], {transport})
      assert.equal(w, {ok: true, via: transport}, `write ${size}`)
      const remote = await owner.command<{sha256: string}>('sha256', {offset: at, length: size})
      assert.is(remote.sha256, sha256(src.subarray(localAt, localAt + size)), `owner sees the bytes of ${size}`)
      dst.fill(0, 0, size + 1)
      const [r] = await engine.submit([{op: 'read', local: dst, peer, segment: 'seg', offset: at, length: size, grant}], {transport})
      assert.equal(r, {ok: true, via: transport}, `read ${size}`)
      assert.ok(dst.subarray(0, size).equals(src.subarray(localAt, localAt + size)), `read back ${size}`)
      assert.is(dst[size], 0, 'nothing written past the request')
      offset += size + 1
    }
  })
}

for (const transport of ['tcp', 'memcpy'] as TransferTransport[]) {
  test(`${transport}: crc: true returns the CRC32C of the local bytes, folded over slices`, async () => {
    const peer = owner.ready.endpoints
    // Sizes below, at and across the slice size (64 KiB here): one slice, several, an odd tail.
    const sizes = [1, 4096, 64 * 1024, 3 * 64 * 1024 + 17, 5 * MiB + 3]
    let at = 0
    const writes = sizes.map((length, i) => {
      const req = {op: 'write' as const, local: src, localOffset: 1000 * i + 1, peer, segment: 'seg', offset: at, length, grant, crc: true}
      at += length + 11
      return req
    })
    const written = await engine.submit(writes, {transport, sliceSize: 64 * 1024})
    for (let i = 0; i < sizes.length; i++) {
      const w = writes[i]
      assert.equal(written[i], {ok: true, via: transport, crc: crc32cJs(src.subarray(w.localOffset, w.localOffset + w.length))}, `write of ${sizes[i]} B`)
    }
    const reads = writes.map((w, i) => ({op: 'read' as const, local: dst, localOffset: 0, peer, segment: 'seg', offset: w.offset, length: w.length, grant, crc: i % 2 === 0}))
    for (let i = 0; i < reads.length; i++) {
      const [r] = await engine.submit([reads[i]], {transport, sliceSize: 64 * 1024})
      const expected = crc32cJs(dst.subarray(0, reads[i].length))
      assert.equal(r, reads[i].crc ? {ok: true, via: transport, crc: expected} : {ok: true, via: transport}, `read of ${sizes[i]} B`)
      assert.is(expected, written[i].ok ? (written[i] as {crc: number}).crc : -1, `the bytes read back have the written CRC (${sizes[i]} B)`)
    }
    // 1 MiB slices: one large slice per exchange (checksummed piece by piece as it is sent, or as it lands).
    const length = 3 * MiB + 5
    const big = {op: 'write' as const, local: src, localOffset: 12345, peer, segment: 'seg', offset: 100 * MiB, length, grant, crc: true}
    const [w] = await engine.submit([big], {transport, sliceSize: MiB})
    assert.equal(w, {ok: true, via: transport, crc: crc32cJs(src.subarray(12345, 12345 + length))}, 'a 3 MiB write')
    const [r] = await engine.submit([{...big, op: 'read', local: dst, localOffset: 0}], {transport, sliceSize: MiB})
    assert.equal(r, {ok: true, via: transport, crc: crc32cJs(src.subarray(12345, 12345 + length))}, 'a 3 MiB read')
    assert.ok(dst.subarray(0, length).equals(src.subarray(12345, 12345 + length)))
  })
}

test('auto picks memcpy for a same-host peer; tcp can be forced', async () => {
  const peer = owner.ready.endpoints
  const auto = await engine.submit([{op: 'read', local: dst, peer, segment: 'seg', offset: 0, length: 4096, grant}])
  assert.equal(auto, [{ok: true, via: 'memcpy'}])
  const tcp = await engine.submit([{op: 'read', local: dst, peer, segment: 'seg', offset: 0, length: 4096, grant}], {transport: 'tcp'})
  assert.equal(tcp, [{ok: true, via: 'tcp'}])
})

test('a local segment can be the source and the destination', async () => {
  const local = engine.createSegment('client-side', 8 * MiB, {grants: false})
  const data = pseudoRandom(8 * MiB, 9)
  data.copy(local.window())
  const peer = owner.ready.endpoints
  for (const transport of ['tcp', 'memcpy'] as TransferTransport[]) {
    const [w] = await engine.submit([{op: 'write', local, peer, segment: 'seg', offset: 100, length: 8 * MiB, grant}], {transport})
    assert.ok(w.ok)
    local.window().fill(0)
    const [r] = await engine.submit([{op: 'read', local, peer, segment: 'seg', offset: 100, length: 8 * MiB, grant}], {transport})
    assert.ok(r.ok)
    assert.ok(local.window().equals(data))
  }
  local.close()
})

test('out-of-bounds, overflowing and zero-length requests are refused (both paths)', async () => {
  const peer = owner.ready.endpoints
  for (const transport of ['tcp', 'memcpy'] as TransferTransport[]) {
    const results = await engine.submit(
      [
        {op: 'read', local: dst, peer, segment: 'seg', offset: SEG_SIZE, length: 1, grant},
        {op: 'write', local: src, peer, segment: 'seg', offset: SEG_SIZE - 10, length: 11, grant},
        {op: 'read', local: dst, peer, segment: 'seg', offset: Number.MAX_SAFE_INTEGER - 5, length: 5, grant},
        {op: 'read', local: dst, peer, segment: 'seg', offset: 0, length: 0, grant},
        {op: 'read', local: dst, peer, segment: 'nope', offset: 0, length: 1},
        {op: 'write', local: src, peer, segment: 'seg', offset: SEG_SIZE - 10, length: 10, grant},
      ],
      {transport},
    )
    const codes = results.map((r) => (r.ok ? 'ok' : r.code))
    assert.equal(codes.slice(0, 4), ['BUFFER_OVERFLOW', 'BUFFER_OVERFLOW', 'BUFFER_OVERFLOW', 'INVALID_PARAMS'], transport)
    assert.is(codes[4], transport === 'tcp' ? 'SEGMENT_NOT_FOUND' : 'SEGMENT_NOT_FOUND')
    assert.is(codes[5], 'ok', 'the connection stays usable after refusals')
  }
})

test('thousands of small requests in one batch (pipelined lanes / grouped copies), with refusals mixed in', async () => {
  // 3000 requests of 1..5000 bytes at scattered offsets; every 97th is outside the segment and
  // must fail alone without disturbing its neighbours on the same lane.
  const peer = owner.ready.endpoints
  const n = 3000
  const len = (i: number): number => 1 + ((i * 7919) % 5000)
  const at = (i: number): number => 200 * MiB + i * 8192 + (i % 13)
  const bad = (i: number): boolean => i % 97 === 5
  for (const transport of ['tcp', 'memcpy'] as TransferTransport[]) {
    const writes = Array.from({length: n}, (_, i) => ({op: 'write' as const, local: src, localOffset: i * 31, peer, segment: 'seg', offset: bad(i) ? SEG_SIZE - 1 : at(i), length: len(i) + (bad(i) ? 1 : 0), grant}))
    const w = await engine.submit(writes, {transport})
    for (let i = 0; i < n; i++) assert.is(w[i].ok, !bad(i), `write ${i} (${transport})`)
    dst.fill(0, 0, n * 8192)
    const reads = Array.from({length: n}, (_, i) => ({op: 'read' as const, local: dst, localOffset: i * 8192, peer, segment: 'seg', offset: bad(i) ? SEG_SIZE : at(i), length: len(i), grant}))
    const r = await engine.submit(reads, {transport})
    for (let i = 0; i < n; i++) {
      assert.is(r[i].ok, !bad(i), `read ${i} (${transport})`)
      if (!bad(i)) assert.ok(dst.subarray(i * 8192, i * 8192 + len(i)).equals(src.subarray(i * 31, i * 31 + len(i))), `bytes of ${i} (${transport})`)
    }
  }
})

test('many concurrent batches, mixed reads and writes, over both paths', async () => {
  // 24 batches x 8 requests of 4 KiB..1 MiB on disjoint ranges; writes first, then reads.
  const peer = owner.ready.endpoints
  const slot = MiB + 8192
  const sizes = Array.from({length: 192}, (_, i) => [4096, 65536 + i, 512 * 1024, MiB + 17][i % 4])
  const writes = Array.from({length: 24}, (_, b) =>
    engine.submit(
      Array.from({length: 8}, (_, k) => {
        const i = b * 8 + k
        return {op: 'write' as const, local: src, localOffset: i * 1000, peer, segment: 'seg', offset: i * slot, length: sizes[i], grant}
      }),
      {transport: b % 2 ? 'tcp' : 'memcpy'},
    ),
  )
  for (const batch of await Promise.all(writes)) assert.ok(batch.every((r) => r.ok), JSON.stringify(batch))
  dst.fill(0)
  const reads = Array.from({length: 24}, (_, b) =>
    engine.submit(
      Array.from({length: 8}, (_, k) => {
        const i = b * 8 + k
        return {op: 'read' as const, local: dst, localOffset: i * slot, peer, segment: 'seg', offset: i * slot, length: sizes[i], grant}
      }),
      {transport: b % 3 ? 'tcp' : 'auto', sliceSize: 64 * 1024 * (1 + (b % 4))},
    ),
  )
  for (const batch of await Promise.all(reads)) assert.ok(batch.every((r) => r.ok), JSON.stringify(batch))
  for (let i = 0; i < 192; i++) {
    assert.ok(dst.subarray(i * slot, i * slot + sizes[i]).equals(src.subarray(i * 1000, i * 1000 + sizes[i])), `request ${i}`)
  }
})

test('a stream of one-slice batches keeps every worker fed while a peer flips between copies and TCP', async () => {
  // Copies to a same-host peer use at most one worker per core, TCP transfers lanesPerPeer, and
  // idle workers are woken one by one (the most recently idle first). A lost wake-up leaves a
  // batch queued with every worker asleep: it never settles (with one caller, nothing else comes
  // to wake a worker). Auto reads of a segment the owner does not have go to TCP (the
  // authoritative answer), turning the peer's copies into TCP transfers and back.
  const peer = owner.ready.endpoints
  const kinds = ['auto', 'auto', 'tcp', 'missing'] as const
  for (const {callers, total} of [{callers: 12, total: 1200}, {callers: 1, total: 120}]) {
    let next = 0
    const seen = {memcpy: 0, tcp: 0, missing: 0}
    const caller = async (c: number): Promise<void> => {
      while (next < total) {
        const i = next++
        const kind = kinds[i % kinds.length]
        const [r] = await engine.submit(
          [{op: 'read', local: dst, localOffset: c * 256 * 1024, peer, offset: (i % 100) * 4096, length: 64 * 1024 + (i % 7), ...(kind === 'missing' ? {segment: 'nope'} : {segment: 'seg', grant})}],
          {transport: kind === 'tcp' ? 'tcp' : 'auto', timeoutMs: 20_000},
        )
        if (kind === 'missing') {
          assert.equal(r.ok ? 'ok' : r.code, 'SEGMENT_NOT_FOUND', `request ${i}`)
          seen.missing++
        } else {
          assert.equal(r, {ok: true, via: kind === 'tcp' ? 'tcp' : 'memcpy'}, `request ${i}`)
          seen[kind === 'tcp' ? 'tcp' : 'memcpy']++
        }
      }
    }
    let timer: NodeJS.Timeout | undefined
    let stalledOut = false
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        stalledOut = true
        reject(new Error(`${callers} caller(s) stalled after ${next} requests`))
      }, 20_000)
    })
    // The first failure stops every caller (none may still run when the next test starts).
    const running = Array.from({length: callers}, (_, c) =>
      caller(c).catch((err) => {
        next = Infinity
        throw err
      }),
    )
    try {
      await Promise.race([Promise.all(running), stalled])
    } catch (err) {
      next = Infinity
      // Stalled callers never settle; the others must before the next test starts.
      if (!stalledOut) await Promise.allSettled(running)
      throw err
    } finally {
      clearTimeout(timer)
    }
    assert.equal(seen, {memcpy: total / 2, tcp: total / 4, missing: total / 4}, `${callers} caller(s)`)
  }
})

test('unregister waits for the batches in flight and refuses new ones meanwhile', async () => {
  const buf = Buffer.alloc(128 * MiB)
  engine.registerLocalMemory(buf)
  const peer = owner.ready.endpoints
  const order: string[] = []
  const batch = engine
    .submit([{op: 'read', local: buf, peer, segment: 'seg', offset: 0, length: 128 * MiB, grant}], {transport: 'tcp'})
    .then((r) => {
      order.push('batch')
      return r
    })
  const unregistered = engine.unregisterLocalMemory(buf).then(() => order.push('unregister'))
  const [late] = await engine.submit([{op: 'read', local: buf, peer, segment: 'seg', offset: 0, length: 1, grant}])
  assert.is(late.ok, false)
  assert.is(!late.ok && late.code, 'INVALID_PARAMS')
  await Promise.all([batch, unregistered])
  assert.equal(order, ['batch', 'unregister'])
  assert.ok((await batch)[0].ok)
})

test('progress counter and both addresses used', async () => {
  const before = engine.stats().transferredBytes
  const peer = owner.ready.endpoints
  const [r] = await engine.submit([{op: 'read', local: dst, peer, segment: 'seg', offset: 0, length: 64 * MiB, grant}], {transport: 'tcp'})
  assert.ok(r.ok)
  assert.is(engine.stats().transferredBytes - before, 64 * MiB)
  const {stats} = await owner.command<{stats: {server: {listeners: Array<{requests: number; bytesRead: number}>}}}>('stats')
  assert.is(stats.server.listeners.length, 2)
  for (const l of stats.server.listeners) assert.ok(l.bytesRead > 0, 'every address served slices')
})

test.run()
