import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {KiB, MiB, mount, put, segmentsOf, setup, start, throwsCode} from './helpers.js'

test('best effort: 3 replicas asked, 2 segments -> 2 replicas on distinct segments', () => {
  const {svc} = setup()
  mount(svc, 'a', MiB)
  mount(svc, 'b', MiB)
  const r = start(svc, 'k', 1000, {replicaNum: 3})
  assert.is(r.replicas.length, 2)
  assert.is(r.requestedReplicas, 3)
  assert.equal(segmentsOf(r).sort(), ['a', 'b'])
})

test('replication factor 2 with a single segment -> 1 replica', () => {
  const {svc} = setup()
  mount(svc, 'a', MiB)
  assert.is(start(svc, 'k', 1000, {replicaNum: 2}).replicas.length, 1)
})

test('10 replicas on 20 segments are all distinct', () => {
  const {svc} = setup()
  for (let i = 0; i < 20; i++) mount(svc, `s${i}`, MiB)
  for (let k = 0; k < 20; k++) {
    const r = start(svc, `k${k}`, 4 * KiB, {replicaNum: 10})
    assert.is(r.replicas.length, 10)
    assert.is(new Set(segmentsOf(r)).size, 10)
  }
})

test('best effort: only segments with room receive replicas', () => {
  const {svc} = setup()
  mount(svc, 'small', 1000)
  mount(svc, 'big', MiB)
  put(svc, 'fill', 1000, {preferredSegments: ['small']})
  svc.getReplicaList('fill') // leased: cannot be evicted
  const r = start(svc, 'k', 500, {replicaNum: 2})
  assert.equal(segmentsOf(r), ['big'])
})

test('preferred segments are tried first, in order; the deprecated single form replaces the list', () => {
  const {svc} = setup()
  for (const n of ['a', 'b', 'c', 'd']) mount(svc, n, 10 * KiB)
  for (let i = 0; i < 10; i++) {
    assert.equal(segmentsOf(start(svc, `p${i}`, 100, {preferredSegments: ['c']})), ['c'])
    assert.equal(segmentsOf(start(svc, `q${i}`, 100, {preferredSegments: ['d', 'b'], replicaNum: 2})), ['d', 'b'])
    assert.equal(segmentsOf(start(svc, `r${i}`, 100, {preferredSegments: ['d'], preferredSegment: 'a'})), ['a'])
  }
  // a preferred segment without room (or unknown) falls back to the others
  const c = svc.querySegments('c')
  start(svc, 'fill', c.capacity - c.used, {preferredSegments: ['c']})
  assert.is(svc.querySegments('c').used, c.capacity)
  const r = start(svc, 'x', 1000, {preferredSegments: ['nope', 'c']})
  assert.is(r.replicas.length, 1)
  assert.is.not(segmentsOf(r)[0], 'c')
})

test('same-node preference puts the first replica on the writer host; falls back when full', () => {
  const {svc} = setup()
  mount(svc, 'a1', 4 * KiB, {hostId: 'A'})
  mount(svc, 'b1', MiB, {hostId: 'B'})
  mount(svc, 'b2', MiB, {hostId: 'B'})
  mount(svc, 'c1', MiB, {hostId: 'C'})
  for (let i = 0; i < 4; i++) {
    const r = start(svc, `k${i}`, KiB, {preferAllocInSameNode: true}, 'w', 'A')
    assert.equal(segmentsOf(r), ['a1'])
  }
  // a1 full now (and nothing evictable: all puts in progress): fallback to any segment
  const r = start(svc, 'k-more', KiB, {preferAllocInSameNode: true}, 'w', 'A')
  assert.is(r.replicas.length, 1)
  assert.is.not(segmentsOf(r)[0], 'a1')
  for (let i = 0; i < 5; i++) {
    const s = segmentsOf(start(svc, `kb${i}`, KiB, {preferAllocInSameNode: true, replicaNum: 2}, 'w', 'B'))
    assert.ok(s[0] === 'b1' || s[0] === 'b2')
    assert.is(s.length, 2)
  }
})

test('placement spreads over segments (random start)', () => {
  const {svc} = setup()
  for (let i = 0; i < 8; i++) mount(svc, `s${i}`, MiB)
  const count = new Map<string, number>()
  for (let k = 0; k < 400; k++) {
    const s = segmentsOf(start(svc, `k${k}`, 100))[0]
    count.set(s, (count.get(s) ?? 0) + 1)
  }
  assert.is(count.size, 8)
  for (const n of count.values()) assert.ok(n > 20, `uneven spread ${[...count.values()]}`)
})

test('only OK segments receive allocations (not DRAINING)', () => {
  const {svc} = setup()
  mount(svc, 'a', MiB)
  mount(svc, 'b', MiB)
  put(svc, 'on-a', 10, {preferredSegments: ['a']})
  svc.getReplicaList('on-a')
  svc.unmountSegment({name: 'a', drain: true})
  for (let i = 0; i < 20; i++) assert.equal(segmentsOf(start(svc, `k${i}`, 10, {preferredSegments: ['a']})), ['b'])
  svc.unmountSegment({name: 'b', drain: true})
  throwsCode(() => start(svc, 'z', 10), 'NO_AVAILABLE_HANDLE')
})

test.run()
