// HA building blocks without etcd: the role state machine, the leader's own lease deadline
// (fake clock), the log entry and snapshot codecs, and the durability waiters.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeError} from '../../src/lib/errors.js'
import {
  decodeEntry,
  decodeSnapshotChunks,
  encodeEntry,
  encodeSnapshotChunks,
  encodeSnapshotChunksAsync,
  SNAPSHOT_SLICE_OBJECTS,
  padSeq,
  snapshotCrc,
} from '../../src/lib/master/ha/codec.js'
import {notLeader, Waiters} from '../../src/lib/master/ha/durable.js'
import {haKeys, prefixEnd} from '../../src/lib/master/ha/etcd.js'
import {defaultMarginMs, LeaseDeadline, RoleMachine} from '../../src/lib/master/ha/role.js'
import {MetadataImage} from '../../src/lib/master/restore.js'
import {FakeClock} from './master/helpers.js'

test('role machine: the legal path and refused transitions', () => {
  const clock = new FakeClock()
  const r = new RoleMachine(clock)
  const seen: string[] = []
  r.on('change', (to, from) => seen.push(`${from}>${to}`))
  assert.is(r.role, 'candidate')
  r.to('standby', 'lost the campaign')
  assert.throws(() => r.to('leader', 'a standby must campaign first'), /illegal/)
  r.to('candidate', 'leader key gone')
  r.to('leader', 'won')
  assert.throws(() => r.to('candidate', 'a leader steps down first'), /illegal/)
  assert.throws(() => r.to('standby', 'no'), /illegal/)
  r.to('leader', 'no-op')
  r.to('stepping-down', 'deadline')
  r.to('candidate', 'stepped down')
  r.to('stopped', 'closed')
  assert.throws(() => r.to('candidate', 'stopped is final'), /illegal/)
  assert.equal(seen, ['candidate>standby', 'standby>candidate', 'candidate>leader', 'leader>stepping-down', 'stepping-down>candidate', 'candidate>stopped'])
  assert.is(r.history.length, 6)
})

test('lease deadline: acked keepalives extend it from their send time, minus the margin', () => {
  const clock = new FakeClock()
  const d = new LeaseDeadline(clock, 2_000, 200)
  assert.not.ok(d.valid())
  const t0 = clock.now()
  d.acked(t0)
  assert.is(d.deadline, t0 + 1_800)
  clock.advance(1_799)
  assert.ok(d.valid())
  clock.advance(1)
  assert.not.ok(d.valid(), 'stops serving margin before the lease can expire at etcd')
  // a keepalive sent earlier but answered later never moves the deadline back
  d.acked(t0 + 1_000)
  const later = d.deadline
  d.acked(t0 + 500)
  assert.is(d.deadline, later)
  // a shorter granted TTL counts, a longer one does not
  d.acked(t0 + 1_500, 1_000)
  assert.is(d.deadline, later)
  d.acked(t0 + 3_000, 10_000)
  assert.is(d.deadline, t0 + 3_000 + 1_800)
  d.expire()
  assert.not.ok(d.valid())
  assert.is(d.remainingMs(), 0)
  assert.throws(() => new LeaseDeadline(clock, 1_000, 1_000), /margin/)
  assert.is(defaultMarginMs(5_000), 500)
  assert.is(defaultMarginMs(1_000), 100)
  assert.is(defaultMarginMs(60_000), 1_000)
})

test('lease deadline: a paused leader (SIGSTOP) finds itself invalid on resume', () => {
  const clock = new FakeClock()
  const d = new LeaseDeadline(clock, 1_000, defaultMarginMs(1_000))
  d.acked(clock.now())
  clock.advance(5_000) // stopped for 5 s: no keepalive in between
  assert.not.ok(d.valid())
})

test('log entry codec and key order', () => {
  const e = {v: 1 as const, seq: 42, term: 7, m: [{type: 'objectRemoved' as const, key: 'a/b'}]}
  assert.equal(decodeEntry(encodeEntry(e)), e)
  assert.throws(() => decodeEntry('{"v":2}'), /not a mooncake/)
  assert.ok(padSeq(9) < padSeq(10))
  assert.is(padSeq(1).length, 16)
  const k = haKeys('c1')
  assert.is(k.leader, 'mooncake/c1/master')
  assert.ok(k.log + padSeq(2) < k.log + padSeq(11))
  assert.is(prefixEnd('ab').toString(), 'ac')
})

test('snapshot chunks: split below the etcd request limit and joined back', () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o', segment: {id: 'i', name: 's', endpoints: ['e:1'], size: 1 << 30, hostId: 'h'}})
  for (let i = 0; i < 5_000; i++) {
    img.apply({type: 'objectCommitted', key: `key-${i}`, size: 100, version: i + 1, replicas: [{id: i + 1, segment: 's', offset: i * 104, length: 100}], softPinExpiresAt: null})
  }
  const chunks = encodeSnapshotChunks(img.snapshot(), 64 * 1024)
  assert.ok(chunks.length > 3)
  assert.ok(chunks.every((c) => c.length <= 64 * 1024))
  const back = MetadataImage.fromSnapshot(decodeSnapshotChunks(chunks))
  assert.is(back.size, 5_000)
  assert.is(snapshotCrc(chunks), snapshotCrc(chunks.map((c) => Buffer.from(c))))
})

test('a snapshot of another format is INTERNAL_ERROR (chunks and image)', () => {
  const codeOf = (fn: () => unknown): string | undefined => {
    try {
      fn()
    } catch (err) {
      return err instanceof MooncakeError ? err.code : `not a MooncakeError: ${String(err)}`
    }
    return undefined
  }
  assert.is(codeOf(() => decodeSnapshotChunks([Buffer.from('{"format":2,"objects":[],"segments":[]}')])), 'INTERNAL_ERROR')
  assert.is(codeOf(() => decodeSnapshotChunks([Buffer.from('null')])), 'INTERNAL_ERROR')
  assert.is(codeOf(() => new MetadataImage().load({format: 2} as unknown as Parameters<MetadataImage['load']>[0])), 'INTERNAL_ERROR')
})

test('snapshot encoding without a stall: the same bytes as one JSON.stringify, slices between turns, the point in time kept', async () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o', segment: {id: 'i', name: 's', endpoints: ['e:1'], size: 1 << 30, hostId: 'h'}})
  const n = 3 * SNAPSHOT_SLICE_OBJECTS + 7
  for (let i = 0; i < n; i++) {
    img.apply({type: 'objectCommitted', key: `key-${i}`, size: 100, version: i + 1, checksum: i % 3 === 0 ? i : undefined, replicas: [{id: i + 1, segment: 's', offset: i * 104, length: 100}], softPinExpiresAt: i % 5 === 0 ? 1234 : null})
  }
  const chunkBytes = 256 * 1024
  const want = encodeSnapshotChunks(img.snapshot(), chunkBytes)
  // The image keeps changing while the chunks are made: the snapshot stays the one taken first.
  let turns = 0
  const changing = setInterval(() => {
    turns++
    img.apply({type: 'objectRemoved', key: `key-${turns}`})
    img.apply({type: 'objectCommitted', key: `late-${turns}`, size: 1, version: 1, replicas: [{id: 1e6 + turns, segment: 's', offset: 0, length: 1}], softPinExpiresAt: null})
  }, 0)
  const snap = img.snapshot()
  const got = await encodeSnapshotChunksAsync(snap, chunkBytes)
  clearInterval(changing)
  assert.ok(turns > 0, 'the event loop ran while the snapshot was encoded')
  assert.equal(got.map((c) => c.length), want.map((c) => c.length))
  assert.ok(Buffer.concat(got).equals(Buffer.concat(want)))
  assert.is(snapshotCrc(got), snapshotCrc(want))
  const back = MetadataImage.fromSnapshot(decodeSnapshotChunks(got))
  assert.is(back.size, n)
  assert.ok(back.objects.has('key-1') && !back.objects.has('late-1'))
  // An empty image, and one with fewer objects than a slice.
  const empty = new MetadataImage()
  assert.ok(Buffer.concat(await encodeSnapshotChunksAsync(empty.snapshot(), 16)).equals(Buffer.concat(encodeSnapshotChunks(empty.snapshot(), 16))))
})

test('waiters: released in order, failed above a point', async () => {
  const w = new Waiters()
  const done: number[] = []
  const p = [3, 1, 2, 5].map((s) => w.add(s).then(() => done.push(s), (e: MooncakeError) => done.push(-s) && e))
  w.release(2)
  await Promise.resolve()
  await Promise.resolve()
  assert.equal(done.sort(), [1, 2])
  w.fail(notLeader('gone', '127.0.0.1:1'), 3)
  w.release(3)
  await Promise.all(p)
  assert.equal(done.sort((a, b) => a - b), [-5, 1, 2, 3])
  const e = notLeader('x', 'h:1')
  assert.is(e.code, 'NOT_LEADER')
  assert.equal(e.details, {leader: 'h:1'})
})

test.run()
