// getToFile's durability: the temporary file is fsynced before it is renamed over the
// destination, the directory is fsynced after the rename, and a failed get leaves the
// destination untouched and no temporary file behind. The fsync calls are observed (the real
// sync still runs) through FileHandle.prototype.sync, with the file each one applied to read
// from /proc/self/fd.
import {createHash, randomBytes} from 'node:crypto'
import {existsSync, fstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {FakeDataPath, FakeNetwork} from '../helpers/fake-data-path.js'
import {FakeMaster} from '../helpers/fake-master.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

interface SyncCall {
  path: string
  size: number
  isDir: boolean
  destExists: boolean
}

/** Records every FileHandle.sync() while `fn` runs. */
async function observeSyncs<T>(dest: string, fn: () => Promise<T>): Promise<{result?: T; error?: unknown; syncs: SyncCall[]}> {
  const probe = await open(fileURLToPath(import.meta.url), 'r')
  const proto = Object.getPrototypeOf(probe) as {sync: (this: {fd: number}) => Promise<void>}
  await probe.close()
  const original = proto.sync
  const syncs: SyncCall[] = []
  proto.sync = function (this: {fd: number}) {
    const st = fstatSync(this.fd)
    syncs.push({path: readlinkSync(`/proc/self/fd/${this.fd}`), size: st.size, isDir: st.isDirectory(), destExists: existsSync(dest)})
    return original.call(this)
  }
  try {
    return {result: await fn(), syncs}
  } catch (error) {
    return {error, syncs}
  } finally {
    proto.sync = original
  }
}

async function setup() {
  const net = new FakeNetwork()
  const fm = new FakeMaster()
  const master = fm.api()
  const owners: SegmentOwner[] = []
  for (let i = 0; i < 2; i++) owners.push(await SegmentOwner.start({master, size: 64 * 2 ** 20, dataPath: new FakeDataPath(net), hostId: `host-${i}`, pingIntervalMs: 20}))
  const client = await MooncakeClient.connect({master, dataPath: new FakeDataPath(net), hostId: 'client-host', sliceSize: 64 * 1024, stagingBytes: 2 ** 20})
  return {
    net,
    client,
    close: async () => {
      await client.close()
      for (const o of owners) await o.close()
    },
  }
}

test('getToFile fsyncs the complete temporary file before the rename, and the directory after it', async () => {
  const {client, close} = await setup()
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-getfile-'))
  try {
    const value = randomBytes(1_234_567)
    await client.put('v', value, {replicaNum: 2})
    const dest = path.join(dir, 'out.bin')
    const {result, error, syncs} = await observeSyncs(dest, () => client.getToFile('v', dest))
    assert.is(error, undefined, String(error))
    assert.equal(result, {key: 'v', size: value.length, file: dest})
    assert.is(sha(readFileSync(dest)), sha(value))

    const fileSync = syncs.findIndex((s) => !s.isDir && path.basename(s.path).startsWith('.out.bin.mooncake-'))
    assert.ok(fileSync >= 0, `the temporary file is fsynced (syncs: ${JSON.stringify(syncs)})`)
    assert.is(syncs[fileSync].size, value.length, 'fsynced once complete')
    assert.is(syncs[fileSync].destExists, false, 'fsynced before the rename')
    const dirSync = syncs.findIndex((s) => s.isDir && s.path === dir)
    assert.ok(dirSync > fileSync, `the directory is fsynced after the file (syncs: ${JSON.stringify(syncs)})`)
    assert.is(syncs[dirSync].destExists, true, 'the directory is fsynced after the rename')
    assert.equal(readdirSync(dir), ['out.bin'], 'no temporary file left')
  } finally {
    rmSync(dir, {recursive: true, force: true})
    await close()
  }
})

test('a failed getToFile leaves the destination untouched and no temporary file', async () => {
  const {client, net, close} = await setup()
  const dir = mkdtempSync(path.join(tmpdir(), 'mc-getfile-'))
  try {
    const value = randomBytes(300_000)
    await client.put('bad', value, {replicaNum: 2})
    // Every replica corrupt: the read fails with CHECKSUM_MISMATCH after bytes were written to the temporary file.
    for (const r of (await client.master.getReplicaList('bad')).replicas) {
      const mem = net.segments.get(r.memory!.segment) as Buffer
      mem.fill(0xee, r.memory!.offset + 100_000, r.memory!.offset + 100_010)
    }
    const dest = path.join(dir, 'out.bin')
    writeFileSync(dest, 'previous content')
    const {error, syncs} = await observeSyncs(dest, () => client.getToFile('bad', dest))
    assert.instance(error, MooncakeError)
    assert.is((error as MooncakeError).code, 'CHECKSUM_MISMATCH')
    assert.is(readFileSync(dest, 'utf8'), 'previous content')
    assert.equal(readdirSync(dir), ['out.bin'], 'the temporary file is removed')
    assert.not.ok(syncs.some((s) => s.isDir && s.path === dir), 'nothing renamed, nothing to make durable')

    const missing = path.join(dir, 'missing.bin')
    await client.getToFile('no-such-key', missing).then(
      () => assert.unreachable('expected OBJECT_NOT_FOUND'),
      (err: MooncakeError) => assert.is(err.code, 'OBJECT_NOT_FOUND'),
    )
    assert.not.ok(existsSync(missing))
    assert.equal(readdirSync(dir), ['out.bin'])
  } finally {
    rmSync(dir, {recursive: true, force: true})
    await close()
  }
})

test.run()
