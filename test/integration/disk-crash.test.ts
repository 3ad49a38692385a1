/**
 * Disk tier, crash between a remove and the deletion of its file: the restarted master must not
 * bring the removed object back from the file it finds (docs/disk-tier.md "Remove"). Real
 * master, segment owner and client processes; the crash is a SIGKILL of a master whose deletions
 * never start (fixtures/master-crash-before-delete.ts).
 */
import {randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {TOMBSTONE_FILE} from '../../src/lib/disk/tombstones.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {freePort, killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'

const MiB = 2 ** 20

interface Ctx {
  parent: string
  root: string
  masterOptions: string
  master: Fixture<{address: string}>
  owner: Fixture<{name: string}>
  client: MooncakeClient
}

const t = suite<Ctx>('disk tier: crash before a delete')

async function diskPath(client: MooncakeClient, key: string): Promise<string> {
  return waitFor(
    async () => {
      const d = (await client.query(key)).replicas.find((r) => r.type === 'disk')
      return d?.status === 'COMPLETE' ? d.path : undefined
    },
    20_000,
    `disk replica of ${key} written`,
  ) as Promise<string>
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    assert.instance(err, MooncakeError, String(err))
    return (err as MooncakeError).code
  }
}

t.before(async (ctx) => {
  ctx.parent = mkdtempSync(path.join(tmpdir(), 'mc-disk-crash-'))
  ctx.root = path.join(ctx.parent, 'root')
  const port = await freePort()
  ctx.masterOptions = JSON.stringify({port, rootFsDir: ctx.root, clusterId: 'c1', clientTtlMs: 3000, leaseTtlMs: 200})
  ctx.master = await startFixture('test/integration/fixtures/master-crash-before-delete.ts', [ctx.masterOptions])
  const masterAddress = ctx.master.ready.address
  ctx.owner = await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress, size: 16 * MiB, pingIntervalMs: 200})], {timeoutMs: 30_000})
  ctx.client = await MooncakeClient.connect({masterAddress, transport: 'tcp', timeoutMs: 5000})
})

t.after(async (ctx) => {
  await ctx.client?.close()
  await killAll()
  if (ctx.parent) rmSync(ctx.parent, {recursive: true, force: true})
})

t('a removed object stays removed after a crash that came before its file was deleted', async (ctx) => {
  const kept = randomBytes(200_000)
  await ctx.client.put('kept', kept)
  await ctx.client.put('gone', randomBytes(300_000))
  const keptFile = await diskPath(ctx.client, 'kept')
  const goneFile = await diskPath(ctx.client, 'gone')
  const log = path.join(ctx.root, 'c1', TOMBSTONE_FILE)

  await ctx.client.remove('gone', {force: true})
  assert.is(await code(ctx.client.query('gone')), 'OBJECT_NOT_FOUND')
  // The crash window: acknowledged, the file still there.
  assert.ok(existsSync(goneFile), 'the delete has not run (the fault is in place)')
  assert.is(readFileSync(log, 'utf8'), `${path.relative(path.join(ctx.root, 'c1'), goneFile)}\n`)

  await ctx.master.kill('SIGKILL')
  ctx.master = await startFixture('test/integration/fixtures/client-master.ts', [ctx.masterOptions])
  const keys = await waitFor(
    async () => {
      try {
        const out: string[] = []
        for await (const k of ctx.client.getAllKeys()) out.push(k)
        return out
      } catch {
        return undefined
      }
    },
    15_000,
    'the client reaches the restarted master',
  )
  assert.equal(keys, ['kept'], 'the removed object was not restored')
  assert.is(await code(ctx.client.get('gone')), 'OBJECT_NOT_FOUND')
  assert.not.ok(existsSync(goneFile), 'the restart deleted the file')
  assert.ok(existsSync(keptFile))
  assert.ok((await ctx.client.get('kept')).equals(kept))
  assert.not.ok(existsSync(log), 'the log is removed once replayed')

  // In normal operation the log is removed once the deletions are done.
  await ctx.client.remove('kept', {force: true})
  await waitFor(() => !existsSync(keptFile) && !existsSync(log), 10_000, 'file deleted and log removed')
})

t.run()
