// Cluster token: every rpc refuses unsigned, wrongly signed and replayed calls; the right token
// works; binding beyond loopback needs a token or --insecure.
import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster} from '../../src/lib/client/master-client.js'
import {CallSigner} from '../../src/lib/master/grpc-auth.js'
import {type RunningMaster, startMasterServer} from '../../src/lib/master/server.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
import {errorCodeOf, rawCall, rawFrame, rejects, segment} from './master-grpc-helpers.js'

const TOKEN = 'correct horse battery staple'
let master: RunningMaster
const def = loadMooncakeProto().master as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>
// The unary and server-stream rpcs; Pipeline carries the unary ones as frames (tested below).
const rpcs = Object.keys(def).filter((rpc) => rpc !== 'Pipeline')
const unaryRpcs = rpcs.filter((rpc) => rpc !== 'GetAllKeys')

test.before(async () => {
  master = await startMasterServer({port: 0, metricsPort: 0, token: TOKEN})
})

test.after(async () => {
  await master.close()
})

function streamCall(metadata: grpc.Metadata): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(master.address, grpc.credentials.createInsecure())
  const method = def.GetAllKeys!
  const stream = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, {}, metadata, {
    deadline: Date.now() + 5_000,
  })
  return new Promise((resolve) => {
    stream.on('data', () => {})
    stream.on('error', (err: grpc.ServiceError) => (client.close(), resolve(err)))
    stream.on('end', () => (client.close(), resolve(null)))
  })
}

async function callWith(rpc: string, metadata: grpc.Metadata): Promise<grpc.ServiceError | null> {
  if (rpc === 'GetAllKeys') return streamCall(metadata)
  return (await rawCall(master.address, rpc, Buffer.alloc(0), metadata)).err
}

function assertUnauthenticated(rpc: string, err: grpc.ServiceError | null) {
  assert.ok(err, `${rpc} answered without a valid signature`)
  assert.is(err!.code, grpc.status.UNAUTHENTICATED, `${rpc}: ${err!.details}`)
  assert.is(errorCodeOf(err), 'UNAUTHENTICATED', rpc)
}

test(`no signature: UNAUTHENTICATED on every rpc`, async () => {
  assert.is(rpcs.length, 33)
  for (const rpc of rpcs) assertUnauthenticated(rpc, await callWith(rpc, new grpc.Metadata()))
})

test('wrong token: UNAUTHENTICATED on every rpc', async () => {
  const wrong = new CallSigner('not the token')
  for (const rpc of rpcs) {
    const md = new grpc.Metadata()
    wrong.sign(md, def[rpc]!.path)
    assertUnauthenticated(rpc, await callWith(rpc, md))
  }
})

test('Pipeline: every unary rpc as a frame refuses a missing or wrong signature; a signed frame works once', async () => {
  assert.is(unaryRpcs.length, 32)
  const wrong = new CallSigner('not the token')
  for (const rpc of unaryRpcs) {
    const path = def[rpc]!.path
    for (const [why, signature] of [['unsigned', {}], ['wrong token', wrong.fields(path)]] as const) {
      const res = await rawFrame(master.address, rpc, Buffer.alloc(0), signature)
      assert.is(res.status, grpc.status.UNAUTHENTICATED, `${rpc} (${why}): ${res.message}`)
      assert.is(res.errorCode, 'UNAUTHENTICATED', `${rpc} (${why})`)
    }
  }
  // An unknown method: the signer learns only that it must sign.
  const unknown = await rawFrame(master.address, '/mooncake.v1.Master/Nope', Buffer.alloc(0))
  assert.is(unknown.errorCode, 'UNAUTHENTICATED')
  const signer = new CallSigner(TOKEN)
  const stats = signer.fields(def.Stats!.path)
  const ok = await rawFrame(master.address, 'Stats', Buffer.alloc(0), stats)
  assert.is(ok.status, grpc.status.OK, ok.message)
  const replayed = await rawFrame(master.address, 'Stats', Buffer.alloc(0), stats)
  assert.is(replayed.errorCode, 'UNAUTHENTICATED')
  assert.match(replayed.message, 'replayed')
  // A signature for one rpc does not cover another.
  const other = await rawFrame(master.address, 'RemoveAll', Buffer.alloc(0), signer.fields(def.Stats!.path))
  assert.is(other.errorCode, 'UNAUTHENTICATED')
  const named = await rawFrame(master.address, '/mooncake.v1.Master/Nope', Buffer.alloc(0), signer.fields('/mooncake.v1.Master/Nope'))
  assert.is(named.errorCode, 'NOT_SUPPORTED', named.message)
})

test('a signature for one rpc does not work for another, and works only once', async () => {
  const signer = new CallSigner(TOKEN)
  const md = new grpc.Metadata()
  signer.sign(md, def.Stats!.path)
  assertUnauthenticated('RemoveAll', await callWith('RemoveAll', md))
  const fresh = new grpc.Metadata()
  signer.sign(fresh, def.Stats!.path)
  assert.is(await callWith('Stats', fresh), null)
  assertUnauthenticated('Stats (replayed)', await callWith('Stats', fresh))
  const stale = new grpc.Metadata()
  signer.sign(stale, def.Stats!.path, Date.now() - 61_000)
  assertUnauthenticated('Stats (stale)', await callWith('Stats', stale))
})

test('the client with the right token can do everything; without it connectMaster says so', async () => {
  const err = await rejects(connectMaster({address: master.address}), 'UNAUTHENTICATED')
  assert.match(err.message, 'MOONCAKE_TOKEN')
  await rejects(connectMaster({address: master.address, token: 'nope'}), 'UNAUTHENTICATED')
  const client = await connectMaster({address: master.address, token: TOKEN})
  try {
    await client.mountSegment({clientId: 'c', segment: segment('s')})
    await client.putStart({clientId: 'c', requestId: 'r', key: 'k', size: 10})
    await client.putEnd({clientId: 'c', key: 'k'})
    assert.is(await client.existKey('k'), true)
    const keys: string[] = []
    for await (const k of client.getAllKeys()) keys.push(k)
    assert.equal(keys, ['k'])
    // Many calls in a row: every one carries a fresh nonce.
    await Promise.all(Array.from({length: 200}, () => client.stats()))
  } finally {
    client.close()
  }
})

test('binding beyond loopback needs a token or insecure', async () => {
  const err = await rejects(startMasterServer({host: '0.0.0.0', port: 0, metricsPort: 0}), 'INVALID_PARAMS')
  assert.match(err.message, '--insecure')
  assert.match(err.message, 'MOONCAKE_TOKEN')
  const open = await startMasterServer({host: '0.0.0.0', port: 0, metricsPort: -1, insecure: true})
  assert.is(open.httpAddress, undefined)
  await open.close()
  const guarded = await startMasterServer({host: '0.0.0.0', port: 0, metricsPort: 0, token: TOKEN})
  await guarded.close()
})

test('a client finding the leader through an unreachable etcd fails with UNAVAILABLE (HA itself: test/integration/ha-*.test.ts)', async () => {
  await rejects(connectMaster({address: master.address, etcd: ['127.0.0.1:1'], connectTimeoutMs: 500}), 'UNAVAILABLE')
})

test('a port in use is INVALID_PARAMS naming the flag', async () => {
  const port = Number(master.address.split(':')[1])
  const err = await rejects(startMasterServer({port, metricsPort: 0, token: TOKEN}), 'INVALID_PARAMS')
  assert.match(err.message, '--port')
  const httpPort = Number(master.httpAddress!.split(':')[1])
  const err2 = await rejects(startMasterServer({port: 0, metricsPort: httpPort}), 'INVALID_PARAMS')
  assert.match(err2.message, '--metrics-port')
})

test.run()
