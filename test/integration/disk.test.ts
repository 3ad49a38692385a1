/**
 * Disk tier with real processes (issue 6): a master with --root-fs-dir, a segment owner that
 * writes the disk replicas, a client that falls back to FILE_READ. Eviction, a dead owner, a
 * master restart, a corrupted file, odd keys and remove.
 */
import {createHash, randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {freePort, killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'
import {rejects} from '../helpers/assert-code.js'
import {filesUnder} from '../helpers/files.js'

const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const MASTER = 'test/integration/fixtures/client-master.ts'
const OWNER = 'test/integration/fixtures/segment-owner.ts'

interface Ctx {
  parent: string
  root: string
  port: number
  masterOptions: string
  master: Fixture<{address: string}>
  address: string
  owner: Fixture<{name: string}>
  client: MooncakeClient
  values: Map<string, Buffer>
}

const t = suite<Ctx>('disk tier')



/** Waits until the disk replica of `key` is no longer being written; returns its path (undefined: revoked). */
async function diskSettled(client: MooncakeClient, key: string): Promise<string | undefined> {
  return waitFor(
    async () => {
      const info = await client.query(key)
      const d = info.replicas.find((r) => r.type === 'disk')
      if (d === undefined) return {path: undefined}
      return d.status === 'COMPLETE' ? {path: d.path} : undefined
    },
    20_000,
    `disk replica of ${key.slice(0, 40)} settles`,
  ).then((r) => r.path)
}

async function startOwner(address: string): Promise<Fixture<{name: string}>> {
  return startFixture(OWNER, [JSON.stringify({masterAddress: address, size: 16 * MiB, pingIntervalMs: 200})], {timeoutMs: 30_000})
}

t.before(async (ctx) => {
  ctx.parent = mkdtempSync(path.join(tmpdir(), 'mc-disk-it-'))
  ctx.root = path.join(ctx.parent, 'root')
  ctx.port = await freePort()
  ctx.masterOptions = JSON.stringify({port: ctx.port, rootFsDir: ctx.root, clusterId: 'c1', clientTtlMs: 1500, evictionHighWatermarkRatio: 0.5, leaseTtlMs: 500})
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  ctx.address = ctx.master.ready.address
  ctx.owner = await startOwner(ctx.address)
  ctx.client = await MooncakeClient.connect({masterAddress: ctx.address, transport: 'tcp', timeoutMs: 5000})
  ctx.values = new Map()
})

t.after(async (ctx) => {
  await ctx.client?.close()
  await killAll()
  if (ctx.parent) rmSync(ctx.parent, {recursive: true, force: true})
})

t('odd keys: files are named by hash under ROOT/CLUSTER/aa/bb and nothing leaves ROOT', async (ctx) => {
  const keys = ['a/b/c', '../../../../etc/evil', '..', '/abs', 'with space', 'ключ 🔑 日本', 'k'.repeat(4096), `${'é'.repeat(2000)}/x`]
  for (const key of keys) {
    const value = randomBytes(1000 + key.length)
    ctx.values.set(key, value)
    await ctx.client.put(key, value)
  }
  for (const key of keys) {
    const p = await diskSettled(ctx.client, key)
    assert.ok(p !== undefined, `disk replica of ${key.slice(0, 20)} written`)
    assert.ok(existsSync(p!))
  }
  assert.equal(readdirSync(ctx.parent), ['root'], 'nothing next to ROOT')
  assert.equal(readdirSync(ctx.root), ['c1'])
  const files = filesUnder(ctx.root)
  assert.is(files.length, keys.length)
  for (const f of files) {
    const rel = path.relative(path.join(ctx.root, 'c1'), f)
    assert.match(rel, /^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}-v\d+$/, rel)
  }
  for (const key of keys) assert.is(sha(await ctx.client.get(key)), sha(ctx.values.get(key)!))
})

t('eviction past the watermark leaves disk-only objects; get reads them from disk', async (ctx) => {
  const keys: string[] = []
  for (let i = 0; i < 14; i++) {
    const key = `evict/${i}`
    const value = randomBytes(MiB - 64 * i)
    ctx.values.set(key, value)
    keys.push(key)
    await ctx.client.put(key, value)
    await diskSettled(ctx.client, key)
  }
  const diskOnly = await waitFor(
    async () => {
      const found: string[] = []
      for (const key of keys) {
        const info = await ctx.client.query(key)
        if (info.replicas.length === 1 && info.replicas[0].type === 'disk') found.push(key)
      }
      return found.length > 0 ? found : undefined
    },
    20_000,
    'some objects evicted to disk-only',
  )
  const transferred = ctx.client.stats.transferredBytes
  for (const key of diskOnly) assert.is(sha(await ctx.client.get(key)), sha(ctx.values.get(key)!), key)
  assert.is(ctx.client.stats.transferredBytes, transferred, 'read from disk, not over the data path')
  const keysNow: string[] = []
  for await (const k of ctx.client.getAllKeys({prefix: 'evict/'})) keysNow.push(k)
  assert.is(keysNow.length, keys.length, 'every object still listed')
})

t('the only owner killed: after the client TTL every object is read from disk', async (ctx) => {
  ctx.owner.child.kill('SIGKILL')
  await ctx.owner.exited
  const key = 'a/b/c'
  await waitFor(
    async () => {
      const info = await ctx.client.query(key)
      return info.replicas.every((r) => r.type === 'disk')
    },
    15_000,
    'memory replicas dropped after the client TTL',
  )
  for (const [k, v] of ctx.values) assert.is(sha(await ctx.client.get(k)), sha(v), k.slice(0, 40))
  // getToFile and getStream go through the same FILE_READ path
  const file = path.join(ctx.parent, 'out.bin')
  await ctx.client.getToFile('evict/3', file)
  assert.is(sha(readFileSync(file)), sha(ctx.values.get('evict/3')!))
  const chunks: Buffer[] = []
  for await (const c of ctx.client.getStream('evict/5')) chunks.push(c as Buffer)
  assert.is(sha(Buffer.concat(chunks)), sha(ctx.values.get('evict/5')!))
})

t('a restarted master rebuilds the disk-only objects from the files', async (ctx) => {
  await ctx.master.kill('SIGTERM')
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  assert.is(ctx.master.ready.address, ctx.address)
  const listed: string[] = []
  await waitFor(
    async () => {
      try {
        listed.length = 0
        for await (const k of ctx.client.getAllKeys()) listed.push(k)
        return true
      } catch {
        return false
      }
    },
    15_000,
    'the client reaches the new master',
  )
  assert.equal(listed.sort(), [...ctx.values.keys()].sort())
  const info = await ctx.client.query('with space')
  assert.equal(info.replicas.map((r) => [r.type, r.status]), [['disk', 'COMPLETE']])
  assert.ok(info.replicas[0].path?.startsWith(path.join(ctx.root, 'c1') + '/'))
  assert.is(info.size, ctx.values.get('with space')!.length)
  for (const [k, v] of ctx.values) assert.is(sha(await ctx.client.get(k)), sha(v), k.slice(0, 40))
})

t('a corrupted file is CHECKSUM_MISMATCH, never wrong bytes', async (ctx) => {
  const key = 'evict/7'
  const p = (await ctx.client.query(key)).replicas[0].path!
  const bytes = readFileSync(p)
  bytes[bytes.length - 100] ^= 0x55
  writeFileSync(p, bytes)
  await rejects(ctx.client.get(key), 'CHECKSUM_MISMATCH')
  await rejects(ctx.client.getInto(key, Buffer.alloc(MiB)), 'CHECKSUM_MISMATCH')
  const key2 = 'evict/8'
  const p2 = (await ctx.client.query(key2)).replicas[0].path!
  const b2 = readFileSync(p2)
  b2[20] ^= 0x01 // header: value size
  writeFileSync(p2, b2)
  await rejects(ctx.client.get(key2), 'CHECKSUM_MISMATCH')
  assert.ok(ctx.client.stats.checksumMismatches >= 3)
})

t('remove deletes the file', async (ctx) => {
  for (const key of ['evict/0', 'k'.repeat(4096)]) {
    const p = (await ctx.client.query(key)).replicas[0].path!
    assert.ok(existsSync(p))
    await ctx.client.remove(key, {force: true})
    await waitFor(() => !existsSync(p), 10_000, 'file deleted')
    await rejects(ctx.client.get(key), 'OBJECT_NOT_FOUND')
  }
})

t.run()
