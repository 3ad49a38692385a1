// Paths and peers that fail: an address going down mid-transfer, a frozen peer, a SIGKILLed peer,
// and the shared-memory files a SIGKILLed owner leaves behind.
import {existsSync} from 'node:fs'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {mintGrant, sweepStaleSegments, TransferEngine, type TransferResult} from '../../src/lib/transfer/index.js'
import {killAllOwners, pseudoRandom, sha256, spawnOwner} from './helpers.js'

const MiB = 1 << 20
let engine: TransferEngine
let src: Buffer
let dst: Buffer

test.before(async () => {
  engine = new TransferEngine({listenHosts: [], cooldownMs: 200})
  await engine.start()
  src = pseudoRandom(256 * MiB, 5)
  dst = Buffer.alloc(256 * MiB)
  engine.registerLocalMemory(src)
  engine.registerLocalMemory(dst)
})

test.after(async () => {
  await engine?.close()
  await killAllOwners()
})

async function waitFor(cond: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 1))
  }
}

const codes = (results: TransferResult[]): string[] => results.map((r) => (r.ok ? 'ok' : r.code))

test('two addresses: both carry slices; one going down mid-transfer does not fail the batch', async () => {
  const owner = await spawnOwner(['--size', String(256 * MiB), '--no-grants', '--hosts', '127.0.0.1,127.0.0.2'])
  const peer = owner.ready.endpoints
  assert.equal(peer.map((e) => e.split(':')[0]), ['127.0.0.1', '127.0.0.2'])
  type Listeners = {stats: {server: {listeners: Array<{open: boolean; requests: number}>}}}
  // Consecutive slices alternate between the addresses (least busy first, ties round-robin).
  assert.equal(codes(await engine.submit([{op: 'write', local: src, peer, segment: 'seg', offset: 0, length: 8 * MiB}], {transport: 'tcp'})), ['ok'])
  const warm = await owner.command<Listeners>('stats')
  assert.ok(warm.stats.server.listeners.every((l) => l.requests > 0), 'both addresses served slices')
  const before = engine.stats().transferredBytes
  const batch = engine.submit([{op: 'write', local: src, peer, segment: 'seg', offset: 0, length: 256 * MiB}], {transport: 'tcp'})
  await waitFor(() => engine.stats().transferredBytes > before, 'first slices')
  const closed = await owner.command<{ok: boolean}>('closeListener', {host: '127.0.0.2'})
  assert.ok(closed.ok)
  assert.equal(codes(await batch), ['ok'])
  assert.is((await owner.command<{sha256: string}>('sha256', {offset: 0, length: 256 * MiB})).sha256, sha256(src))
  const {stats} = await owner.command<Listeners>('stats')
  assert.equal(stats.server.listeners.map((l) => l.open), [true, false])
  // Later batches avoid the dead address and still succeed.
  const [r] = await engine.submit([{op: 'read', local: dst, peer, segment: 'seg', offset: 0, length: 64 * MiB}], {transport: 'tcp'})
  assert.ok(r.ok)
  assert.ok(dst.subarray(0, 64 * MiB).equals(src.subarray(0, 64 * MiB)))
  await owner.kill()
})

test('a frozen peer (SIGSTOP) fails the batch with DEADLINE_EXCEEDED at its deadline, then recovers', async () => {
  const owner = await spawnOwner(['--size', String(16 * MiB), '--no-grants'])
  const peer = owner.ready.endpoints
  const req = {op: 'read' as const, local: dst, peer, segment: 'seg', offset: 0, length: 16 * MiB}
  assert.equal(codes(await engine.submit([req], {transport: 'tcp'})), ['ok'])
  process.kill(owner.ready.pid, 'SIGSTOP')
  const t0 = Date.now()
  const results = await engine.submit([req, {...req, offset: 10}, {...req, length: 100}], {transport: 'tcp', timeoutMs: 400})
  const elapsed = Date.now() - t0
  assert.equal(codes(results), ['DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED'])
  assert.ok(elapsed >= 350 && elapsed < 5000, `took ${elapsed} ms`)
  process.kill(owner.ready.pid, 'SIGCONT')
  assert.equal(codes(await engine.submit([req], {transport: 'tcp'})), ['ok'])
  await owner.kill()
})

test('a frozen peer does not hold up transfers to other peers', async () => {
  const frozen = await spawnOwner(['--size', String(16 * MiB), '--no-grants'])
  const healthy = await spawnOwner(['--size', String(16 * MiB), '--no-grants'])
  const read = (o: typeof frozen) => ({op: 'read' as const, local: dst, peer: o.ready.endpoints, segment: 'seg', offset: 0, length: 16 * MiB})
  process.kill(frozen.ready.pid, 'SIGSTOP')
  const order: string[] = []
  const stuck = engine.submit([read(frozen)], {transport: 'tcp', timeoutMs: 3000}).then((r) => (order.push('frozen'), r))
  const fine = engine.submit([read(healthy)], {transport: 'tcp'}).then((r) => (order.push('healthy'), r))
  assert.equal(codes(await fine), ['ok'])
  assert.equal(codes(await stuck), ['DEADLINE_EXCEEDED'])
  assert.equal(order, ['healthy', 'frozen'])
  process.kill(frozen.ready.pid, 'SIGCONT')
  await frozen.kill()
  await healthy.kill()
})

test('a peer SIGKILLed mid-transfer fails its requests with TRANSFER_FAIL promptly; others are unaffected', async () => {
  const victim = await spawnOwner(['--size', String(256 * MiB), '--no-grants'])
  const healthy = await spawnOwner(['--size', String(16 * MiB), '--no-grants'])
  const before = engine.stats().transferredBytes
  const batch = engine.submit(
    [
      ...Array.from({length: 4}, () => ({op: 'read' as const, local: dst, peer: victim.ready.endpoints, segment: 'seg', offset: 0, length: 256 * MiB})),
      {op: 'write', local: src, peer: healthy.ready.endpoints, segment: 'seg', offset: 0, length: 16 * MiB},
    ],
    {transport: 'tcp', timeoutMs: 60_000},
  )
  await waitFor(() => engine.stats().transferredBytes > before, 'first slices')
  // Freeze it first so the kill certainly lands mid-transfer.
  process.kill(victim.ready.pid, 'SIGSTOP')
  const t0 = Date.now()
  await victim.kill('SIGKILL')
  const results = await batch
  const elapsed = Date.now() - t0
  assert.ok(elapsed < 5000, `failed after ${elapsed} ms`)
  const c = codes(results)
  assert.is(c[4], 'ok', 'the healthy peer completed')
  assert.ok(c.slice(0, 4).every((x) => x === 'TRANSFER_FAIL' || x === 'ok'), c.join())
  assert.ok(c.slice(0, 4).includes('TRANSFER_FAIL'), c.join())
  // New work for the dead peer fails fast, with both transports.
  for (const transport of ['tcp', 'auto'] as const) {
    const t1 = Date.now()
    const again = await engine.submit([{op: 'read', local: dst, peer: victim.ready.endpoints, segment: 'seg', offset: 0, length: MiB}], {transport})
    assert.equal(codes(again), ['TRANSFER_FAIL'])
    assert.ok(Date.now() - t1 < 3000)
  }
  assert.is(engine.state, 'running')
  await healthy.kill()
})

test('memcpy to an owner that was SIGKILLed is refused, not silently written to dead memory', async () => {
  const owner = await spawnOwner(['--size', String(4 * MiB)])
  const grant = mintGrant(owner.grantKey, {segment: 'seg', offset: 0, length: 4 * MiB, ops: ['write'], expiresAt: Date.now() + 60_000})
  const req = {op: 'write' as const, local: src, peer: owner.ready.endpoints, segment: 'seg', offset: 0, length: MiB, grant}
  assert.equal(await engine.submit([req], {transport: 'memcpy'}), [{ok: true, via: 'memcpy'}])
  await owner.kill('SIGKILL')
  assert.equal(codes(await engine.submit([req], {transport: 'memcpy'})), ['TRANSFER_FAIL'])
  assert.equal(codes(await engine.submit([req], {transport: 'auto'})), ['TRANSFER_FAIL'])
})

test('the sweep removes shared-memory files of SIGKILLed owners, and only those', async () => {
  const dead = await spawnOwner(['--size', String(MiB)])
  const alive = await spawnOwner(['--size', String(MiB)])
  const mine = new TransferEngine({listenHosts: []})
  await mine.start()
  const own = mine.createSegment('mine', 4096)
  await dead.kill('SIGKILL')
  assert.ok(existsSync(dead.ready.path), 'SIGKILL left the file behind')
  assert.ok(sweepStaleSegments() >= 1)
  assert.not.ok(existsSync(dead.ready.path))
  assert.ok(existsSync(alive.ready.path))
  assert.ok(existsSync(own.path))
  await mine.close()
  assert.not.ok(existsSync(own.path), 'close removes the file')
  // A clean exit removes its own file too.
  alive.proc.stdin.end()
  await alive.exited
  assert.not.ok(existsSync(alive.ready.path))
})

test.run()
