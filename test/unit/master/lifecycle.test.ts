import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MasterService} from '../../../src/lib/master/service.js'
import type {Mutation} from '../../../src/lib/master/service.js'
import {KiB, MiB, mount, put, segmentsOf, setup, start, throwsCode} from './helpers.js'

for (const replicaNum of [1, 2, 3]) {
  test(`put lifecycle with ${replicaNum} replica(s): PROCESSING -> COMPLETE, checksum, version`, () => {
    const {svc} = setup()
    for (let i = 0; i < 3; i++) mount(svc, `seg${i}`, 16 * MiB)
    const r = svc.putStart({clientId: 'c1', requestId: 'q1', key: 'k', size: 4 * KiB, config: {replicaNum}})
    assert.is(r.replicas.length, replicaNum)
    assert.is(r.requestedReplicas, replicaNum)
    assert.ok(r.replicas.every((x) => x.status === 'PROCESSING' && x.type === 'memory' && x.memory!.length === 4 * KiB))
    assert.is(new Set(segmentsOf(r)).size, replicaNum)
    // not readable yet
    throwsCode(() => svc.getReplicaList('k'), 'REPLICA_IS_NOT_READY')
    assert.is(svc.existKey('k'), false)
    assert.equal(svc.listKeys({}).keys, [])
    const q = svc.query('k')
    assert.ok(q.replicas.every((x) => x.status === 'PROCESSING'))
    svc.putEnd({clientId: 'c1', key: 'k', checksum: 0xdeadbeef})
    const g = svc.getReplicaList('k')
    assert.is(g.replicas.length, replicaNum)
    assert.ok(g.replicas.every((x) => x.status === 'COMPLETE'))
    assert.is(g.checksum, 0xdeadbeef)
    assert.is(g.version, r.version)
    assert.is(g.size, 4 * KiB)
    assert.equal(
      g.replicas.map((x) => [x.memory!.segment, x.memory!.offset]),
      r.replicas.map((x) => [x.memory!.segment, x.memory!.offset]),
    )
    assert.is(svc.query('k').checksum, 0xdeadbeef)
    // repeated PutEnd is an idempotent success
    svc.putEnd({clientId: 'c1', key: 'k'})
    assert.is(svc.stats().keys, 1)
    assert.is(svc.stats().used, 4 * KiB * replicaNum)
  })
}

test('versions grow monotonically', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  const a = put(svc, 'a', 10)
  const b = put(svc, 'b', 10)
  assert.ok(b.version > a.version)
})

test('PutEnd/PutRevoke: unknown key, other client, revoke frees space', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  throwsCode(() => svc.putEnd({clientId: 'c', key: 'nope'}), 'OBJECT_NOT_FOUND')
  throwsCode(() => svc.putRevoke({clientId: 'c', key: 'nope'}), 'OBJECT_NOT_FOUND')
  svc.putStart({clientId: 'c1', requestId: 'x', key: 'k', size: 1000})
  throwsCode(() => svc.putEnd({clientId: 'c2', key: 'k'}), 'ILLEGAL_CLIENT')
  throwsCode(() => svc.putRevoke({clientId: 'c2', key: 'k'}), 'ILLEGAL_CLIENT')
  assert.is(svc.stats().used, 1000)
  svc.putRevoke({clientId: 'c1', key: 'k'})
  assert.is(svc.stats().used, 0)
  assert.is(svc.stats().keys, 0)
  throwsCode(() => svc.getReplicaList('k'), 'OBJECT_NOT_FOUND')
  // the key can be written again at once
  put(svc, 'k', 100)
  assert.ok(svc.existKey('k'))
})

test('an existing key -> OBJECT_ALREADY_EXISTS [ours]', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'k', 10)
  throwsCode(() => start(svc, 'k', 10), 'OBJECT_ALREADY_EXISTS')
})

test('idempotent PutStart: the same request id returns the same placement; another one is refused', () => {
  const {svc} = setup()
  for (let i = 0; i < 4; i++) mount(svc, `s${i}`, MiB)
  const req = {clientId: 'c1', requestId: 'req-1', key: 'k', size: 777, config: {replicaNum: 2}}
  const a = svc.putStart(req)
  const b = svc.putStart(req)
  assert.equal(b, a)
  assert.is(svc.stats().used, 2 * 784)
  throwsCode(() => svc.putStart({...req, requestId: 'req-2'}), 'OBJECT_ALREADY_EXISTS')
  throwsCode(() => svc.putStart({...req, clientId: 'c2'}), 'OBJECT_ALREADY_EXISTS')
  svc.putEnd({clientId: 'c1', key: 'k'})
  // a late retry of the completed put still answers the same placement and version
  const c = svc.putStart(req)
  assert.is(c.version, a.version)
  assert.equal(
    c.replicas.map((x) => x.memory),
    a.replicas.map((x) => x.memory),
  )
  throwsCode(() => svc.putStart({...req, requestId: 'req-3'}), 'OBJECT_ALREADY_EXISTS')
})

test('invalid parameters', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  const base = {clientId: 'c', requestId: 'r', key: 'k', size: 10}
  throwsCode(() => svc.putStart({...base, key: ''}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, key: 'x'.repeat(4097)}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, key: 'é'.repeat(2049)}), 'INVALID_PARAMS') // 4098 bytes
  svc.putStart({...base, key: 'é'.repeat(2048)}) // 4096 bytes: fine
  throwsCode(() => svc.putStart({...base, size: 0}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, size: -1}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, size: 1.5}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, config: {replicaNum: 0}}), 'INVALID_PARAMS')
  throwsCode(() => svc.putStart({...base, clientId: ''}), 'INVALID_PARAMS')
  throwsCode(() => svc.mountSegment({clientId: 'o', segment: {id: 'i', name: 'n', endpoints: [], hostId: 'h', size: 0}}), 'INVALID_PARAMS')
  throwsCode(() => svc.mountSegment({clientId: 'o', segment: {id: '', name: 'n', endpoints: [], hostId: 'h', size: 10}}), 'INVALID_PARAMS')
  throwsCode(() => svc.putEnd({clientId: 'c', key: 'k', checksum: -1}), 'INVALID_PARAMS')
})

test('constructor validates options', () => {
  throwsCode(() => new MasterService({evictionRatio: 1.5}), 'INVALID_PARAMS')
  throwsCode(() => new MasterService({evictionHighWatermarkRatio: -0.1}), 'INVALID_PARAMS')
  throwsCode(() => new MasterService({putStartDiscardTimeoutMs: 10, putStartReleaseTimeoutMs: 10}), 'INVALID_PARAMS')
  throwsCode(() => new MasterService({softPinTtlMs: 2000, maxSoftPinTtlMs: 1000}), 'INVALID_PARAMS')
  new MasterService({evictionRatio: 0, evictionHighWatermarkRatio: 1, rootFsDir: undefined})
})

test('no segment, or no room -> NO_AVAILABLE_HANDLE', () => {
  const {svc} = setup()
  throwsCode(() => start(svc, 'k', 10), 'NO_AVAILABLE_HANDLE')
  mount(svc, 's', 1000)
  throwsCode(() => start(svc, 'k', 1001), 'NO_AVAILABLE_HANDLE')
})

test('zombie puts: busy before the discard timeout, preemptible after, space freed after the release timeout', () => {
  const {svc, clock} = setup({putStartDiscardTimeoutMs: 3000, putStartReleaseTimeoutMs: 5000})
  mount(svc, 's', 10 * KiB)
  svc.putStart({clientId: 'c1', requestId: 'a', key: 'k', size: 6 * KiB})
  clock.advance(2000)
  throwsCode(() => svc.putStart({clientId: 'c2', requestId: 'b', key: 'k', size: 2 * KiB}), 'OBJECT_ALREADY_EXISTS')
  clock.advance(1000)
  throwsCode(() => svc.putStart({clientId: 'c2', requestId: 'b', key: 'k', size: 2 * KiB}), 'OBJECT_ALREADY_EXISTS')
  clock.advance(1)
  // preempted: the new put gets fresh space, the old space stays allocated
  const r = svc.putStart({clientId: 'c2', requestId: 'b', key: 'k', size: 2 * KiB})
  assert.is(r.replicas.length, 1)
  assert.is(svc.stats().used, 8 * KiB)
  throwsCode(() => svc.putEnd({clientId: 'c1', key: 'k'}), 'ILLEGAL_CLIENT')
  svc.putEnd({clientId: 'c2', key: 'k'})
  // no room for 4 KiB until the release timeout of the old put (measured from its start);
  // 'k' is leased, so the synchronous eviction cannot make room either
  svc.getReplicaList('k')
  throwsCode(() => start(svc, 'other', 4 * KiB), 'NO_AVAILABLE_HANDLE')
  clock.advance(1998) // 4999 ms after the old start
  svc.tick()
  assert.is(svc.stats().used, 8 * KiB)
  clock.advance(1) // 5000 ms
  svc.tick()
  assert.is(svc.stats().used, 2 * KiB)
  put(svc, 'other', 4 * KiB)
  assert.ok(svc.existKey('k'))
})

test('an unfinished put is released after the release timeout even without preemption', () => {
  const {svc, clock} = setup({putStartDiscardTimeoutMs: 100, putStartReleaseTimeoutMs: 1000})
  mount(svc, 's', MiB)
  svc.putStart({clientId: 'c1', requestId: 'a', key: 'k', size: 5000})
  svc.putStart({clientId: 'c1', requestId: 'b', key: 'k2', size: 5000})
  svc.putEnd({clientId: 'c1', key: 'k2'})
  clock.advance(999)
  svc.tick()
  assert.is(svc.stats().keys, 2)
  clock.advance(1)
  svc.tick()
  assert.is(svc.stats().keys, 1)
  assert.is(svc.stats().used, 5000)
  throwsCode(() => svc.query('k'), 'OBJECT_NOT_FOUND')
  assert.is(svc.metrics().releasedZombieReplicas, 1)
})

test('upsert: absent key = put; same size reuses the buffers in place; different size reallocates', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  const a = svc.upsertStart({clientId: 'c', requestId: '1', key: 'k', size: 1000})
  svc.upsertEnd({clientId: 'c', key: 'k', checksum: 1})
  const b = svc.upsertStart({clientId: 'c2', requestId: '2', key: 'k', size: 1000})
  assert.is(b.replicas[0].memory!.offset, a.replicas[0].memory!.offset)
  assert.ok(b.version > a.version)
  throwsCode(() => svc.getReplicaList('k'), 'REPLICA_IS_NOT_READY')
  assert.is(svc.existKey('k'), false)
  throwsCode(() => svc.upsertEnd({clientId: 'c', key: 'k'}), 'ILLEGAL_CLIENT')
  svc.upsertEnd({clientId: 'c2', key: 'k', checksum: 2})
  assert.is(svc.getReplicaList('k').checksum, 2)
  assert.is(svc.getReplicaList('k').version, b.version)
  assert.is(svc.stats().used, 1000)
  // different size
  const c = svc.upsertStart({clientId: 'c3', requestId: '3', key: 'k', size: 3000})
  assert.is(svc.stats().used, 3000)
  assert.is.not(c.replicas[0].memory!.offset, b.replicas[0].memory!.offset)
  svc.upsertEnd({clientId: 'c3', key: 'k'})
  const g = svc.getReplicaList('k')
  assert.is(g.size, 3000)
  assert.is(g.checksum, undefined)
})

test('upsert ignores leases and preempts an in-progress put at once', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'k', 1000)
  svc.getReplicaList('k') // lease
  svc.upsertStart({clientId: 'u', requestId: '1', key: 'k', size: 1000})
  // a second upsert preempts the first immediately (no discard wait)
  const r2 = svc.upsertStart({clientId: 'u2', requestId: '2', key: 'k', size: 1000})
  throwsCode(() => svc.upsertEnd({clientId: 'u', key: 'k'}), 'ILLEGAL_CLIENT')
  svc.upsertEnd({clientId: 'u2', key: 'k'})
  assert.is(svc.getReplicaList('k').version, r2.version)
  // a plain in-progress put is preempted too
  svc.putStart({clientId: 'p', requestId: 'p', key: 'k2', size: 10})
  svc.upsertStart({clientId: 'u3', requestId: '3', key: 'k2', size: 20})
  svc.upsertEnd({clientId: 'u3', key: 'k2'})
  assert.is(svc.getReplicaList('k2').size, 20)
})

test('upsert revoke of an in-place write erases the object', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'k', 1000)
  svc.upsertStart({clientId: 'u', requestId: '1', key: 'k', size: 1000})
  svc.upsertRevoke({clientId: 'u', key: 'k'})
  throwsCode(() => svc.query('k'), 'OBJECT_NOT_FOUND')
  assert.is(svc.stats().used, 0)
})

test('disk tier: a disk replica is written after PutEnd by the owner of the first memory replica', () => {
  const {svc} = setup({rootFsDir: '/data/mc/', clusterId: 'c1'})
  mount(svc, 's', MiB, {clientId: 'owner'})
  const r = start(svc, 'k', 100)
  assert.is(r.replicas.length, 2)
  const disk = r.replicas[1]
  assert.is(disk.type, 'disk')
  assert.is(disk.status, 'PROCESSING')
  assert.match(disk.disk!.path, /^\/data\/mc\/c1\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}-v\d+$/)
  svc.putEnd({clientId: 'writer', key: 'k', target: 'all'})
  assert.equal(
    svc.getReplicaList('k').replicas.map((x) => x.type),
    ['memory'],
  )
  throwsCode(() => svc.remove({key: 'k'}), 'REPLICA_IS_NOT_READY')
  throwsCode(() => svc.putEnd({clientId: 'stranger', key: 'k', target: 'disk'}), 'ILLEGAL_CLIENT')
  svc.putEnd({clientId: 'owner', key: 'k', target: 'disk'})
  assert.equal(
    svc.getReplicaList('k').replicas.map((x) => x.type),
    ['memory', 'disk'],
  )
  // eviction leaves a disk-only object
  const {svc: s2} = setup({rootFsDir: '/d'})
  mount(s2, 's', MiB)
  put(s2, 'x', 100)
  s2.putEnd({clientId: 'writer', key: 'x', target: 'disk'})
  s2.runEviction(1, 1)
  assert.equal(
    s2.getReplicaList('x').replicas.map((x) => x.type),
    ['disk'],
  )
  assert.is(s2.stats().used, 0)
  // a failed disk write revokes only the disk replica
  put(s2, 'y', 100)
  s2.putRevoke({clientId: 'writer', key: 'y', target: 'disk'})
  assert.equal(
    s2.getReplicaList('y').replicas.map((x) => x.type),
    ['memory'],
  )
})

test('grants: write grants on PutStart results, read grants until the lease deadline', () => {
  const minted: Array<{key: string; ops: string; expiresAt: number}> = []
  const {svc, clock} = setup(
    {leaseTtlMs: 5000, putStartDiscardTimeoutMs: 30_000},
    {
      mintGrant: (key, g) => {
        minted.push({key, ops: g.ops, expiresAt: g.expiresAt})
        return new Uint8Array([1, 2, 3])
      },
    },
  )
  mount(svc, 'g', MiB, {grantKey: 'abcd'})
  const r = start(svc, 'k', 10)
  assert.ok(r.replicas[0].memory!.grant instanceof Uint8Array)
  assert.equal(minted[0], {key: 'abcd', ops: 'w', expiresAt: clock.now() + 30_000})
  svc.putEnd({clientId: 'writer', key: 'k'})
  const g = svc.getReplicaList('k')
  assert.equal(minted[1], {key: 'abcd', ops: 'r', expiresAt: g.leaseExpiresAt})
  // a segment without a grant key gets none
  const {svc: s2} = setup({}, {mintGrant: () => new Uint8Array(1)})
  mount(s2, 'n', MiB)
  assert.is(start(s2, 'k', 10).replicas[0].memory!.grant, undefined)
})

test('mutation hook reports commits, removals and segment changes', () => {
  const {svc} = setup()
  const seen: Mutation[] = []
  svc.onMutation = (m) => seen.push(m)
  mount(svc, 's', MiB)
  put(svc, 'k', 10)
  svc.remove({key: 'k'})
  svc.unmountSegment({name: 's'})
  assert.equal(
    seen.map((m) => m.type),
    ['segmentMounted', 'objectCommitted', 'objectRemoved', 'segmentUnmounted'],
  )
  const c = seen[1] as Extract<Mutation, {type: 'objectCommitted'}>
  assert.is(c.key, 'k')
  assert.is(c.replicas.length, 1)
  assert.is(c.replicas[0].segment, 's')
  assert.is(c.checksum, 1234)
})

test('serviceReady and stats', () => {
  const {svc} = setup({}, {version: '9.9.9'})
  assert.equal(svc.serviceReady(), {version: '9.9.9', protocolVersion: 1, viewVersion: 0})
  svc.setViewVersion(42)
  assert.is(svc.serviceReady().viewVersion, 42)
  assert.is(svc.viewVersion, 42)
  mount(svc, 's', MiB)
  put(svc, 'a', 100, {withSoftPin: true})
  put(svc, 'b', 100)
  assert.equal(svc.stats(), {capacity: MiB, used: 208, keys: 2, softPinnedKeys: 1, clients: 1, segments: 1})
})

test('PutEnd on a completed object: idempotent for its writer, ILLEGAL_CLIENT for another client', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  svc.putStart({clientId: 'c1', requestId: 'x', key: 'k', size: 1000})
  svc.putEnd({clientId: 'c1', key: 'k'})
  svc.putEnd({clientId: 'c1', key: 'k'}) // a retried PutEnd
  throwsCode(() => svc.putEnd({clientId: 'c2', key: 'k'}), 'ILLEGAL_CLIENT')
  svc.batchPutEnd([{clientId: 'c1', key: 'k'}]).forEach((r) => assert.ok(r.ok))
  const [other] = svc.batchPutEnd([{clientId: 'c2', key: 'k'}])
  assert.ok(other && !other.ok && other.code === 'ILLEGAL_CLIENT')
  // After an upsert by c2, c2 is the writer.
  svc.upsertStart({clientId: 'c2', requestId: 'y', key: 'k', size: 1000})
  svc.upsertEnd({clientId: 'c2', key: 'k'})
  svc.putEnd({clientId: 'c2', key: 'k'})
  throwsCode(() => svc.putEnd({clientId: 'c1', key: 'k'}), 'ILLEGAL_CLIENT')
})

test.run()
