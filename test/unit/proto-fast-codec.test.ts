// The compiled codec (src/lib/proto/fast-codec.ts) against proto-loader's reflection codec: random
// messages of every type of mooncake.proto, both ways, must give identical objects. A .proto
// change the compiled codec does not handle fails here, not in production.
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import protobuf from 'protobufjs'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {codecModuleSource, compileCodecs, instantiateCodecs, loadProtoRoot} from '../../src/lib/proto/fast-codec.js'
import {
  fastServiceDefinition,
  loadMooncakeProto,
  MASTER_SERVICE,
  MOONCAKE_PROTO_PATH,
  protoLoaderOptions,
  readCodecModule,
  sha256,
} from '../../src/lib/proto/loader.js'
import {xorshift} from '../helpers/random.js'

const root = loadProtoRoot(MOONCAKE_PROTO_PATH)
const codecs = compileCodecs(root)
const options = protoLoaderOptions()

// What proto-loader's createSerializer / createDeserializer do, for any message type.
const reflectionEncode = (type: protobuf.Type, obj: object) => Buffer.from(type.encode(type.fromObject(obj)).finish())
const reflectionDecode = (type: protobuf.Type, buf: Buffer) => type.toObject(type.decode(buf), options)

// Deterministic, so a failure reproduces.
const {rnd, int, pick} = xorshift(0x2545f491)

const STRINGS = ['', 'a', 'key/1/2', 'ключ', '鍵-🔑', 'x'.repeat(200), 'é'.repeat(70), '\u0000', 'host:1234']
function randomString(): string {
  if (rnd() < 0.5) return pick(STRINGS)
  let s = ''
  const n = int(60)
  for (let i = 0; i < n; i++) s += String.fromCodePoint(rnd() < 0.8 ? 32 + int(95) : rnd() < 0.5 ? 0x80 + int(0x700) : 0x1f600 + int(50))
  return s
}

function randomScalar(f: protobuf.Field): unknown {
  if (f.resolvedType instanceof protobuf.Enum) {
    const names = Object.keys(f.resolvedType.values)
    return rnd() < 0.8 ? pick(names) : f.resolvedType.values[pick(names)]
  }
  switch (f.type) {
    case 'string':
      return randomString()
    case 'bytes':
      return Buffer.from(Array.from({length: int(3) === 0 ? 0 : int(40)}, () => int(256)))
    case 'bool':
      return rnd() < 0.5
    case 'uint32':
      return pick([0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 - 1, int(2 ** 32)])
    case 'int32':
    case 'sint32':
      return pick([0, 1, -1, 63, -64, 2 ** 31 - 1, -(2 ** 31), int(2 ** 32) - 2 ** 31])
    case 'uint64':
      return pick([0, 1, 127, 128, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 7, Number.MAX_SAFE_INTEGER, int(2 ** 53)])
    case 'double':
      return pick([0, -0.5, 1.5, 1e300, -3.25, rnd()])
  }
  throw new Error(`no generator for ${f.type}`)
}

function randomMessage(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const oneofChoice = new Map<string, string | undefined>()
  for (const oneof of type.oneofsArray) oneofChoice.set(oneof.name, rnd() < 0.7 ? pick(oneof.oneof) : undefined)
  for (const f of type.fieldsArray) {
    if (f.partOf && oneofChoice.get(f.partOf.name) !== f.name) continue
    if (!f.partOf && rnd() < 0.25) continue
    const one = () => (f.resolvedType instanceof protobuf.Type ? (depth > 3 ? {} : randomMessage(f.resolvedType, depth + 1)) : randomScalar(f))
    out[f.name] = f.repeated ? Array.from({length: int(4)}, one) : one()
  }
  return out
}

function allTypes(ns: protobuf.NamespaceBase, out: protobuf.Type[] = []): protobuf.Type[] {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) out.push(nested)
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) allTypes(nested, out)
  }
  return out
}
const types = allTypes(root)

test('every message type of mooncake.proto has a compiled codec', () => {
  assert.ok(types.length > 40)
  for (const t of types) assert.ok(codecs.has(t.fullName.slice(1)), t.fullName)
})

test('random messages: compiled decode = proto-loader decode, and proto-loader reads what the compiled encoder writes', () => {
  for (const type of types) {
    const codec = codecs.get(type.fullName.slice(1))!
    for (let i = 0; i < 150; i++) {
      const msg = randomMessage(type)
      const wire = reflectionEncode(type, msg)
      const expected = reflectionDecode(type, wire)
      assert.equal(codec.decode(wire), expected, `${type.name}: decode of ${JSON.stringify(msg)}`)
      const ours = codec.encode(msg)
      assert.equal(reflectionDecode(type, ours), expected, `${type.name}: encode of ${JSON.stringify(msg)}`)
      assert.equal(codec.decode(ours), expected, `${type.name}: own round trip`)
      // What the decoders produce is also valid encoder input (what a proxy would do).
      assert.equal(reflectionDecode(type, codec.encode(expected)), expected, `${type.name}: re-encode`)
    }
  }
})

test('empty, default-only and unknown-field messages', () => {
  for (const type of types) {
    const codec = codecs.get(type.fullName.slice(1))!
    assert.equal(codec.decode(Buffer.alloc(0)), reflectionDecode(type, Buffer.alloc(0)), type.name)
    assert.equal(codec.encode({}).length, 0, type.name)
    // Field 1000 (unknown) of every wire type is skipped.
    const unknown = Buffer.from([0xc0, 0x3e, 0x05, 0xc1, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8, 0xc2, 0x3e, 0x02, 0x61, 0x62, 0xc5, 0x3e, 1, 2, 3, 4])
    assert.equal(codec.decode(unknown), reflectionDecode(type, unknown), `${type.name}: unknown fields`)
  }
})

test('truncated and garbage input is refused, as by proto-loader', () => {
  const type = root.lookupType('mooncake.v1.BatchPutStartRequest')
  const codec = codecs.get('mooncake.v1.BatchPutStartRequest')!
  const wire = reflectionEncode(type, randomMessage(type))
  for (let cut = 1; cut < wire.length; cut++) {
    const part = wire.subarray(0, cut)
    let theirs = false
    let ours = false
    try {
      reflectionDecode(type, part)
    } catch {
      theirs = true
    }
    try {
      codec.decode(part)
    } catch {
      ours = true
    }
    assert.is(ours, theirs, `cut at ${cut} of ${wire.length}`)
  }
  assert.throws(() => codec.decode(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])))
  assert.throws(() => codec.decode(Buffer.from([0x0f])))
})

test('the Master service definition uses the compiled codec, and agrees with proto-loader per rpc', () => {
  const proto = loadMooncakeProto()
  for (const [name, method] of Object.entries(proto.master)) {
    const reflection = proto.reflectionMaster[name as keyof typeof proto.reflectionMaster]
    if (process.env['MOONCAKE_PROTO_CODEC'] !== 'reflection') assert.is.not(method.requestSerialize, reflection.requestSerialize, name)
    const types = reflection as unknown as {requestType: {type: {name: string}}; responseType: {type: {name: string}}}
    const reqType = root.lookupType(`mooncake.v1.${types.requestType.type.name}`)
    const resType = root.lookupType(`mooncake.v1.${types.responseType.type.name}`)
    for (let i = 0; i < 20; i++) {
      const req = randomMessage(reqType)
      const res = randomMessage(resType)
      const serializeReq = method.requestSerialize as (m: object) => Buffer
      const serializeRes = method.responseSerialize as (m: object) => Buffer
      const reflectionSerializeReq = reflection.requestSerialize as (m: object) => Buffer
      const reflectionSerializeRes = reflection.responseSerialize as (m: object) => Buffer
      assert.equal(reflection.requestDeserialize(serializeReq(req)), method.requestDeserialize(reflectionSerializeReq(req)), `${name} request`)
      assert.equal(reflection.responseDeserialize(serializeRes(res)), method.responseDeserialize(reflectionSerializeRes(res)), `${name} response`)
    }
  }
})

test('the Master definition has the path, streaming flags and name of proto-loader\'s, per rpc', () => {
  const proto = loadMooncakeProto()
  assert.equal(Object.keys(proto.master), Object.keys(proto.reflectionMaster))
  for (const [name, method] of Object.entries(proto.master)) {
    const reflection = proto.reflectionMaster[name as keyof typeof proto.reflectionMaster]
    for (const k of ['path', 'requestStream', 'responseStream', 'originalName'] as const) assert.is(method[k], reflection[k], `${name}.${k}`)
  }
})

test('the prebuilt codec module (scripts/build-proto.mjs) loads without protobufjs and agrees with proto-loader', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mooncake-codec-'))
  try {
    const protoFile = path.join(dir, 'mooncake.proto')
    const codecFile = path.join(dir, 'mooncake.codec.cjs')
    copyFileSync(MOONCAKE_PROTO_PATH, protoFile)
    writeFileSync(codecFile, codecModuleSource(root, [MASTER_SERVICE], sha256(readFileSync(protoFile))))
    const mod = readCodecModule(codecFile, protoFile)
    assert.ok(mod, 'a module generated from this .proto is used')
    const proto = loadMooncakeProto()
    const master = fastServiceDefinition(mod.methods[MASTER_SERVICE]!, instantiateCodecs(mod))
    assert.equal(Object.keys(master), Object.keys(proto.reflectionMaster))
    for (const [name, method] of Object.entries(master)) {
      const reflection = proto.reflectionMaster[name as keyof typeof proto.reflectionMaster]
      const types = reflection as unknown as {requestType: {type: {name: string}}; responseType: {type: {name: string}}}
      const reqType = root.lookupType(`mooncake.v1.${types.requestType.type.name}`)
      const resType = root.lookupType(`mooncake.v1.${types.responseType.type.name}`)
      for (const k of ['path', 'requestStream', 'responseStream', 'originalName'] as const) assert.is(method[k], reflection[k], `${name}.${k}`)
      for (let i = 0; i < 10; i++) {
        const req = randomMessage(reqType)
        const res = randomMessage(resType)
        assert.equal(reflection.requestDeserialize(method.requestSerialize(req)), method.requestDeserialize(reflection.requestSerialize(req as never) as Buffer), `${name} request`)
        assert.equal(reflection.responseDeserialize(method.responseSerialize(res)), method.responseDeserialize(reflection.responseSerialize(res as never) as Buffer), `${name} response`)
      }
    }
    // A module generated from another .proto is ignored (the loader then parses the .proto).
    writeFileSync(protoFile, readFileSync(protoFile, 'utf8') + '\n// edited\n')
    assert.is(readCodecModule(codecFile, protoFile), undefined)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test.run()
