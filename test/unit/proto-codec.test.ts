// Wire guards, the codec, signed calls and the error mapping, without sockets.
import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeError} from '../../src/lib/errors.js'
import {AUTH_WINDOW_MS, CallSigner, CallVerifier} from '../../src/lib/master/grpc-auth.js'
import * as codec from '../../src/lib/master/grpc-codec.js'
import {ERROR_CODE_METADATA, fromServiceError, toServiceError} from '../../src/lib/master/grpc-errors.js'
import {key, malformedReason, strictDeserializer, u64} from '../../src/lib/master/grpc-validate.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'

const def = loadMooncakeProto().master

function throwsCode(fn: () => unknown, code: string) {
  try {
    fn()
  } catch (err) {
    assert.instance(err, MooncakeError)
    assert.is((err as MooncakeError).code, code)
    return
  }
  assert.unreachable(`expected ${code}`)
}

test('strict decoding: garbage and invalid UTF-8 are marked, U+FFFD sent as such is kept', () => {
  const decode = strictDeserializer(def.GetReplicaList.requestDeserialize)
  assert.match(malformedReason(decode(Buffer.from([0x0a, 0xff, 0xff, 0xff])))!, 'malformed request')
  // field 1 (key), length 2, bytes C3 28: an invalid two-byte sequence.
  assert.is(malformedReason(decode(Buffer.from([0x0a, 0x02, 0xc3, 0x28]))), 'a string field is not valid UTF-8')
  const fffd = def.GetReplicaList.requestSerialize({key: 'a\uFFFDb'})
  assert.equal(decode(fffd), {key: 'a\uFFFDb'})
  const ok = def.GetReplicaList.requestSerialize({key: 'ключ/🔑'})
  assert.equal(decode(ok), {key: 'ключ/🔑'})
})

test('numbers beyond 2^53 and bad keys are INVALID_PARAMS', () => {
  const wire = def.PutStart.requestSerialize({key: 'k', size: '18446744073709551615'})
  const decoded = def.PutStart.requestDeserialize(wire)
  throwsCode(() => codec.decodePutStartRequest(decoded), 'INVALID_PARAMS')
  assert.is(u64(2 ** 53 - 1, 'x'), 2 ** 53 - 1)
  throwsCode(() => u64(-1, 'x'), 'INVALID_PARAMS')
  throwsCode(() => key(''), 'INVALID_PARAMS')
  throwsCode(() => key('é'.repeat(2049)), 'INVALID_PARAMS')
  assert.is(key('é'.repeat(2048)).length, 2048)
})

test('codec: optional fields survive, absent ones stay absent', () => {
  const wire = def.PutStart.requestSerialize(
    codec.encodePutStartRequest({clientId: 'c', requestId: 'r', key: 'k', size: 5, config: {withSoftPin: true}}),
  )
  const req = codec.decodePutStartRequest(def.PutStart.requestDeserialize(wire))
  assert.equal(req, {clientId: 'c', requestId: 'r', key: 'k', size: 5, config: {withSoftPin: true, preferredSegments: [], preferAllocInSameNode: false}})
  const zero = codec.decodePutStartRequest(
    def.PutStart.requestDeserialize(def.PutStart.requestSerialize(codec.encodePutStartRequest({clientId: 'c', requestId: 'r', key: 'k', size: 5, config: {replicaNum: 0}}))),
  )
  assert.is(zero.config!.replicaNum, 0, 'an explicit 0 reaches the service, which refuses it')
  const end = codec.decodePutEndRequest(def.PutEnd.requestDeserialize(def.PutEnd.requestSerialize(codec.encodePutEndRequest({clientId: 'c', key: 'k', checksum: 0, target: 'disk'}))))
  assert.equal(end, {clientId: 'c', key: 'k', checksum: 0, target: 'disk'})
  const info = {key: 'k', size: 1, version: 2, replicas: [], leaseExpiresAt: 0, softPinExpiresAt: 99}
  const back = codec.decodeObjectInfo(def.Query.responseDeserialize(def.Query.responseSerialize(codec.encodeObjectInfo(info))))
  assert.equal(back, info)
})

test('signed calls: good, wrong token, stale, replayed', () => {
  let now = 1_000_000
  const verifier = new CallVerifier('t0ken', () => now)
  const signer = new CallSigner('t0ken')
  const md = new grpc.Metadata()
  signer.sign(md, '/mooncake.v1.Master/Stats', now)
  verifier.verify('/mooncake.v1.Master/Stats', md)
  throwsCode(() => verifier.verify('/mooncake.v1.Master/Stats', md), 'UNAUTHENTICATED')
  const other = new grpc.Metadata()
  signer.sign(other, '/mooncake.v1.Master/Stats', now)
  throwsCode(() => verifier.verify('/mooncake.v1.Master/RemoveAll', other), 'UNAUTHENTICATED')
  const wrong = new grpc.Metadata()
  new CallSigner('other').sign(wrong, '/mooncake.v1.Master/Stats', now)
  throwsCode(() => verifier.verify('/mooncake.v1.Master/Stats', wrong), 'UNAUTHENTICATED')
  const stale = new grpc.Metadata()
  signer.sign(stale, '/mooncake.v1.Master/Stats', now - AUTH_WINDOW_MS - 1)
  throwsCode(() => verifier.verify('/mooncake.v1.Master/Stats', stale), 'UNAUTHENTICATED')
  throwsCode(() => verifier.verify('/mooncake.v1.Master/Stats', new grpc.Metadata()), 'UNAUTHENTICATED')
  now += 2 * AUTH_WINDOW_MS + 1
  const fresh = new grpc.Metadata()
  signer.sign(fresh, '/mooncake.v1.Master/Stats', now)
  verifier.verify('/mooncake.v1.Master/Stats', fresh)
  assert.is(verifier.remembered, 1, 'expired nonces are forgotten')
})

test('errors: ErrorCode names cross the wire; transport failures become UNAVAILABLE', () => {
  const sent = toServiceError(new MooncakeError('OBJECT_HAS_LEASE', 'leased'))
  assert.is(sent.code, grpc.status.FAILED_PRECONDITION)
  assert.equal(sent.metadata.get(ERROR_CODE_METADATA), ['OBJECT_HAS_LEASE'])
  const ctx = {address: '10.0.0.1:50051', rpc: 'Stats', timeoutMs: 1000}
  const back = fromServiceError(sent, ctx)
  assert.is(back.code, 'OBJECT_HAS_LEASE')
  assert.is(back.message, 'leased')
  const bug = toServiceError(new TypeError('boom'))
  assert.is(bug.code, grpc.status.INTERNAL)
  assert.is(fromServiceError(bug, ctx).code, 'INTERNAL_ERROR')
  const down = Object.assign(new Error('x'), {code: grpc.status.UNAVAILABLE, details: 'No connection established', metadata: new grpc.Metadata()})
  const mapped = fromServiceError(down, ctx)
  assert.is(mapped.code, 'UNAVAILABLE')
  assert.match(mapped.message, '10.0.0.1:50051')
  assert.match(mapped.message, 'MOONCAKE_MASTER')
  const late = Object.assign(new Error('x'), {code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new grpc.Metadata()})
  assert.is(fromServiceError(late, ctx).code, 'UNAVAILABLE')
})

test.run()
