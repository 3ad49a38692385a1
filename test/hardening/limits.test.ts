// Bounds: gRPC message size, key length, data-server connection cap and idle timeout,
// shared-memory file permissions, and the same-host (memcpy) path only after the token is proven.
import {statSync} from 'node:fs'
import path from 'node:path'

import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {encodeAuth, encodeReq, FuzzConn, proof, spawnFuzzOwner, type FuzzOwner} from '../../bench/fuzz/wire.js'
import {connectMaster} from '../../src/lib/client/master-client.js'
import {ErrorCode, isMooncakeError} from '../../src/lib/errors.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {mintGrant, TransferEngine} from '../../src/lib/transfer/index.js'
import {errorCodeOf, rawCall} from '../integration/master-grpc-helpers.js'

const TOKEN = 'limits-token'
const MiB = 1 << 20
let master: RunningMaster
const owners: FuzzOwner[] = []
const engines: TransferEngine[] = []

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: -1})
})

test.after(async () => {
  for (const e of engines) await e.close().catch(() => {})
  for (const o of owners) await o.kill()
  await master?.close()
})

async function owner(args: string[]): Promise<FuzzOwner> {
  const o = await spawnFuzzOwner(args)
  owners.push(o)
  return o
}

/** A protobuf message: field 1 = `data` (length-delimited). */
function field1(data: Buffer): Buffer {
  const len: number[] = []
  let n = data.length
  do {
    len.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
    n >>>= 7
  } while (n > 0)
  return Buffer.concat([Buffer.from([0x0a, ...len]), data])
}

test('gRPC: a message above 64 MiB is refused; the master keeps serving', async () => {
  const {err} = await rawCall(master.address, 'ExistKey', field1(Buffer.alloc(64 * MiB + 16, 0x61)))
  assert.ok(err)
  assert.is(err!.code, grpc.status.RESOURCE_EXHAUSTED, err!.details)
  const {err: ok} = await rawCall(master.address, 'Stats', Buffer.alloc(0))
  assert.is(ok, null)
})

test('keys: 4096 bytes accepted, 4097 bytes (or 4096 characters of multi-byte UTF-8) are INVALID_PARAMS', async () => {
  for (const [key, ok] of [
    ['k'.repeat(4096), true],
    ['k'.repeat(4097), false],
    ['é'.repeat(2049), false], // 4098 bytes in 2049 characters
    ['€'.repeat(1365), true], // 4095 bytes
  ] as const) {
    const {err} = await rawCall(master.address, 'ExistKey', field1(Buffer.from(key)))
    if (ok) assert.is(err, null, `${Buffer.byteLength(key)} bytes: ${err?.details}`)
    else assert.is(errorCodeOf(err), 'INVALID_PARAMS', `${Buffer.byteLength(key)} bytes`)
  }
  const client = await connectMaster({address: master.address})
  try {
    await client.putStart({clientId: 'c', requestId: 'r', key: 'x'.repeat(4097), size: 10})
    assert.unreachable('a 4097-byte key was accepted by PutStart')
  } catch (err) {
    assert.ok(isMooncakeError(err) && err.code === 'INVALID_PARAMS', String(err))
  } finally {
    client.close()
  }
})

test('data server: connections beyond the cap are refused with UNAVAILABLE; idle ones are closed', async () => {
  const o = await owner(['--max-connections', '3', '--idle-ms', '300'])
  const ep = o.ready.endpoints[0]!
  const held: FuzzConn[] = []
  for (let i = 0; i < 3; i++) {
    const c = await FuzzConn.open(ep)
    assert.is((await c.read(48)).readUInt32LE(0), 0x4854434d)
    held.push(c)
  }
  const extra = await FuzzConn.open(ep)
  const head = await extra.read(32)
  assert.is(head.readInt32LE(16), ErrorCode.UNAVAILABLE)
  assert.ok(await extra.waitClosed(2000))
  // Held connections that say nothing are closed after the idle time, freeing the slots.
  for (const c of held) assert.ok(await c.waitClosed(3000), 'an idle connection stayed open')
  const again = await FuzzConn.open(ep)
  assert.is((await again.read(48)).readUInt32LE(0), 0x4854434d)
  again.destroy()
})

test('shared memory: segment files are 0600 in a 0700 directory, owned by this user', async () => {
  const o = await owner(['--token', TOKEN])
  for (const file of [o.ready.seg.path, o.ready.open.path]) {
    const st = statSync(file)
    assert.is(st.mode & 0o777, 0o600, `${file} mode ${(st.mode & 0o777).toString(8)}`)
    assert.is(st.uid, process.getuid!())
    const d = statSync(path.dirname(file))
    assert.is(d.mode & 0o777, 0o700, `${path.dirname(file)} mode ${(d.mode & 0o777).toString(8)}`)
    assert.is(d.uid, process.getuid!())
  }
})

test('same-host path with a token: used only after the handshake proves it', async () => {
  const o = await owner(['--token', TOKEN])
  const ep = o.ready.endpoints[0]!
  const key = Buffer.from(o.ready.seg.grantKey, 'hex')
  const grant = mintGrant(key, {segment: 'seg', offset: 0, length: 4096, ops: ['read'], expiresAt: Date.now() + 60_000})
  // SHM_INFO (where the file is) is not answered before the handshake: sent in place of AUTH it is refused.
  const raw = await FuzzConn.open(ep)
  await raw.read(48)
  raw.write(Buffer.concat([encodeReq({op: 3, id: 1n, offset: 0n, length: 0n, name: Buffer.from('seg')}), Buffer.alloc(80)]))
  const head = await raw.read(32)
  assert.ok(head.length < 32 || head.readInt32LE(16) !== 0, 'SHM_INFO answered before authentication')
  raw.destroy()
  // A wrong proof gets nothing either.
  const bad = await FuzzConn.open(ep)
  const hello = await bad.read(48)
  const nonce = Buffer.alloc(32, 3)
  bad.write(encodeAuth(1, nonce, proof('wrong', true, hello.subarray(8, 40), nonce)))
  assert.is((await bad.read(32)).readInt32LE(16), ErrorCode.UNAUTHENTICATED)
  bad.destroy()
  // The engine: memcpy without / with a wrong token is UNAUTHENTICATED and copies nothing.
  const buf = Buffer.alloc(4096)
  for (const token of [undefined, 'wrong']) {
    const e = new TransferEngine({listenHosts: [], token})
    engines.push(e)
    await e.start()
    e.registerLocalMemory(buf)
    const [r] = await e.submit([{op: 'read', local: buf, peer: [ep], segment: 'seg', offset: 0, length: 4096, grant}], {transport: 'memcpy'})
    assert.is(r!.ok ? 'ok' : r!.code, 'UNAUTHENTICATED')
    assert.is(e.stats().memcpyBytes, 0)
  }
  const e = new TransferEngine({listenHosts: [], token: TOKEN})
  engines.push(e)
  await e.start()
  const good = Buffer.alloc(4096)
  e.registerLocalMemory(good)
  const [r] = await e.submit([{op: 'read', local: good, peer: [ep], segment: 'seg', offset: 0, length: 4096, grant}], {transport: 'memcpy'})
  assert.equal(r, {ok: true, via: 'memcpy'})
  assert.is(good[1], (131 + 7) & 255)
})

test.run()
