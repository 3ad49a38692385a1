// The hand-written batch put wire paths (src/lib/master/grpc-batch-wire.ts) against the generic
// ones (compiled codec + grpc-codec.ts conversions + strict validation): field numbers from the
// .proto, and random messages both ways on both sides, including garbage and invalid fields.
import protobuf from 'protobufjs'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import type {GetReplicaListResult, ItemResult, PutCommitRequest, PutEndRequest, PutStartRequest, PutStartResult, ReplicaDescriptor} from '../../src/lib/master/api.js'
import {ErrorCode, type ErrorCodeName, MooncakeError} from '../../src/lib/errors.js'
import {
  decodeBatchPutCommitRequest,
  decodeBatchPutEndRequest,
  decodeBatchPutStartRequest,
  decodeBatchGetReplicaListResults,
  decodeBatchPutStartResults,
  decodeBatchVoidResults,
  decodeReplicaListResponse,
  DecodedBatch,
  encodeBatchPutCommitRequest,
  encodeBatchPutEndRequest,
  encodeBatchPutStartRequest,
  encodeBatchPutStartResults,
  encodeBatchVoidResults,
  NotPlain,
  WIRE,
} from '../../src/lib/master/grpc-batch-wire.js'
import * as codec from '../../src/lib/master/grpc-codec.js'
import {batch, malformedReason, strictDeserializer} from '../../src/lib/master/grpc-validate.js'
import {compileCodecs, loadProtoRoot} from '../../src/lib/proto/fast-codec.js'
import {MOONCAKE_PROTO_PATH} from '../../src/lib/proto/loader.js'
import {xorshift} from '../helpers/random.js'

const root = loadProtoRoot(MOONCAKE_PROTO_PATH)
const codecs = compileCodecs(root)
const c = (name: string) => codecs.get(`mooncake.v1.${name}`)!

const {rnd, int, pick} = xorshift(0x1234567)
const maybe = (p = 0.5) => rnd() < p

const STRINGS = ['', 'a', 'key/1/2', 'ключ', '鍵-🔑', 'x'.repeat(200), 'é'.repeat(70), 'host:1234', 'y'.repeat(5000)]
const str = () => pick(STRINGS)
const U64 = [0, 1, 127, 128, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 7, Number.MAX_SAFE_INTEGER, 2 ** 60, 4096]
const CODES = Object.keys(ErrorCode) as ErrorCodeName[]

test('field numbers and enum values are those of mooncake.proto', () => {
  for (const [name, fields] of Object.entries(WIRE)) {
    const type = root.lookup(`mooncake.v1.${name}`)
    if (type instanceof protobuf.Enum) {
      for (const [value, n] of Object.entries(fields)) assert.is(type.values[value], n, `${name}.${value}`)
      continue
    }
    assert.ok(type instanceof protobuf.Type, name)
    for (const [field, n] of Object.entries(fields)) assert.is((type as protobuf.Type).fields[field]?.id, n, `${name}.${field}`)
  }
})

// --- master side -------------------------------------------------------------------------------------

/** What the handler did before grpc-batch-wire.ts: strict generic decode, then batch + decode*Request. */
function genericMaster<T>(rpc: string, buf: Buffer, decodeItem: (r: never, single: boolean) => T): {items: T[]} | {reason: string} {
  const msg = strictDeserializer(c(rpc).decode)(buf) as {items: unknown[]}
  const reason = malformedReason(msg)
  if (reason !== undefined) return {reason}
  try {
    return {items: batch<never>(msg.items, 'items').map((r) => decodeItem(r, false))}
  } catch (err) {
    return {reason: (err as MooncakeError).message}
  }
}

function fastMaster<T>(out: DecodedBatch<T> | object): {items: T[]} | {reason: string} {
  return out instanceof DecodedBatch ? {items: out.items} : {reason: malformedReason(out)!}
}

function randomWirePutStart(): Record<string, unknown> {
  const m: Record<string, unknown> = {clientId: str(), requestId: str(), key: str(), size: pick(U64)}
  if (maybe(0.3)) {
    const cfg: Record<string, unknown> = {withSoftPin: maybe(), preferredSegments: Array.from({length: int(3)}, str), preferredSegment: str(), preferAllocInSameNode: maybe()}
    if (maybe()) cfg['replicaNum'] = pick([0, 1, 3, 2 ** 32 - 1])
    m['config'] = cfg
  }
  if (maybe(0.3)) m['hostId'] = str()
  return m
}

function randomWirePutEnd(): Record<string, unknown> {
  const m: Record<string, unknown> = {clientId: str(), key: str()}
  if (maybe()) m['checksum'] = pick([0, 1, 2 ** 32 - 1, 12345])
  if (maybe()) m['target'] = pick([0, 1, 2, 3, 4, 17, -1, 'REPLICA_TARGET_DISK'])
  return m
}

function randomWirePutCommit(): Record<string, unknown> {
  const m: Record<string, unknown> = {clientId: str(), reservationId: pick(U64), key: str(), offset: pick(U64), size: pick(U64)}
  if (maybe()) m['checksum'] = pick([0, 1, 2 ** 32 - 1, 12345])
  return m
}

test('master: BatchPutCommit requests decode and validate as the generic path (truncated ones too)', () => {
  for (let i = 0; i < 400; i++) {
    const commits = {items: Array.from({length: int(6)}, randomWirePutCommit)}
    const buf = Buffer.from(c('BatchPutCommitRequest').encode(commits))
    assert.equal(fastMaster(decodeBatchPutCommitRequest(buf)), genericMaster('BatchPutCommitRequest', buf, codec.decodePutCommitRequest), JSON.stringify(commits))
    if (buf.length > 1) {
      const cut = buf.subarray(0, int(buf.length))
      assert.equal(fastMaster(decodeBatchPutCommitRequest(cut)), genericMaster('BatchPutCommitRequest', cut, codec.decodePutCommitRequest))
    }
  }
})

test('client: BatchPutCommit requests are the bytes the generic encoder writes; odd values are left to it', () => {
  for (let i = 0; i < 400; i++) {
    const commits = Array.from({length: int(6)}, (): PutCommitRequest => {
      const r: PutCommitRequest = {clientId: str(), reservationId: pick(U64.filter((v) => v <= Number.MAX_SAFE_INTEGER)), key: str(), offset: pick([0, 8, 4096, 2 ** 40]), size: pick([1, 100, 2 ** 20])}
      if (maybe()) r.checksum = pick([0, 1, 2 ** 32 - 1])
      return r
    })
    assert.equal(encodeBatchPutCommitRequest(commits), c('BatchPutCommitRequest').encode({items: commits.map(codec.encodePutCommitRequest)}), JSON.stringify(commits))
  }
  for (const offset of [-1, 1.5, '12', 2 ** 60]) {
    assert.throws(() => encodeBatchPutCommitRequest([{clientId: 'c', reservationId: 1, key: 'k', offset: offset as number, size: 1}]), (e: unknown) => e instanceof NotPlain)
  }
})

test('master: BatchPutStart / BatchPutEnd requests decode and validate as the generic path', () => {
  for (let i = 0; i < 400; i++) {
    const starts = {items: Array.from({length: int(6)}, randomWirePutStart)}
    const buf = c('BatchPutStartRequest').encode(starts)
    assert.equal(fastMaster(decodeBatchPutStartRequest(buf)), genericMaster('BatchPutStartRequest', buf, codec.decodePutStartRequest), JSON.stringify(starts))
    const ends = {items: Array.from({length: int(6)}, randomWirePutEnd)}
    const buf2 = c('BatchPutEndRequest').encode(ends)
    assert.equal(fastMaster(decodeBatchPutEndRequest(buf2)), genericMaster('BatchPutEndRequest', buf2, codec.decodePutEndRequest), JSON.stringify(ends))
  }
})

test('master: truncated, corrupted and invalid UTF-8 requests are refused as by the generic path', () => {
  for (let i = 0; i < 300; i++) {
    const buf = c('BatchPutStartRequest').encode({items: Array.from({length: 1 + int(3)}, randomWirePutStart)})
    const bad = Buffer.from(buf)
    if (maybe()) bad[int(bad.length)] = int(256)
    else if (maybe()) bad[int(bad.length)] = 0xff // often inside a string: invalid UTF-8
    const cut = maybe(0.3) ? bad.subarray(0, int(bad.length)) : bad
    assert.equal(fastMaster(decodeBatchPutStartRequest(cut)), genericMaster('BatchPutStartRequest', cut, codec.decodePutStartRequest))
    const buf2 = Buffer.from(c('BatchPutEndRequest').encode({items: Array.from({length: 1 + int(3)}, randomWirePutEnd)}))
    buf2[int(buf2.length)] = int(256)
    assert.equal(fastMaster(decodeBatchPutEndRequest(buf2)), genericMaster('BatchPutEndRequest', buf2, codec.decodePutEndRequest))
  }
  const refused = decodeBatchPutStartRequest(c('BatchPutStartRequest').encode({items: [{clientId: 'x'.repeat(5000), key: 'k', size: 1}]}))
  assert.match(malformedReason(refused)!, /clientId is longer than 4096 bytes/)
})

function randomReplica(): ReplicaDescriptor {
  const r: ReplicaDescriptor = {id: pick(U64.filter((v) => v <= Number.MAX_SAFE_INTEGER)), type: maybe(0.8) ? 'memory' : 'disk', status: pick(['PROCESSING', 'COMPLETE', 'REMOVED', 'FAILED'] as const)}
  if (r.type === 'memory') {
    r.memory = {segment: pick(['seg-a', 'seg-b', '']), endpoints: pick([['127.0.0.1:1'], ['h:1', 'h:2'], []]), hostId: pick(['h', '']), offset: pick(U64.slice(0, 8)), length: pick([0, 4096, 2 ** 40])}
    if (maybe(0.3)) r.memory.grant = Uint8Array.from({length: int(40)}, () => int(256))
  } else r.disk = {path: str(), size: pick([0, 4096])}
  return r
}

function randomResults(): ItemResult<PutStartResult>[] {
  return Array.from({length: int(8)}, () =>
    maybe(0.8)
      ? {ok: true as const, value: {replicas: Array.from({length: int(3)}, randomReplica), version: pick([0, 1, 2 ** 40]), requestedReplicas: pick([0, 1, 3])}}
      : {ok: false as const, code: pick(CODES), message: str()},
  )
}

const voidResults = (): ItemResult<void>[] =>
  Array.from({length: int(8)}, () => (maybe(0.7) ? {ok: true as const, value: undefined} : {ok: false as const, code: pick(CODES), message: str()}))

test('master: answers are the bytes the generic encoders write (the segment prefix cache included)', () => {
  for (let i = 0; i < 400; i++) {
    const results = randomResults()
    const generic = c('BatchPutStartResponse').encode(codec.encodeItems(results, codec.encodePutStartResult))
    assert.equal(encodeBatchPutStartResults(results), generic)
    const voids = voidResults()
    assert.equal(encodeBatchVoidResults(voids), c('BatchVoidResponse').encode(codec.encodeVoidItems(voids)))
  }
  // A segment remounted with other endpoints is not answered from the cache.
  const one = (endpoints: string[]): ItemResult<PutStartResult>[] => [
    {ok: true, value: {replicas: [{id: 1, type: 'memory', status: 'PROCESSING', memory: {segment: 's', endpoints, hostId: 'h', offset: 0, length: 1}}], version: 1, requestedReplicas: 1}},
  ]
  for (const eps of [['a:1'], ['a:1'], ['b:2'], ['b:2', 'c:3']]) {
    assert.equal(decodeBatchPutStartResults(encodeBatchPutStartResults(one(eps))), one(eps))
  }
})

// --- client side -------------------------------------------------------------------------------------

function randomPutStart(): PutStartRequest {
  const r: PutStartRequest = {clientId: str(), requestId: str(), key: str(), size: pick(U64.filter((v) => v <= Number.MAX_SAFE_INTEGER))}
  if (maybe(0.3)) r.config = {withSoftPin: maybe(), preferredSegments: maybe() ? [str()] : undefined, preferredSegment: maybe() ? str() : undefined, preferAllocInSameNode: maybe(), replicaNum: maybe() ? pick([1, 2]) : undefined}
  if (maybe(0.3)) r.hostId = str()
  return r
}

function randomPutEnd(): PutEndRequest {
  const r: PutEndRequest = {clientId: str(), key: str()}
  if (maybe()) r.checksum = pick([0, 1, 2 ** 32 - 1])
  if (maybe()) r.target = pick(['all', 'memory', 'disk'] as const)
  return r
}

test('client: requests are the bytes the generic encoders write; odd values are left to them', () => {
  for (let i = 0; i < 400; i++) {
    const starts = Array.from({length: int(6)}, randomPutStart)
    assert.equal(encodeBatchPutStartRequest(starts), c('BatchPutStartRequest').encode({items: starts.map(codec.encodePutStartRequest)}), JSON.stringify(starts))
    const ends = Array.from({length: int(6)}, randomPutEnd)
    assert.equal(encodeBatchPutEndRequest(ends), c('BatchPutEndRequest').encode({items: ends.map(codec.encodePutEndRequest)}))
  }
  for (const size of [-1, 1.5, '12', 2 ** 60]) {
    assert.throws(() => encodeBatchPutStartRequest([{clientId: 'c', requestId: 'r', key: 'k', size: size as number}]), (e: unknown) => e instanceof NotPlain)
  }
})

test('client: answers decode as the generic path (unknown enum values, empty items, both locations)', () => {
  for (let i = 0; i < 400; i++) {
    const buf = c('BatchPutStartResponse').encode(codec.encodeItems(randomResults(), codec.encodePutStartResult))
    const generic = (c('BatchPutStartResponse').decode(buf) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodePutStartResult))
    assert.equal(decodeBatchPutStartResults(buf), generic)
    const vbuf = c('BatchVoidResponse').encode(codec.encodeVoidItems(voidResults()))
    assert.equal(decodeBatchVoidResults(vbuf), codec.decodeVoidItems(c('BatchVoidResponse').decode(vbuf) as never))
  }
  const odd = c('BatchPutStartResponse').encode({
    items: [
      {},
      {value: {replicas: [{id: 3, type: 7, status: 9, memory: {segment: 's'}, disk: {path: 'p'}}]}},
      {error: {code: 'NO_SUCH_CODE', message: 'm'}},
    ],
  })
  const generic = (c('BatchPutStartResponse').decode(odd) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodePutStartResult))
  assert.equal(decodeBatchPutStartResults(odd), generic)
  assert.is((generic[0] as {code: string}).code, 'INTERNAL_ERROR')
})

function randomReplicaList(): GetReplicaListResult {
  const r: GetReplicaListResult = {
    replicas: Array.from({length: int(3)}, randomReplica),
    size: pick(U64.filter((v) => v <= Number.MAX_SAFE_INTEGER)),
    version: pick([0, 1, 2 ** 40]),
    leaseTtlMs: pick([0, 5000, 2 ** 33]),
    leaseExpiresAt: pick([0, Date.now(), Number.MAX_SAFE_INTEGER]),
  }
  if (maybe(0.7)) r.checksum = pick([0, 1, 0x80000000, 2 ** 32 - 1])
  return r
}

test('client: replica lists (GetReplicaList, BatchGetReplicaList) decode as the generic path', () => {
  for (let i = 0; i < 400; i++) {
    const lists = Array.from({length: int(8)}, (): ItemResult<GetReplicaListResult> => (maybe(0.8) ? {ok: true, value: randomReplicaList()} : {ok: false, code: pick(CODES), message: str()}))
    const buf = c('BatchGetReplicaListResponse').encode(codec.encodeItems(lists, codec.encodeReplicaList))
    const generic = (c('BatchGetReplicaListResponse').decode(buf) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodeReplicaList))
    assert.equal(decodeBatchGetReplicaListResults(buf), generic)
    const one = randomReplicaList()
    const single = c('GetReplicaListResponse').encode(codec.encodeReplicaList(one))
    assert.equal(decodeReplicaListResponse(single), codec.decodeReplicaList(c('GetReplicaListResponse').decode(single) as never))
  }
  // Unknown fields, an empty item, an unknown code, a checksum of 0 that is present.
  const odd = c('BatchGetReplicaListResponse').encode({items: [{}, {value: {replicas: [{id: 1, type: 9, status: 9}], checksum: 0}}, {error: {code: 'NOPE', message: 'm'}}]})
  const generic = (c('BatchGetReplicaListResponse').decode(odd) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodeReplicaList))
  assert.equal(decodeBatchGetReplicaListResults(odd), generic)
  assert.is((generic[1] as {value: GetReplicaListResult}).value.checksum, 0)
  assert.throws(() => decodeBatchGetReplicaListResults(odd.subarray(0, odd.length - 2)))
})

test('client: replicas on one segment share its decoded strings, never a later field of another message', () => {
  const varint = (n: number) => {
    const out: number[] = []
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128)
    out.push(n)
    return Buffer.from(out)
  }
  const ld = (field: number, body: Buffer) => Buffer.concat([varint((field << 3) | 2), varint(body.length), body])
  const mem = (m: object) => c('MemoryLocation').encode(m)
  // Concatenated messages merge: the repeated field appends (a late `endpoints` after the prefix).
  const memories = [
    mem({segment: 's', endpoints: ['a'], hostId: 'h', offset: 5}),
    Buffer.concat([mem({segment: 's', endpoints: ['a'], hostId: 'h', offset: 6}), mem({endpoints: ['b']})]),
    mem({segment: 's', endpoints: ['a'], hostId: 'h', offset: 7}),
    Buffer.concat([mem({segment: 's', endpoints: ['a'], hostId: 'h', offset: 8}), mem({segment: 't'})]),
    mem({segment: 's', endpoints: ['a'], hostId: 'h'}),
  ]
  const decoded: ItemResult<PutStartResult>[] = []
  for (const m of memories) {
    const buf = ld(1, ld(1, ld(1, Buffer.concat([Buffer.from([0x10, 1, 0x18, 1]), ld(4, m)]))))
    const generic = (c('BatchPutStartResponse').decode(buf) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodePutStartResult))
    const ours = decodeBatchPutStartResults(buf)
    assert.equal(ours, generic)
    decoded.push(ours[0]!)
  }
  const eps = decoded.map((d) => (d.ok ? d.value.replicas[0]!.memory!.endpoints : []))
  assert.equal(eps, [['a'], ['a', 'b'], ['a'], ['a'], ['a']])
  assert.is(eps[2], eps[0], 'the same segment: one array')
})

test('client: a segment prefix whose field 1, 2 or 3 is not length-delimited decodes as the generic path and is not remembered', () => {
  const ld = (field: number, body: Buffer) => Buffer.concat([Buffer.from([(field << 3) | 2, body.length]), body])
  // Fields 1-3 as the master writes them, except that field `n` (if any) gets wire type `wt`:
  // both decoders still read it as length-delimited (by field number), hence the same values.
  const prefix = (n = 0, wt = 2) =>
    Buffer.concat(
      [ld(1, Buffer.from('s')), ld(2, Buffer.from('a:1')), ld(3, Buffer.from('h'))].map((f, i) => (i + 1 === n ? Buffer.concat([Buffer.from([(n << 3) | wt]), f.subarray(1)]) : f)),
    )
  const answer = (memory: Buffer) => ld(1, ld(1, ld(1, Buffer.concat([Buffer.from([0x10, 1, 0x18, 1]), ld(4, Buffer.concat([memory, Buffer.from([0x20, 9])]))]))))
  const decode = (buf: Buffer) => {
    const generic = (c('BatchPutStartResponse').decode(buf) as {items: unknown[]}).items.map((item) => codec.decodeItem(item as never, codec.decodePutStartResult))
    const ours = decodeBatchPutStartResults(buf)
    assert.equal(ours, generic)
    const r = ours[0]!
    assert.ok(r.ok)
    return r.value.replicas[0]!.memory!
  }
  // The master's form is remembered: the next replica on the segment shares its array.
  const plain = answer(prefix())
  const first = decode(plain)
  assert.equal([first.segment, first.endpoints, first.hostId, first.offset], ['s', ['a:1'], 'h', 9])
  assert.is(decode(plain).endpoints, first.endpoints)
  for (const n of [1, 2, 3]) {
    for (const wt of [0, 1, 5]) {
      const odd = answer(prefix(n, wt))
      const a = decode(odd)
      assert.equal([a.segment, a.endpoints, a.hostId, a.offset], ['s', ['a:1'], 'h', 9], `field ${n} wire type ${wt}`)
      assert.is.not(decode(odd).endpoints, a.endpoints, `field ${n} wire type ${wt}: remembered`)
    }
  }
  // And it did not displace the remembered prefix of the master's form.
  assert.is(decode(plain).endpoints, first.endpoints)
})

test.run()
