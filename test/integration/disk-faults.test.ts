/**
 * Disk tier faults with real processes (issue 6): a quota that evicts the oldest files, a value
 * larger than the quota, a failing disk (a file where the cluster directory belongs; a full
 * 1 MiB tmpfs when we may mount one). In every case the memory put succeeds and only the disk
 * replica is revoked.
 */
import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {TOMBSTONE_FILE} from '../../src/lib/disk/tombstones.js'
import {freePort, killAll, startFixture, waitFor} from '../helpers/processes.js'
import {filesUnder} from '../helpers/files.js'

const MiB = 2 ** 20
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const MASTER = 'test/integration/fixtures/client-master.ts'
const OWNER = 'test/integration/fixtures/segment-owner.ts'

const t = suite<{parent: string; clients: MooncakeClient[]; mounts: string[]}>('disk tier faults')

/** Data and temporary files under dir (not the tombstone log of pending deletions, docs/disk-tier.md). */
function walk(dir: string): string[] {
  return filesUnder(dir).filter((p) => path.basename(p) !== TOMBSTONE_FILE)
}

async function cluster(ctx: {clients: MooncakeClient[]}, options: Record<string, unknown>): Promise<MooncakeClient> {
  const port = await freePort()
  const master = await startFixture<{address: string}>(MASTER, [JSON.stringify({port, clusterId: 'c1', ...options})])
  await startFixture(OWNER, [JSON.stringify({masterAddress: master.ready.address, size: 32 * MiB, pingIntervalMs: 200})], {timeoutMs: 30_000})
  const client = await MooncakeClient.connect({masterAddress: master.ready.address, transport: 'tcp', timeoutMs: 5000})
  ctx.clients.push(client)
  return client
}

async function diskSettled(client: MooncakeClient, key: string): Promise<string | undefined> {
  const r = await waitFor(
    async () => {
      const d = (await client.query(key)).replicas.find((x) => x.type === 'disk')
      if (d === undefined) return {path: undefined}
      return d.status === 'COMPLETE' ? {path: d.path} : undefined
    },
    20_000,
    `disk replica of ${key} settles`,
  )
  return r.path
}

t.before((ctx) => {
  ctx.parent = mkdtempSync(path.join(tmpdir(), 'mc-disk-faults-'))
  ctx.clients = []
  ctx.mounts = []
})

t.after(async (ctx) => {
  for (const c of ctx.clients) await c.close().catch(() => {})
  await killAll()
  for (const m of ctx.mounts) {
    try {
      execFileSync('umount', [m], {stdio: 'ignore'})
    } catch {}
  }
  rmSync(ctx.parent, {recursive: true, force: true})
})

t('quota: the oldest files are evicted and the master told; a value larger than the quota keeps only memory', async (ctx) => {
  const root = path.join(ctx.parent, 'quota')
  const client = await cluster(ctx, {rootFsDir: root, diskQuota: 3 * MiB + 4096})
  const values = new Map<string, Buffer>()
  for (let i = 0; i < 6; i++) {
    const key = `q/${i}`
    values.set(key, randomBytes(MiB))
    await client.put(key, values.get(key)!)
    assert.ok((await diskSettled(client, key)) !== undefined, `${key} written to disk`)
  }
  const files = walk(path.join(root, 'c1'))
  assert.is(files.length, 3, 'three files fit the quota')
  for (let i = 0; i < 6; i++) {
    const types = (await client.query(`q/${i}`)).replicas.map((r) => r.type)
    assert.equal(types, i < 3 ? ['memory'] : ['memory', 'disk'], `q/${i}`)
  }
  const big = randomBytes(4 * MiB)
  const res = await client.put('q/big', big)
  assert.is(res.replicas, 1, 'the memory put succeeds')
  assert.is(await diskSettled(client, 'q/big'), undefined, 'its disk replica is revoked')
  assert.is(sha(await client.get('q/big')), sha(big))
  assert.is(walk(path.join(root, 'c1')).length, 3, 'no file evicted for a value that cannot fit')
})

t('a failing disk (a file where the cluster directory belongs): memory put succeeds, disk replica revoked', async (ctx) => {
  const root = path.join(ctx.parent, 'broken')
  mkdirSync(root)
  writeFileSync(path.join(root, 'c1'), 'a file, not a directory')
  const client = await cluster(ctx, {rootFsDir: root})
  const value = randomBytes(300_000)
  await client.put('broken/1', value)
  assert.is(await diskSettled(client, 'broken/1'), undefined)
  assert.equal((await client.query('broken/1')).replicas.map((r) => [r.type, r.status]), [['memory', 'COMPLETE']])
  assert.is(sha(await client.get('broken/1')), sha(value))
})

t('a full disk (1 MiB tmpfs): the write fails with nothing left behind, the object stays in memory', async (ctx) => {
  const root = path.join(ctx.parent, 'tmpfs')
  mkdirSync(root)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', root], {stdio: 'ignore'})
  } catch {
    console.log('  (skipped: cannot mount a tmpfs here)')
    return
  }
  ctx.mounts.push(root)
  const client = await cluster(ctx, {rootFsDir: root})
  const small = randomBytes(100_000)
  await client.put('full/small', small)
  assert.ok((await diskSettled(client, 'full/small')) !== undefined, 'a small value fits')
  const big = randomBytes(2 * MiB)
  await client.put('full/big', big)
  assert.is(await diskSettled(client, 'full/big'), undefined, 'ENOSPC revokes the disk replica')
  assert.is(sha(await client.get('full/big')), sha(big))
  const files = walk(root)
  assert.is(files.length, 1, `only the small file is left (${files.map((f) => path.basename(f)).join(', ')})`)
})

t.run()
