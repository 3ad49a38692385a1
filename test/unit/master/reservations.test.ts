import {test} from 'uvu'
import * as assert from 'uvu/assert'

import type {Mutation} from '../../../src/lib/master/service.js'
import {KiB, MiB, mount, put, setup, throwsCode} from './helpers.js'

const codes = (results: Array<{ok: boolean; code?: string}>) => results.map((r) => (r.ok ? 'ok' : r.code))

test('reserve + commit: objects become readable where the client placed them, in any order', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  const r = svc.reserveSpace({clientId: 'c', size: 64 * KiB})
  assert.is(r.memory.segment, 's')
  assert.is(r.memory.length, 64 * KiB)
  assert.is(r.alignment, 8)
  const base = r.memory.offset
  assert.is(svc.querySegments('s').used, 64 * KiB)
  // Out of order: the second range first.
  const res = svc.batchPutCommit([
    {clientId: 'c', reservationId: r.reservationId, key: 'b', offset: base + 4 * KiB, size: 100, checksum: 7},
    {clientId: 'c', reservationId: r.reservationId, key: 'a', offset: base, size: 4 * KiB, checksum: 0xffffffff},
  ])
  assert.equal(codes(res), ['ok', 'ok'])
  const a = svc.getReplicaList('a')
  assert.is(a.checksum, 0xffffffff)
  assert.is(a.size, 4 * KiB)
  assert.is(a.replicas[0]!.memory!.offset, base)
  assert.is(svc.getReplicaList('b').replicas[0]!.memory!.offset, base + 4 * KiB)
  assert.is(svc.getReplicaList('b').checksum, 7)
  // Until released, the whole range counts as used; afterwards only the two objects (100 -> 104 aligned).
  assert.is(svc.querySegments('s').used, 64 * KiB)
  svc.releaseSpace({clientId: 'c', reservationId: r.reservationId})
  assert.is(svc.querySegments('s').used, 4 * KiB + 104)
  // Each object frees its own range.
  svc.remove({key: 'a', force: true})
  assert.is(svc.querySegments('s').used, 104)
  throwsCode(() => svc.releaseSpace({clientId: 'c', reservationId: r.reservationId}), 'OBJECT_NOT_FOUND')
})

test('commit: ranges must be free, aligned and inside the reservation; the holder only', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  const r = svc.reserveSpace({clientId: 'c', size: 16 * KiB})
  const base = r.memory.offset
  const id = r.reservationId
  const res = svc.batchPutCommit([
    {clientId: 'c', reservationId: id, key: 'x', offset: base, size: 8 * KiB},
    {clientId: 'c', reservationId: id, key: 'overlap', offset: base + 4 * KiB, size: 8 * KiB},
    {clientId: 'c', reservationId: id, key: 'outside', offset: base + 12 * KiB, size: 8 * KiB},
    {clientId: 'c', reservationId: id, key: 'misaligned', offset: base + 8 * KiB + 3, size: 8},
    {clientId: 'c', reservationId: id, key: 'before', offset: Math.max(0, base - 8), size: 8},
    {clientId: 'other', reservationId: id, key: 'thief', offset: base + 8 * KiB, size: 8},
    {clientId: 'c', reservationId: 999, key: 'nope', offset: base + 8 * KiB, size: 8},
    {clientId: 'c', reservationId: id, key: '', offset: base + 8 * KiB, size: 8},
    {clientId: 'c', reservationId: id, key: 'z', offset: base + 8 * KiB, size: 0},
  ])
  assert.equal(codes(res), [
    'ok',
    'INVALID_PARAMS',
    'INVALID_PARAMS',
    'INVALID_PARAMS',
    'INVALID_PARAMS',
    'ILLEGAL_CLIENT',
    'OBJECT_NOT_FOUND',
    'INVALID_PARAMS',
    'INVALID_PARAMS',
  ])
  // None of the refused ones left anything behind; the rest of the range is still free to commit.
  assert.equal(svc.batchExistKey(['overlap', 'outside', 'misaligned', 'before', 'thief', 'nope']), [false, false, false, false, false, false])
  throwsCode(() => svc.releaseSpace({clientId: 'other', reservationId: id}), 'ILLEGAL_CLIENT')
  assert.equal(codes(svc.batchPutCommit([{clientId: 'c', reservationId: id, key: 'y', offset: base + 8 * KiB, size: 8 * KiB}])), ['ok'])
  // Used up: the reservation is gone by itself.
  throwsCode(() => svc.releaseSpace({clientId: 'c', reservationId: id}), 'OBJECT_NOT_FOUND')
})

test('commit: an existing key fails alone and keeps its range; a repeated commit succeeds again', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'taken', 10)
  svc.putStart({clientId: 'w', requestId: 'r', key: 'writing', size: 10})
  const r = svc.reserveSpace({clientId: 'c', size: 16 * KiB})
  const base = r.memory.offset
  const id = r.reservationId
  const first = {clientId: 'c', reservationId: id, key: 'new', offset: base, size: KiB, checksum: 1}
  assert.equal(
    codes(
      svc.batchPutCommit([
        first,
        {clientId: 'c', reservationId: id, key: 'taken', offset: base + KiB, size: KiB},
        {clientId: 'c', reservationId: id, key: 'writing', offset: base + 2 * KiB, size: KiB},
      ]),
    ),
    ['ok', 'OBJECT_ALREADY_EXISTS', 'OBJECT_ALREADY_EXISTS'],
  )
  // A retry after a lost reply: same key, same place, same writer.
  assert.equal(codes(svc.batchPutCommit([first])), ['ok'])
  // Anyone else, or another place, is a different object.
  assert.equal(codes(svc.batchPutCommit([{...first, clientId: 'd'}, {...first, offset: base + 3 * KiB}])), ['OBJECT_ALREADY_EXISTS', 'OBJECT_ALREADY_EXISTS'])
  // A new leader knows the object (from the log) but not the reservation: the writer's retry of
  // the same commit still succeeds; anything else about it differing is another object.
  svc.releaseSpace({clientId: 'c', reservationId: id})
  assert.equal(codes(svc.batchPutCommit([first])), ['ok'])
  assert.equal(codes(svc.batchPutCommit([{...first, checksum: 2}, {...first, size: KiB + 8}])), ['OBJECT_ALREADY_EXISTS', 'OBJECT_ALREADY_EXISTS'])
  assert.is(svc.getReplicaList('new').checksum, 1)
})

test('commit: the ranges of refused keys stay reserved and usable', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'taken', 10)
  const r = svc.reserveSpace({clientId: 'c', size: 16 * KiB})
  const base = r.memory.offset
  const id = r.reservationId
  assert.equal(codes(svc.batchPutCommit([{clientId: 'c', reservationId: id, key: 'new', offset: base, size: KiB}, {clientId: 'c', reservationId: id, key: 'taken', offset: base + KiB, size: KiB}])), ['ok', 'OBJECT_ALREADY_EXISTS'])
  assert.equal(codes(svc.batchPutCommit([{clientId: 'c', reservationId: id, key: 'later', offset: base + KiB, size: 2 * KiB}])), ['ok'])
  assert.is(svc.getReplicaList('new').version < svc.getReplicaList('later').version, true)
})

test('reservations: freed by tick after put_start_release_timeout; gone with an unmounted segment', () => {
  const {svc, clock} = setup({putStartDiscardTimeoutMs: 1_000, putStartReleaseTimeoutMs: 5_000})
  mount(svc, 's', MiB)
  mount(svc, 't', MiB)
  const r = svc.reserveSpace({clientId: 'c', size: 64 * KiB})
  assert.is(r.expiresAt, clock.now() + 1_000)
  const seg = r.memory.segment
  svc.batchPutCommit([{clientId: 'c', reservationId: r.reservationId, key: 'kept', offset: r.memory.offset, size: KiB}])
  clock.advance(4_999)
  svc.tick()
  assert.is(svc.querySegments(seg).used, 64 * KiB)
  clock.advance(2)
  svc.tick()
  assert.is(svc.querySegments(seg).used, KiB)
  assert.is(svc.existKey('kept'), true)
  assert.equal(codes(svc.batchPutCommit([{clientId: 'c', reservationId: r.reservationId, key: 'late', offset: r.memory.offset + KiB, size: KiB}])), ['OBJECT_NOT_FOUND'])

  const r2 = svc.reserveSpace({clientId: 'c', size: 64 * KiB})
  svc.unmountSegment({name: r2.memory.segment})
  assert.equal(codes(svc.batchPutCommit([{clientId: 'c', reservationId: r2.reservationId, key: 'lost', offset: r2.memory.offset, size: KiB}])), ['SEGMENT_NOT_FOUND'])
  assert.is(svc.existKey('lost'), false)
})

test('reserve: bad requests and no room are refused; a commit is reported as objectCommitted', () => {
  const {svc} = setup()
  throwsCode(() => svc.reserveSpace({clientId: 'c', size: KiB}), 'NO_AVAILABLE_HANDLE')
  mount(svc, 's', MiB)
  throwsCode(() => svc.reserveSpace({clientId: '', size: KiB}), 'INVALID_PARAMS')
  throwsCode(() => svc.reserveSpace({clientId: 'c', size: 0}), 'INVALID_PARAMS')
  throwsCode(() => svc.reserveSpace({clientId: 'c', size: 4 * MiB, minSize: 2 * MiB}), 'NO_AVAILABLE_HANDLE')
  throwsCode(() => svc.reserveSpace({clientId: 'c', size: KiB, minSize: 2 * KiB}), 'INVALID_PARAMS')
  // At most 1/16 of the segment unless more is needed.
  const small = svc.reserveSpace({clientId: 'c', size: MiB, minSize: KiB})
  assert.is(small.memory.length, 64 * KiB)
  const needed = svc.reserveSpace({clientId: 'c', size: MiB, minSize: 100 * KiB})
  assert.is(needed.memory.length, 100 * KiB)
  svc.releaseSpace({clientId: 'c', reservationId: small.reservationId})
  svc.releaseSpace({clientId: 'c', reservationId: needed.reservationId})
  assert.is(svc.querySegments('s').used, 0)
  const seen: Mutation[] = []
  svc.onMutation = (m) => seen.push(m)
  const r = svc.reserveSpace({clientId: 'c', size: KiB})
  assert.equal(seen, [], 'a reservation is not state a standby needs')
  svc.batchPutCommit([{clientId: 'c', reservationId: r.reservationId, key: 'k', offset: r.memory.offset, size: KiB, checksum: 5}])
  assert.equal(
    seen.map((m) => m.type),
    ['objectCommitted'],
  )
})

test.run()
