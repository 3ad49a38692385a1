// The metadata journal (--data-dir): group commit, torn tail, compaction, and restore into a
// MasterService (replicas unreadable until their owner re-mounts; their space stays reserved).
import {appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {decodeRecords, encodeRecord} from '../../src/lib/master/ha/codec.js'
import {installGate, type GateHost} from '../../src/lib/master/ha/gate.js'
import {Journal} from '../../src/lib/master/ha/journal.js'
import type {Mutation} from '../../src/lib/master/mutations.js'
import {MetadataImage, PendingRestore, reserveRanges} from '../../src/lib/master/restore.js'
import {RangeAllocator} from '../../src/lib/master/allocator.js'
import {MasterService} from '../../src/lib/master/service.js'
import {descriptor, FakeClock, KiB, MiB, seeded, throwsCode} from './master/helpers.js'

const dirs: string[] = []
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'mooncake-journal-'))
  dirs.push(d)
  return d
}
test.after(() => {
  for (const d of dirs) rmSync(d, {recursive: true, force: true})
})

function committed(key: string, segment: string, offset: number, length: number, version = 1): Mutation {
  return {type: 'objectCommitted', key, size: length, version, checksum: 7, replicas: [{id: version * 10, segment, offset, length}], softPinExpiresAt: null}
}

test('record codec: round trip, torn tail and corrupt CRC end the journal', () => {
  const a = encodeRecord({s: 1, m: [{type: 'objectRemoved', key: 'a'}]})
  const b = encodeRecord({s: 3, m: [{type: 'objectRemoved', key: 'b'}, {type: 'objectRemoved', key: 'c'}]})
  const whole = Buffer.concat([a, b])
  let d = decodeRecords(whole)
  assert.is(d.records.length, 2)
  assert.is(d.records[1].s, 3)
  assert.is(d.tornTail, false)
  assert.is(d.validBytes, whole.length)
  // cut inside the second record
  d = decodeRecords(whole.subarray(0, whole.length - 3))
  assert.is(d.records.length, 1)
  assert.is(d.validBytes, a.length)
  assert.is(d.tornTail, true)
  // flip a payload byte of the second record
  const bad = Buffer.from(whole)
  bad[a.length + 10] ^= 0xff
  d = decodeRecords(bad)
  assert.is(d.records.length, 1)
  assert.is(d.tornTail, true)
  // a header cut short
  d = decodeRecords(whole.subarray(0, a.length + 5))
  assert.is(d.records.length, 1)
})

test('journal: appended mutations are durable after waitDurable and survive a reopen', async () => {
  const dir = tmp()
  const {journal} = await Journal.open(dir)
  journal.append({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', 16 * MiB)})
  for (let i = 0; i < 100; i++) journal.append(committed(`k${i}`, 's1', i * 4 * KiB, 4 * KiB, i + 1))
  assert.is(journal.appendedSeq, 101)
  await journal.waitDurable(101)
  assert.is(journal.durableSeq, 101)
  assert.ok(journal.stats.groups >= 1 && journal.stats.groups <= 3, `grouped: ${journal.stats.groups} fsyncs for 101 mutations`)
  // no close(): as after kill -9
  const r = Journal.recover(dir)
  assert.is(r.report.lastSeq, 101)
  assert.is(r.image.size, 100)
  assert.is(r.image.segments.size, 1)
  await journal.close()
})

test('journal: a torn tail record is ignored and cut off; appends continue after it', async () => {
  const dir = tmp()
  const {journal} = await Journal.open(dir)
  journal.append({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', 16 * MiB)})
  journal.append(committed('a', 's1', 0, 64))
  await journal.waitDurable(2)
  await journal.close()
  const file = readdirSync(dir).find((f) => f.startsWith('journal-'))!
  // a crash in the middle of the next record
  const torn = encodeRecord({s: 3, m: [committed('b', 's1', 64, 64)]})
  appendFileSync(path.join(dir, file), torn.subarray(0, torn.length - 7))
  const r = Journal.recover(dir)
  assert.is(r.report.tornTail, true)
  assert.is(r.report.lastSeq, 2)
  assert.ok(r.image.objects.has('a'))
  assert.not.ok(r.image.objects.has('b'))
  // the file was truncated to its valid part
  assert.is(decodeRecords(readFileSync(path.join(dir, file))).tornTail, false)
  const {journal: j2, recovery} = await Journal.open(dir)
  assert.is(recovery.lastSeq, 2)
  j2.append(committed('c', 's1', 128, 64))
  await j2.waitDurable(3)
  await j2.close()
  const r2 = Journal.recover(dir)
  assert.equal([...r2.image.objects.keys()].sort(), ['a', 'c'])
})

test('journal: compaction writes a snapshot and deletes older journal files; recovery = snapshot + tail', async () => {
  const dir = tmp()
  const {journal} = await Journal.open(dir, {compactEvery: 50, maxGroup: 20})
  journal.append({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', 64 * MiB)})
  for (let i = 0; i < 200; i++) {
    journal.append(committed(`k${i}`, 's1', i * KiB, KiB, i + 1))
    if (i % 3 === 0) journal.append({type: 'objectRemoved', key: `k${i}`})
  }
  await journal.waitDurable(journal.appendedSeq)
  assert.ok(journal.stats.snapshots >= 2, `snapshots: ${journal.stats.snapshots}`)
  const files = readdirSync(dir).filter((f) => f.startsWith('journal-'))
  assert.is(files.length, 1, `one journal file after compaction: ${files}`)
  const snap = JSON.parse(readFileSync(path.join(dir, 'snapshot.json'), 'utf8')) as {seq: number}
  assert.ok(snap.seq > 0 && snap.seq <= journal.durableSeq)
  const r = Journal.recover(dir)
  assert.is(r.report.lastSeq, journal.appendedSeq)
  assert.is(r.image.size, 200 - 67)
  assert.not.ok(r.image.objects.has('k0'))
  assert.ok(r.image.objects.has('k1'))
  await journal.close()
})

test('image: unmount drops replicas; objects left without any go', () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', MiB)})
  img.apply({type: 'segmentMounted', clientId: 'o2', segment: descriptor('s2', MiB)})
  img.apply({type: 'objectCommitted', key: 'both', size: 8, version: 1, replicas: [{id: 1, segment: 's1', offset: 0, length: 8}, {id: 2, segment: 's2', offset: 0, length: 8}], softPinExpiresAt: null})
  img.apply(committed('only1', 's1', 8, 8, 2))
  img.apply({type: 'segmentUnmounted', name: 's1', id: 'id-s1', clientId: 'o1', reason: 'expired'})
  assert.equal([...img.objects.keys()], ['both'])
  assert.equal(img.objects.get('both')!.replicas.map((r) => r.segment), ['s2'])
  const copy = MetadataImage.fromSnapshot(JSON.parse(JSON.stringify(img.snapshot())))
  assert.equal(copy.snapshot(), img.snapshot())
  assert.equal(copy.maxIds(), {version: 1, replicaId: 2})
})

test('reserveRanges puts a fresh allocator back exactly', () => {
  const a = new RangeAllocator(MiB)
  const ranges = [
    {offset: 4096, length: 100},
    {offset: 0, length: 8},
    {offset: 512 * KiB, length: 64 * KiB},
    {offset: 8, length: 16},
  ]
  const h = reserveRanges(a, ranges)
  assert.ok(h.every((x) => x >= 0))
  assert.equal(h.map((x) => a.offsetOf(x)), ranges.map((r) => r.offset))
  assert.is(a.allocations, 4)
  // overlapping range refused, the rest reserved
  const b = new RangeAllocator(MiB)
  const h2 = reserveRanges(b, [{offset: 0, length: 64}, {offset: 32, length: 64}])
  assert.ok(h2[0] >= 0)
  assert.is(h2[1], -1)
})

test('pending restore: a dropped key leaves every segment it was pending on; the others come back', () => {
  const img = new MetadataImage()
  for (const name of ['s1', 's2']) img.apply({type: 'segmentMounted', clientId: `o-${name}`, segment: descriptor(name, MiB)})
  const both = (key: string, offset: number): Mutation => ({
    type: 'objectCommitted',
    key,
    size: 64,
    version: offset + 1,
    replicas: [
      {id: offset * 2 + 1, segment: 's1', offset: offset * 64, length: 64},
      {id: offset * 2 + 2, segment: 's2', offset: offset * 64, length: 64},
    ],
    softPinExpiresAt: null,
  })
  for (let i = 0; i < 4; i++) img.apply(both(`k${i}`, i))
  const {pending} = PendingRestore.fromImage(img, 0)
  assert.ok(pending.dropKey('k1'))
  assert.not.ok(pending.dropKey('k1'), 'already dropped')
  assert.not.ok(pending.dropKey('never'))
  assert.not.ok(pending.hasKey('k1'))
  assert.equal(pending.take('s1')!.items.map((it) => it.key), ['k0', 'k2', 'k3'])
  assert.ok(pending.hasKey('k0'), 'still pending on s2')
  assert.ok(pending.dropKey('k2'))
  assert.equal(pending.take('s2')!.items.map((it) => it.key), ['k0', 'k3'])
  assert.equal([...pending.keys()], [])
  assert.is(pending.size, 0)
})

function restoredService(dirImage: MetadataImage) {
  const clock = new FakeClock()
  const svc = new MasterService({}, {clock, random: seeded(3)})
  const log: Mutation[] = []
  svc.onMutation = (m) => log.push(m)
  const host: GateHost = {service: svc, pending: undefined, emit: (m) => log.push(m)}
  installGate(host)
  const {pending, diskOnly} = PendingRestore.fromImage(dirImage, clock.now() + 10_000)
  host.pending = pending
  const ids = dirImage.maxIds()
  svc.raiseIdFloors(ids.version + 1, ids.replicaId + 1)
  svc.restoreObjects(undefined, diskOnly)
  return {svc, clock, host, log}
}

test('restore: replicas unreadable until the owner re-mounts the same segment; space stays reserved', () => {
  const clock = new FakeClock()
  const before = new MasterService({}, {clock, random: seeded(1)})
  const img = new MetadataImage()
  before.onMutation = (m) => img.apply(m)
  const d1 = descriptor('s1', 4 * MiB)
  const d2 = descriptor('s2', 4 * MiB)
  before.mountSegment({clientId: 'o1', segment: d1})
  before.reMountSegment({clientId: 'o1', segments: [d1]})
  before.mountSegment({clientId: 'o2', segment: d2})
  before.reMountSegment({clientId: 'o2', segments: [d2]})
  const placed: Record<string, {segment: string; offset: number}[]> = {}
  for (let i = 0; i < 20; i++) {
    const r = before.putStart({clientId: 'w', requestId: `q${i}`, key: `k${i}`, size: 100 * KiB, config: {replicaNum: i % 2 === 0 ? 1 : 2}})
    before.putEnd({clientId: 'w', key: `k${i}`, checksum: i})
    placed[`k${i}`] = r.replicas.map((x) => ({segment: x.memory!.segment, offset: x.memory!.offset}))
  }
  before.remove({key: 'k0', force: true})
  const {svc, host} = restoredService(img)
  // nothing readable, but the keys exist
  throwsCode(() => svc.getReplicaList('k1'), 'UNAVAILABLE')
  throwsCode(() => svc.putStart({clientId: 'x', requestId: 'z', key: 'k1', size: 10, config: {}}), 'OBJECT_ALREADY_EXISTS')
  throwsCode(() => svc.getReplicaList('k0'), 'OBJECT_NOT_FOUND')
  assert.is(svc.existKey('k2'), false)
  // the owner of s1 comes back: its ping says NEED_REMOUNT, then it re-mounts with the same identity
  assert.is(svc.ping({clientId: 'o1'}).status, 'NEED_REMOUNT')
  throwsCode(() => svc.reMountSegment({clientId: 'o1', segments: [{...d1, id: 'other'}]}), 'INVALID_PARAMS')
  svc.reMountSegment({clientId: 'o1', segments: [d1]})
  assert.is(svc.ping({clientId: 'o1'}).status, 'OK')
  for (let i = 1; i < 20; i++) {
    const want = placed[`k${i}`].filter((p) => p.segment === 's1')
    if (want.length === 0) {
      throwsCode(() => svc.getReplicaList(`k${i}`), 'UNAVAILABLE')
      continue
    }
    const g = svc.getReplicaList(`k${i}`)
    assert.equal(g.replicas.map((r) => ({segment: r.memory!.segment, offset: r.memory!.offset})), want)
    assert.is(g.checksum, i)
  }
  // new puts never land on a restored range
  const taken = new Set(Object.values(placed).flat().filter((p) => p.segment === 's1').map((p) => p.offset))
  for (let i = 0; i < 10; i++) {
    const r = svc.putStart({clientId: 'w2', requestId: `n${i}`, key: `new${i}`, size: 100 * KiB, config: {}})
    for (const x of r.replicas) {
      if (x.memory!.segment !== 's1') continue
      for (const off of taken) assert.ok(x.memory!.offset + 100 * KiB <= off || x.memory!.offset >= off + 100 * KiB, `overlap at ${x.memory!.offset}`)
    }
  }
  // s2 comes back with MountSegment + ReMountSegment: the second replicas join
  svc.mountSegment({clientId: 'o2', segment: d2})
  svc.reMountSegment({clientId: 'o2', segments: [d2]})
  assert.is(host.pending!.size, 0)
  for (let i = 1; i < 20; i++) assert.is(svc.getReplicaList(`k${i}`).replicas.length, placed[`k${i}`].length)
  // versions continue above the restored ones
  const v = svc.putStart({clientId: 'w', requestId: 'v', key: 'fresh', size: 8, config: {}}).version
  assert.ok(v > 20)
})

test('restore: a put that finds no space while restored segments re-mount is UNAVAILABLE (retry), not NO_AVAILABLE_HANDLE', () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', MiB)})
  img.apply(committed('a', 's1', 0, 64))
  const {svc, host} = restoredService(img)
  // Only the restored segment exists: no space anywhere until its owner is back.
  const put = (key: string) => svc.putStart({clientId: 'w', requestId: key, key, size: 4096, config: {}})
  throwsCode(() => put('p1'), 'UNAVAILABLE')
  throwsCode(() => svc.upsertStart({clientId: 'w', requestId: 'u1', key: 'u1', size: 4096, config: {}}), 'UNAVAILABLE')
  const batch = svc.batchPutStart([
    {clientId: 'w', requestId: 'b1', key: 'b1', size: 4096, config: {}},
    {clientId: 'w', requestId: 'b2', key: 'a', size: 4096, config: {}},
  ])
  assert.equal(batch.map((r) => (r.ok ? 'ok' : r.code)), ['UNAVAILABLE', 'OBJECT_ALREADY_EXISTS'])
  assert.match(batch[0].ok ? '' : batch[0].message, /re-mount/)
  // The owner re-mounts: the same request now succeeds, and a full pool is NO_AVAILABLE_HANDLE again.
  svc.reMountSegment({clientId: 'o1', segments: [descriptor('s1', MiB)]})
  assert.is(host.pending!.size, 0)
  assert.is(put('p1').replicas.length, 1)
  throwsCode(() => svc.putStart({clientId: 'w', requestId: 'big', key: 'big', size: 2 * MiB, config: {}}), 'NO_AVAILABLE_HANDLE')
})

test('restore: a segment whose owner never comes back expires with its replicas', async () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', MiB)})
  img.apply(committed('a', 's1', 0, 64))
  const {svc, host, log} = restoredService(img)
  const notices: string[] = []
  svc.onNotice = (m) => notices.push(m)
  const {expirePending} = await import('../../src/lib/master/ha/gate.js')
  assert.is(expirePending(host, host.pending!.expiresAt - 1), 0)
  // This master stalled 500 ms (a late timer): the owner gets that much longer to re-mount.
  const due = host.pending!.expiresAt
  assert.is(expirePending(host, due + 1, 500), 0)
  assert.is(host.pending!.expiresAt, due + 500)
  assert.is(expirePending(host, due + 501), 1)
  throwsCode(() => svc.getReplicaList('a'), 'OBJECT_NOT_FOUND')
  assert.ok(log.some((m) => m.type === 'segmentUnmounted' && m.reason === 'expired'))
  assert.equal(notices, ['segment "s1" of client o1 was not re-mounted in time after the restore: its 1 replica(s) dropped'])
  const after = new MetadataImage()
  after.load(img.snapshot())
  for (const m of log) after.apply(m)
  assert.is(after.size, 0)
})

test('restore: remove and upsert of a key waiting for its owner', () => {
  const img = new MetadataImage()
  img.apply({type: 'segmentMounted', clientId: 'o1', segment: descriptor('s1', MiB)})
  img.apply(committed('a', 's1', 0, 64, 1))
  img.apply(committed('b', 's1', 64, 64, 2))
  const {svc, log} = restoredService(img)
  svc.remove({key: 'a'})
  assert.ok(log.some((m) => m.type === 'objectRemoved' && m.key === 'a'))
  // the upsert replaces b (a later PutEnd commits the new value)
  const d = descriptor('s2', MiB)
  svc.mountSegment({clientId: 'o2', segment: d})
  svc.upsertStart({clientId: 'w', requestId: 'u', key: 'b', size: 32, config: {}})
  svc.upsertEnd({clientId: 'w', key: 'b'})
  svc.reMountSegment({clientId: 'o1', segments: [descriptor('s1', MiB)]})
  throwsCode(() => svc.getReplicaList('a'), 'OBJECT_NOT_FOUND')
  const g = svc.getReplicaList('b')
  assert.is(g.size, 32)
  assert.equal(g.replicas.map((r) => r.memory!.segment), ['s2'])
})

test('journal files are written with mode 0600 and the snapshot atomically', async () => {
  const dir = tmp()
  writeFileSync(path.join(dir, 'snapshot.json.tmp'), 'garbage from a crash')
  const {journal} = await Journal.open(dir)
  journal.append({type: 'objectRemoved', key: 'x'})
  await journal.waitDurable(1)
  await journal.close()
  assert.not.ok(readdirSync(dir).includes('snapshot.json.tmp'))
})

test.run()
