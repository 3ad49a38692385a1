/**
 * Disk tier, in process: file format, paths, writer/reader/scanner on a temporary directory,
 * quota order, and the master's disk tasks through Ping (issue 6).
 */
import {randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {crc32cJs} from '../../src/lib/client/crc32c.js'
import {directSink, readDiskReplica} from '../../src/lib/disk/reader.js'
import {decodeHeader, diskPath, encodeHeader, keyHash} from '../../src/lib/disk/format.js'
import {DiskQuota} from '../../src/lib/disk/quota.js'
import {scanDiskDir} from '../../src/lib/disk/scanner.js'
import {DiskWriter, writeDiskFile} from '../../src/lib/disk/writer.js'
import {MooncakeError} from '../../src/lib/errors.js'
import type {DiskTask} from '../../src/lib/master/api.js'
import {MiB, mount, put, setup, start, throwsCode} from './master/helpers.js'
import {rejects} from '../helpers/assert-code.js'
import {filesUnder} from '../helpers/files.js'

const t = suite('disk tier')
const dirs: string[] = []
const tmp = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'mc-disk-unit-'))
  dirs.push(d)
  return d
}
t.after(() => {
  for (const d of dirs) rmSync(d, {recursive: true, force: true})
})



t('header round trip; a damaged header is CHECKSUM_MISMATCH', () => {
  const key = 'ключ/../ key \u0000 ' + 'x'.repeat(100)
  const h = encodeHeader({key, size: 12345, version: 77, checksum: 0xdeadbeef}, crc32cJs)
  const d = decodeHeader(h, crc32cJs)
  assert.equal(d, {key, size: 12345, version: 77, checksum: 0xdeadbeef, headerLength: h.length})
  for (const at of [0, 9, 17, 25, 33, 50]) {
    const bad = Buffer.from(h)
    bad[at] ^= 1
    try {
      decodeHeader(bad, crc32cJs)
      assert.unreachable(`byte ${at}`)
    } catch (err) {
      assert.is((err as MooncakeError).code, 'CHECKSUM_MISMATCH', `byte ${at}`)
    }
  }
})

t('paths: any key stays under ROOT/CLUSTER/aa/bb, named by its hash and version', () => {
  for (const key of ['a', '../../etc/passwd', '/abs/path', 'k'.repeat(4096), 'sp ace', '日本語', '\u0000nul', '..']) {
    const p = diskPath('/root/dir/', 'c1', key, 5)
    const h = keyHash(key)
    assert.is(p, `/root/dir/c1/${h.slice(0, 2)}/${h.slice(2, 4)}/${h}-v5`)
  }
  assert.ok(diskPath('/r', '../x', 'k', 1).startsWith('/r/'), 'a cluster id cannot lead outside the root')
})

t('writer + reader: atomic file, verified reads; corruption is CHECKSUM_MISMATCH', async () => {
  const root = tmp()
  const mem = randomBytes(3 * MiB + 17)
  const source = {name: 'seg', window: (o: number, l: number) => mem.subarray(o, o + l)}
  const key = 'k/../../escape'
  const value = mem.subarray(1000, 1000 + 2 * MiB + 5)
  const checksum = crc32cJs(value)
  const task: DiskTask = {key, version: 9, segment: 'seg', offset: 1000, length: value.length, path: diskPath(root, 'c', key, 9), checksum}
  assert.is(await writeDiskFile(task, source, crc32cJs), checksum >>> 0)
  assert.equal(filesUnder(root), [task.path], 'one file, no temporary left')
  const req = {path: task.path, key, size: value.length, version: 9, checksum}
  const out = Buffer.alloc(value.length)
  await readDiskReplica(req, directSink(out), {crc32c: crc32cJs, sliceSize: 256 * 1024})
  assert.ok(out.equals(value))
  await rejects(readDiskReplica({...req, version: 8}, directSink(out), {crc32c: crc32cJs, sliceSize: MiB}), 'CHECKSUM_MISMATCH')
  await rejects(readDiskReplica({...req, key: 'other'}, directSink(out), {crc32c: crc32cJs, sliceSize: MiB}), 'CHECKSUM_MISMATCH')
  await rejects(readDiskReplica({...req, path: task.path + 'x'}, directSink(out), {crc32c: crc32cJs, sliceSize: MiB}), 'FILE_NOT_FOUND')
  const bytes = readFileSync(task.path)
  bytes[bytes.length - 10] ^= 0xff
  writeFileSync(task.path, bytes)
  await rejects(readDiskReplica(req, directSink(Buffer.alloc(value.length)), {crc32c: crc32cJs, sliceSize: MiB}), 'CHECKSUM_MISMATCH')
  // a task whose checksum does not match the memory fails and leaves nothing behind
  const wrong = {...task, version: 10, path: diskPath(root, 'c', key, 10), checksum: checksum ^ 1}
  await rejects(writeDiskFile(wrong, source, crc32cJs), 'CHECKSUM_MISMATCH')
  assert.ok(!existsSync(wrong.path))
  assert.is(filesUnder(root).length, 1)
})

t('writer queue: failures are reported, duplicates ignored; a file where a directory belongs fails', async () => {
  const root = tmp()
  writeFileSync(path.join(root, 'c'), 'not a directory')
  const mem = randomBytes(MiB)
  let settled = 0
  const w = new DiskWriter({name: 'seg', window: (o, l) => mem.subarray(o, o + l)}, {crc32c: crc32cJs, onResult: () => settled++})
  const task: DiskTask = {key: 'k', version: 1, segment: 'seg', offset: 0, length: 100, path: diskPath(root, 'c', 'k', 1)}
  w.submit([task, task])
  const good = mkdtempSync(path.join(root, 'ok-'))
  w.submit([{...task, key: 'k2', path: diskPath(good, 'c', 'k2', 1)}])
  while (settled < 2) await new Promise((r) => setTimeout(r, 5))
  const results = w.takeResults()
  assert.is(results.length, 2)
  const bad = results.find((r) => r.key === 'k')!
  assert.is(bad.ok, false)
  assert.is(bad.code, 'FILE_WRITE_FAIL')
  const ok = results.find((r) => r.key === 'k2')!
  assert.is(ok.ok, true)
  assert.is(ok.checksum, crc32cJs(mem.subarray(0, 100)) >>> 0)
  await w.close()
})

t('scanner: headers give the objects; newest version wins; bad files and old temporaries', async () => {
  const root = tmp()
  const mem = randomBytes(MiB)
  const src = {name: 's', window: (o: number, l: number) => mem.subarray(o, o + l)}
  const mk = (key: string, version: number, len: number) => writeDiskFile({key, version, segment: 's', offset: 0, length: len, path: diskPath(root, 'c', key, version)}, src, crc32cJs)
  await mk('a', 1, 10)
  await mk('a', 3, 20)
  await mk('b/../x', 2, 30)
  const cdir = path.join(root, 'c')
  const h = keyHash('junk')
  const junk = path.join(cdir, h.slice(0, 2), h.slice(2, 4), `${h}-v1`)
  await mk('junk', 1, 10)
  writeFileSync(junk, 'garbage')
  const tmpFile = path.join(path.dirname(junk), `.${h}-v2.abc.tmp`)
  writeFileSync(tmpFile, 'partial')
  utimesSync(tmpFile, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))
  const res = await scanDiskDir(cdir, {crc32c: crc32cJs})
  assert.equal(res.files.map((f) => [f.key, f.version, f.size]).sort(), [['a', 3, 20], ['b/../x', 2, 30]])
  assert.equal(res.invalid, [junk])
  assert.is(res.deleted, 2, 'old version and stale temporary deleted')
  assert.ok(!existsSync(diskPath(root, 'c', 'a', 1)))
  assert.ok(!existsSync(tmpFile))
})

t('quota: oldest complete files go first; reservations count; too large is refused', () => {
  const q = new DiskQuota(1000)
  const evicted: string[] = []
  const ev = (e: {key: string}) => evicted.push(e.key)
  q.add('a', 1, 300)
  q.add('b', 1, 300)
  assert.ok(q.reserve('c', 1, 300, ev))
  q.commit('c', 1, 300)
  assert.ok(q.reserve('d', 1, 300, ev))
  assert.equal(evicted, ['a'])
  assert.ok(q.reserve('e', 1, 400, ev))
  assert.equal(evicted, ['a', 'b'])
  assert.not.ok(q.reserve('f', 1, 400, ev), 'in-flight writes leave no room: refused, nothing evicted')
  assert.equal(evicted, ['a', 'b'])
  assert.not.ok(q.reserve('g', 1, 1001, ev))
  q.release('d', 1)
  assert.is(q.reserved, 400)
})

t('master: the first replica owner gets the task by Ping; success makes it COMPLETE; eviction waits for it', () => {
  const {svc} = setup({rootFsDir: '/nonexistent-mc-root', clusterId: 'c', evictionHighWatermarkRatio: 0.5})
  mount(svc, 's1', MiB, {clientId: 'o1'})
  put(svc, 'k', 1000)
  assert.equal(svc.ping({clientId: 'other'}).diskTasks, undefined)
  const res = svc.ping({clientId: 'o1'})
  assert.is(res.diskTasks?.length, 1)
  const task = res.diskTasks![0]
  assert.is(task.key, 'k')
  assert.is(task.length, 1000)
  assert.is(task.checksum, 1234)
  assert.is(task.segment, 's1')
  assert.equal(svc.ping({clientId: 'o1'}).diskTasks, undefined, 'not resent at once')
  assert.is(svc.runEviction(1, 1).evicted, 0, 'not evictable while its disk copy is written')
  throwsCode(() => svc.remove({key: 'k', force: true}), 'REPLICA_IS_NOT_READY')
  svc.ping({clientId: 'o1', diskResults: [{key: 'k', version: task.version, ok: true, checksum: 1234}]})
  const info = svc.query('k')
  assert.equal(info.replicas.map((r) => [r.type, r.status]), [['memory', 'COMPLETE'], ['disk', 'COMPLETE']])
  assert.is(info.replicas[1].path, task.path)
  assert.is(svc.runEviction(1, 1).evicted, 1)
  assert.equal(svc.getReplicaList('k').replicas.map((r) => r.type), ['disk'])
  assert.equal(svc.listKeys().keys, ['k'])
})

t('master: a failed or mismatching disk write revokes only the disk replica; a stale report is ignored', () => {
  const {svc, clock} = setup({rootFsDir: '/nonexistent-mc-root', clusterId: 'c'})
  mount(svc, 's1', MiB, {clientId: 'o1'})
  put(svc, 'a', 100)
  put(svc, 'b', 100)
  const tasks = svc.ping({clientId: 'o1'}).diskTasks!
  assert.is(tasks.length, 2)
  const va = tasks.find((x) => x.key === 'a')!.version
  const vb = tasks.find((x) => x.key === 'b')!.version
  svc.ping({
    clientId: 'o1',
    diskResults: [
      {key: 'a', version: va, ok: false, code: 'FILE_WRITE_FAIL', message: 'ENOSPC'},
      {key: 'b', version: vb, ok: true, checksum: 999},
      {key: 'a', version: va + 100, ok: true, checksum: 1234},
    ],
  })
  for (const k of ['a', 'b']) {
    assert.equal(svc.query(k).replicas.map((r) => r.type), ['memory'], k)
    assert.equal(svc.getReplicaList(k).replicas.map((r) => r.type), ['memory'], k)
  }
  clock.advance(20_000)
  assert.is(svc.runEviction(1, 1).evicted, 2, 'evictable again once settled')
  throwsCode(() => svc.query('a'), 'OBJECT_NOT_FOUND')
})

t('master: the quota revokes a too-large replica and evicts the oldest; a dead owner passes its tasks on', () => {
  const {svc, clock} = setup({rootFsDir: '/nonexistent-mc-root', clusterId: 'c', diskQuota: 2500, clientTtlMs: 1000})
  mount(svc, 's1', MiB, {clientId: 'o1'})
  put(svc, 'big', 5000)
  assert.equal(svc.query('big').replicas.map((r) => r.type), ['memory'], 'revoked: larger than the quota')
  for (const k of ['x', 'y', 'z']) {
    put(svc, k, 1000)
    const [task] = svc.ping({clientId: 'o1'}).diskTasks!
    svc.ping({clientId: 'o1', diskResults: [{key: k, version: task.version, ok: true, checksum: 1234}]})
    clock.advance(10)
  }
  assert.equal(svc.query('x').replicas.map((r) => r.type), ['memory'], 'x (oldest) evicted from disk')
  assert.equal(svc.query('z').replicas.map((r) => r.type), ['memory', 'disk'])
  // two replicas; the first owner dies before writing
  mount(svc, 's2', MiB, {clientId: 'o2'})
  start(svc, 'two', 100, {replicaNum: 2, preferredSegments: ['s1', 's2']})
  svc.putEnd({clientId: 'writer', key: 'two', checksum: 1})
  clock.advance(900)
  svc.ping({clientId: 'o2'})
  clock.advance(900)
  svc.ping({clientId: 'o2'})
  svc.tick()
  const tasks = svc.ping({clientId: 'o2'}).diskTasks ?? []
  assert.equal(tasks.map((x) => [x.key, x.segment]), [['two', 's2']])
})

t('master: diskQuota must be a positive integer number of bytes (with a disk tier)', () => {
  for (const diskQuota of [0, -1, 1.5, Number.NaN]) {
    throwsCode(() => setup({rootFsDir: '/nonexistent-mc-root', clusterId: 'c', diskQuota}), 'INVALID_PARAMS')
  }
  assert.is(setup({rootFsDir: '/nonexistent-mc-root', clusterId: 'c', diskQuota: 1}).svc.disk!.quota.limit, 1)
})

t('master restart over the quota: the oldest files are evicted, each deleted once, the rest restored', async () => {
  const root = tmp()
  const mem = randomBytes(MiB)
  const src = {name: 's', window: (o: number, l: number) => mem.subarray(o, o + l)}
  const keys = ['old', 'mid', 'new']
  for (const [i, key] of keys.entries()) {
    const file = diskPath(root, 'c', key, i + 1)
    await writeDiskFile({key, version: i + 1, segment: 's', offset: 0, length: 1000, path: file}, src, crc32cJs)
    const at = new Date(Date.now() - (3 - i) * 60_000)
    utimesSync(file, at, at)
  }
  // Room for two files (48 + key + 1000 bytes each).
  const {svc} = setup({rootFsDir: root, clusterId: 'c', diskQuota: 2 * 1060})
  const disk = svc.disk!
  const deletes = new Map<string, number>()
  const deleteFile = disk.deleteFile.bind(disk)
  disk.deleteFile = (key, version) => {
    deletes.set(key, (deletes.get(key) ?? 0) + 1)
    deleteFile(key, version)
  }
  const res = await disk.restore(svc)
  await disk.idle()
  assert.is(res.restored, 3)
  assert.equal([...deletes], [['old', 1]], 'only the oldest file is deleted, once')
  assert.is(disk.counters.evictedByQuota, 1)
  assert.ok(!existsSync(diskPath(root, 'c', 'old', 1)))
  throwsCode(() => svc.query('old'), 'OBJECT_NOT_FOUND')
  for (const [i, key] of keys.entries()) {
    if (i > 0) assert.equal(svc.query(key).replicas.map((r) => r.type), ['disk'], key)
  }
})

t.run()
