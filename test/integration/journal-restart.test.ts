// A lone master with --data-dir (issue 5): kill -9 and restart on the same port and directory
// loses no acknowledged object; the owner re-mounts (Ping says NEED_REMOUNT) and every object
// reads back with its bytes; removals acknowledged before the kill stay removed.
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {freePort, killAll, startFixture, waitFor} from '../helpers/processes.js'
import {health, startMaster} from './fixtures/ha-cluster.js'

const SIZE = 8192
let dataDir = ''

test.before(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-journal-it-'))
})

test.after(async () => {
  await killAll()
  rmSync(dataDir, {recursive: true, force: true})
})

test('kill -9 and restart of a lone master with --data-dir: every acknowledged object readable after the owner re-mounts', async () => {
  const port = await freePort()
  const httpPort = await freePort()
  const opts = {dataDir, clientTtlMs: 15_000}
  let master = await startMaster(opts, port, httpPort)
  const node = await startFixture('test/integration/fixtures/ha-node.ts', [JSON.stringify({master: master.address, size: 32 * 2 ** 20, pingIntervalMs: 100, timeoutMs: 10_000})], {
    env: {GRPC_NODE_VERBOSITY: 'NONE'},
  })
  const keys: string[] = []
  for (let i = 0; i < 60; i++) {
    const r = await node.command<{ok: boolean; error?: string}>({cmd: 'put', key: `j${i}`, size: SIZE, seed: i})
    assert.ok(r.ok, r.error)
    keys.push(`j${i}`)
  }
  const direct = await connectMaster({address: master.address, timeoutMs: 3_000})
  await direct.remove({key: 'j0', force: true})
  direct.close()
  master.fx.child.kill('SIGKILL')
  await master.fx.exited
  master = await startMaster(opts, port, httpPort)
  assert.is((await health(master))?.role, 'leader')
  // before the owner re-mounts, the objects exist but are not readable
  const c = await connectMaster({address: master.address, timeoutMs: 3_000})
  await waitFor(async () => (await node.command<{ok: boolean}>({cmd: 'get', key: 'j1', size: SIZE, seed: 1})).ok, 15_000, 'j1 readable after the re-mount')
  const states = await node.command<{states: string[]}>({cmd: 'state'})
  assert.ok(states.states.includes('remounting'), `owner states: ${states.states}`)
  for (let i = 1; i < keys.length; i++) {
    const r = await node.command<{ok: boolean; same: boolean; error?: string}>({cmd: 'get', key: keys[i], size: SIZE, seed: i})
    assert.ok(r.ok && r.same, `${keys[i]}: ${r.error ?? 'different bytes'}`)
  }
  assert.is(await c.existKey('j0'), false)
  // the restarted master keeps journaling: a put now survives another restart
  assert.ok((await node.command<{ok: boolean}>({cmd: 'put', key: 'after', size: SIZE, seed: 99})).ok)
  c.close()
  master.fx.child.kill('SIGKILL')
  await master.fx.exited
  master = await startMaster(opts, port, httpPort)
  await waitFor(async () => (await node.command<{ok: boolean}>({cmd: 'get', key: 'after', size: SIZE, seed: 99})).ok, 15_000, '"after" readable after the second restart')
  assert.ok((await node.command<{same: boolean}>({cmd: 'get', key: 'j59', size: SIZE, seed: 59})).same)
  await node.kill('SIGKILL')
})

test.run()
