import {test} from 'uvu'
import * as assert from 'uvu/assert'

import type {Mutation} from '../../../src/lib/master/service.js'
import {KiB, MiB, mount, put, setup} from './helpers.js'

test('batch put: one result per key, one bad key does not fail the batch', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'exists', 10)
  const starts = svc.batchPutStart([
    {clientId: 'c', requestId: '1', key: 'a', size: 10},
    {clientId: 'c', requestId: '2', key: 'exists', size: 10},
    {clientId: 'c', requestId: '3', key: '', size: 10},
    {clientId: 'c', requestId: '4', key: 'b', size: 10},
    {clientId: 'c', requestId: '5', key: 'big', size: 2 * MiB},
  ])
  assert.equal(
    starts.map((r) => (r.ok ? 'ok' : r.code)),
    ['ok', 'OBJECT_ALREADY_EXISTS', 'INVALID_PARAMS', 'ok', 'NO_AVAILABLE_HANDLE'],
  )
  const ends = svc.batchPutEnd([
    {clientId: 'c', key: 'a', checksum: 0xffffffff},
    {clientId: 'x', key: 'b'},
    {clientId: 'c', key: 'nope'},
  ])
  assert.equal(
    ends.map((r) => (r.ok ? 'ok' : r.code)),
    ['ok', 'ILLEGAL_CLIENT', 'OBJECT_NOT_FOUND'],
  )
  assert.is(svc.getReplicaList('a').checksum, 0xffffffff)
  const revokes = svc.batchPutRevoke([
    {clientId: 'c', key: 'b'},
    {clientId: 'c', key: 'a'},
  ])
  assert.equal(
    revokes.map((r) => (r.ok ? 'ok' : r.code)),
    ['ok', 'INVALID_WRITE'],
  )
  assert.equal(
    svc.batchQuery(['a', 'b']).map((r) => r.ok),
    [true, false],
  )
})

test('mutations: upsert and eviction are reported; objects dropped by an unmount are removed', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  mount(svc, 't', MiB)
  const seen: Mutation[] = []
  svc.onMutation = (m) => seen.push(m)
  put(svc, 'k', KiB, {preferredSegments: ['s']})
  svc.upsertStart({clientId: 'u', requestId: 'u1', key: 'k', size: KiB})
  svc.upsertEnd({clientId: 'u', key: 'k'})
  put(svc, 'e', KiB, {preferredSegments: ['t']})
  svc.runEviction(0.5, 0.5) // both expired; ceil(2 * 0.5) = 1 oldest: k (upserted first)
  svc.unmountSegment({name: 't'})
  const types = seen.map((m) => `${m.type}:${'key' in m ? m.key : 'name' in m ? m.name : ''}`)
  assert.equal(types, [
    'objectCommitted:k',
    'objectRemoved:k',
    'objectCommitted:k',
    'objectCommitted:e',
    'objectRemoved:k',
    'segmentUnmounted:t',
    'objectRemoved:e',
  ])
})

test('needsTick reports pending background work', () => {
  const {svc} = setup()
  assert.is(svc.needsTick(), false)
  mount(svc, 's', MiB)
  assert.is(svc.needsTick(), true, 'a client to watch')
})

test('a retried PutStart returns grants again', () => {
  let n = 0
  const {svc} = setup({}, {mintGrant: () => new Uint8Array([++n])})
  mount(svc, 's', MiB, {grantKey: 'aa'})
  const req = {clientId: 'c', requestId: 'r', key: 'k', size: 10}
  const a = svc.putStart(req)
  const b = svc.putStart(req)
  assert.equal(a.replicas[0].memory!.grant, new Uint8Array([1]))
  assert.equal(b.replicas[0].memory!.grant, new Uint8Array([2]))
  assert.is(b.replicas[0].memory!.offset, a.replicas[0].memory!.offset)
})

test.run()
