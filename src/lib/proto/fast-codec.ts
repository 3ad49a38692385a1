/**
 * A compiled protobuf codec for mooncake.proto that produces and accepts exactly the objects
 * @grpc/proto-loader does with loader-options.json (camelCase fields, longs as numbers, enums as
 * names, defaults filled in, oneof names set), in one pass and without protobufjs' intermediate
 * message instances, Writer op lists and Long objects.
 *
 * It is generated from the same .proto (protobufjs parses it; nothing is checked in), so a field
 * added to the .proto is encoded and decoded without touching this file: at build time by
 * scripts/build-proto.mjs into dist/lib/proto/mooncake.codec.cjs (what the CLI loads: no
 * protobufjs, no parsing at run time), else at load time (tests under tsx). The wire
 * format is standard proto3; test/unit/proto-fast-codec.test.ts round-trips random messages of
 * every type through this codec and proto-loader's, both ways, and requires identical results.
 *
 * Differences that do not change the decoded message: proto3 scalar fields equal to their default
 * are not written (protobufjs writes any field present in the object), and unknown fields and
 * groups are skipped the same way.
 */
import {createRequire} from 'node:module'

import type Protobuf from 'protobufjs'

// protobufjs is only needed to generate a codec (build time, tests) and for the rare 64-bit value
// given as a string or Long: loaded on first use, so the prebuilt codec runs without it.
const require = createRequire(import.meta.url)
let pbModule: typeof Protobuf | undefined
function pb(): typeof Protobuf {
  return (pbModule ??= require('protobufjs') as typeof Protobuf)
}

export interface MessageCodec<T = unknown> {
  /** Message type, e.g. `mooncake.v1.PutStartRequest`. */
  readonly name: string
  /** Serialises a proto-loader-shaped object (what a grpc-js serialize function receives). */
  encode(message: T): Buffer
  /** Parses wire bytes into the object proto-loader's deserializer would return. */
  decode(buf: Buffer): T
}

// The reader and writer the generated functions share (one module scope, so V8 sees plain
// closure variables). Strings are read with `buf.utf8Slice` so that strictDeserializer's patched
// buffers (grpc-validate.ts) keep refusing invalid UTF-8.
const RUNTIME = String.raw`
"use strict";
var rb = null, rp = 0, rl = 0;
function oob(n) { return RangeError("index out of range: " + rp + " + " + (n || 1) + " > " + rl) }
function rv32() {
  if (rp >= rl) throw oob();
  var b = rb[rp++];
  if (b < 128) return b;
  var v = b & 127, s = 7;
  for (;;) {
    if (rp >= rl) throw oob();
    b = rb[rp++];
    if (s < 32) v |= (b & 127) << s;
    if (b < 128) return v >>> 0;
    s += 7;
    if (s >= 70) throw Error("invalid varint encoding");
  }
}
var rhi = 0;
function rv64() {
  if (rp >= rl) throw oob();
  var b = rb[rp++];
  if (b < 128) return b;
  var lo = b & 127, hi = 0, s = 7;
  for (;;) {
    if (rp >= rl) throw oob();
    b = rb[rp++];
    if (s < 28) lo |= (b & 127) << s;
    else if (s === 28) { lo |= (b & 15) << 28; hi = (b & 127) >> 4 }
    else if (s < 64) hi |= (b & 127) << (s - 32);
    if (b < 128) break;
    s += 7;
    if (s >= 70) throw Error("invalid varint encoding");
  }
  rhi = hi >>> 0;
  return (lo >>> 0) + rhi * 4294967296;
}
function rlen() {
  var n = rv32();
  if (rp + n > rl) throw oob(n);
  return rp + n;
}
function rstr() {
  var e = rlen(), s = rp;
  rp = e;
  return s === e ? "" : rb.utf8Slice(s, e);
}
// One shared empty Buffer for absent and empty bytes fields (a fresh one per message costs an
// ArrayBuffer each, which the GC has to track); it has no byte anyone could overwrite.
var EMPTY_BYTES = Buffer.alloc(0);
function rbytes() {
  var e = rlen(), s = rp;
  rp = e;
  return s === e ? EMPTY_BYTES : rb.subarray(s, e);
}
function rdouble() {
  if (rp + 8 > rl) throw oob(8);
  var v = rb.readDoubleLE(rp);
  rp += 8;
  return v;
}
function rfloat() {
  if (rp + 4 > rl) throw oob(4);
  var v = rb.readFloatLE(rp);
  rp += 4;
  return v;
}
function rfixed32() {
  if (rp + 4 > rl) throw oob(4);
  var v = rb.readUInt32LE(rp);
  rp += 4;
  return v;
}
function skip(wt) {
  switch (wt) {
    case 0: rv64(); return;
    case 1: if (rp + 8 > rl) throw oob(8); rp += 8; return;
    case 2: rp = rlen(); return;
    case 3: for (;;) { var t = rv32(); if ((t & 7) === 4) return; skip(t & 7) }
    case 5: if (rp + 4 > rl) throw oob(4); rp += 4; return;
    default: throw Error("invalid wire type " + wt + " at offset " + rp);
  }
}

var wb = Buffer.allocUnsafe(65536), wp = 0;
function need(n) {
  if (wp + n <= wb.length) return;
  var nb = Buffer.allocUnsafe(Math.max(wb.length * 2, wp + n));
  wb.copy(nb, 0, 0, wp);
  wb = nb;
}
function wv32(v) {
  need(5);
  while (v > 127) { wb[wp++] = (v & 127) | 128; v >>>= 7 }
  wb[wp++] = v;
}
function wvlh(lo, hi) {
  need(10);
  while (hi !== 0) { wb[wp++] = (lo & 127) | 128; lo = ((lo >>> 7) | (hi << 25)) >>> 0; hi >>>= 7 }
  while (lo > 127) { wb[wp++] = (lo & 127) | 128; lo >>>= 7 }
  wb[wp++] = lo;
}
function wi32(v) { if (v < 0) wvlh(v >>> 0, 4294967295); else wv32(v) }
function wu64(v) {
  if (typeof v === "number" && v >= 0 && v <= 9007199254740991) {
    if (v < 4294967296) wv32(v >>> 0);
    else wvlh(v >>> 0, Math.floor(v / 4294967296) >>> 0);
    return;
  }
  var l = Long.fromValue(v);
  wvlh(l.low >>> 0, l.high >>> 0);
}
function u64nz(v) { return typeof v === "number" ? v !== 0 : !(Long.fromValue(v).isZero()) }
function wstr(s) {
  if (typeof s !== "string") s = String(s);
  var n = s.length;
  if (n < 43) {
    need(1 + 3 * n);
    var p = wp + 1, i = 0;
    for (; i < n; i++) { var c = s.charCodeAt(i); if (c >= 128) break; wb[p++] = c }
    if (i === n) { wb[wp] = n; wp = p; return }
  }
  var len = Buffer.byteLength(s);
  wv32(len);
  need(len);
  wp += wb.utf8Write(s, wp, len);
}
function wbytes(v) {
  if (typeof v === "string") v = Buffer.from(v, "base64");
  else if (!(v instanceof Uint8Array)) v = Buffer.from(v);
  wv32(v.length);
  need(v.length);
  wb.set(v, wp);
  wp += v.length;
}
function wdouble(v) { need(8); wb.writeDoubleLE(+v, wp); wp += 8 }
function wfloat(v) { need(4); wb.writeFloatLE(+v, wp); wp += 4 }
function wfixed32(v) { need(4); wb.writeUInt32LE(v >>> 0, wp); wp += 4 }
function ldStart() { need(1); return wp++ }
function ldEnd(st) {
  var len = wp - st - 1;
  if (len < 128) { wb[st] = len; return }
  var k = 1, x = len;
  while (x > 127) { x >>>= 7; k++ }
  need(k - 1);
  wb.copyWithin(st + k, st + 1, wp);
  wp += k - 1;
  var q = st;
  while (len > 127) { wb[q++] = (len & 127) | 128; len >>>= 7 }
  wb[q] = len;
}
function objectExpected(path, v) {
  if (v === null || typeof v !== "object") throw TypeError(path + ": object expected");
}
function arrayExpected(path, v) {
  if (!Array.isArray(v)) throw TypeError(path + ": array expected");
}
function encodeTop(enc, m) {
  if (Array.isArray(m)) throw Error("Failed to serialize message: expected an object, got array instead");
  wp = 0;
  enc(m == null ? {} : m);
  var out = Buffer.allocUnsafe(wp);
  wb.copy(out, 0, 0, wp);
  if (wb.length > 4194304) wb = Buffer.allocUnsafe(65536);
  return out;
}
function decodeTop(dec, buf) {
  rb = buf; rp = 0; rl = buf.length;
  try { return dec(rl) } finally { rb = null }
}
`

type Field = Protobuf.Field
const SCALAR_WIRE: Record<string, number> = {
  double: 1, float: 5, int32: 0, uint32: 0, sint32: 0, fixed32: 5, sfixed32: 5,
  int64: 0, uint64: 0, sint64: 0, fixed64: 1, sfixed64: 1, bool: 0, string: 2, bytes: 2,
}
const SUPPORTED = new Set(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'uint64', 'bool', 'string', 'bytes'])

const ident = (type: Protobuf.ReflectionObject) => type.fullName.replace(/^\./, '').replace(/\./g, '_')

function defaultValue(f: Field): string {
  if (f.repeated) return '[]'
  if (f.resolvedType instanceof pb().Enum) return JSON.stringify(f.resolvedType.valuesById[0] ?? 0)
  if (f.resolvedType instanceof pb().Type) return 'null'
  switch (f.type) {
    case 'string':
      return '""'
    case 'bool':
      return 'false'
    case 'bytes':
      return 'EMPTY_BYTES'
    default:
      return '0'
  }
}

/** Expression reading one value of a non-message field. */
function readExpr(f: Field): string {
  if (f.resolvedType instanceof pb().Enum) return `enumName(${ident(f.resolvedType)}, rv32() | 0)`
  switch (f.type) {
    case 'string':
      return 'rstr()'
    case 'bytes':
      return 'rbytes()'
    case 'bool':
      return '(rv32() !== 0)'
    case 'uint32':
    case 'fixed32':
      return f.type === 'uint32' ? 'rv32()' : 'rfixed32()'
    case 'int32':
      return '(rv32() | 0)'
    case 'sint32':
      return 'unzigzag(rv32())'
    case 'uint64':
      return 'rv64()'
    case 'double':
      return 'rdouble()'
    case 'float':
      return 'rfloat()'
  }
  throw new Error(`fast-codec: unsupported field type ${f.type}`)
}

/** Statements writing value `v` of a non-message field (tag included). */
function writeValue(f: Field, v: string, tag: number): string {
  const t = `wv32(${tag});`
  if (f.resolvedType instanceof pb().Enum) return `${t} wi32(enumValue(${ident(f.resolvedType)}, ${v}));`
  switch (f.type) {
    case 'string':
      return `${t} wstr(${v});`
    case 'bytes':
      return `${t} wbytes(${v});`
    case 'bool':
      return `${t} wv32(${v} ? 1 : 0);`
    case 'uint32':
      return `${t} wv32(${v} >>> 0);`
    case 'fixed32':
      return `${t} wfixed32(${v});`
    case 'int32':
      return `${t} wi32(${v} | 0);`
    case 'sint32':
      return `${t} wv32(((${v} << 1) ^ (${v} >> 31)) >>> 0);`
    case 'uint64':
      return `${t} wu64(${v});`
    case 'double':
      return `${t} wdouble(${v});`
    case 'float':
      return `${t} wfloat(${v});`
  }
  throw new Error(`fast-codec: unsupported field type ${f.type}`)
}

/** Condition under which a proto3 implicit-presence scalar is worth writing (not its default). */
function notDefault(f: Field, v: string): string {
  if (f.resolvedType instanceof pb().Enum) return `enumValue(${ident(f.resolvedType)}, ${v}) !== 0`
  switch (f.type) {
    case 'string':
      return `${v} !== ""`
    case 'bytes':
      return `${v}.length !== 0`
    case 'bool':
      return `!!${v}`
    case 'uint64':
      return `u64nz(${v})`
    case 'double':
    case 'float':
      return `(+${v} !== 0 || 1 / +${v} < 0)`
    default:
      return `(${v} | 0) !== 0`
  }
}

function isPackable(f: Field): boolean {
  return f.repeated && !(f.resolvedType instanceof pb().Type) && f.type !== 'string' && f.type !== 'bytes'
}

function genDecoder(type: Protobuf.Type): string {
  const id = ident(type)
  const fields = type.fieldsArray.slice().sort((a, b) => a.id - b.id)
  const init = fields.filter((f) => !f.partOf).map((f) => `${JSON.stringify(f.name)}: ${defaultValue(f)}`)
  const cases = fields.map((f) => {
    const prop = `d[${JSON.stringify(f.name)}]`
    let body: string
    if (f.resolvedType instanceof pb().Type) {
      const read = `dec_${ident(f.resolvedType)}(rlen())`
      body = f.repeated ? `${prop}.push(${read});` : `${prop} = ${read};`
    } else if (f.repeated) {
      body = isPackable(f)
        ? `if ((t & 7) === 2) { var e2 = rlen(); while (rp < e2) ${prop}.push(${readExpr(f)}); } else ${prop}.push(${readExpr(f)});`
        : `${prop}.push(${readExpr(f)});`
    } else {
      body = `${prop} = ${readExpr(f)};`
    }
    if (f.partOf) body += ` d[${JSON.stringify(f.partOf.name)}] = ${JSON.stringify(f.name)};`
    return `      case ${f.id}: ${body} break;`
  })
  return `
function dec_${id}(end) {
  var d = {${init.join(', ')}};
  while (rp < end) {
    var t = rv32();
    switch (t >>> 3) {
${cases.join('\n')}
      default: skip(t & 7);
    }
  }
  return d;
}`
}

function genEncoder(type: Protobuf.Type): string {
  const id = ident(type)
  const fields = type.fieldsArray.slice().sort((a, b) => a.id - b.id)
  const path = type.fullName
  const parts = fields.map((f) => {
    const v = `m[${JSON.stringify(f.name)}]`
    const fpath = JSON.stringify(`${path}.${f.name}`)
    if (f.resolvedType instanceof pb().Type) {
      const tag = (f.id << 3) | 2
      const sub = ident(f.resolvedType)
      const one = (x: string) => `objectExpected(${fpath}, ${x}); wv32(${tag}); var st = ldStart(); enc_${sub}(${x}); ldEnd(st);`
      if (f.repeated) {
        return `  v = ${v}; if (v != null) { arrayExpected(${fpath}, v); for (var i = 0; i < v.length; i++) { var x = v[i]; ${one('x')} } }`
      }
      return `  v = ${v}; if (v != null) { ${one('v')} }`
    }
    const wt = f.resolvedType instanceof pb().Enum ? 0 : SCALAR_WIRE[f.type]!
    if (f.repeated) {
      if (isPackable(f)) {
        // proto3 packs repeated scalars.
        const one = writeValue(f, 'v[i]', 0).replace('wv32(0); ', '')
        return `  v = ${v}; if (v != null) { arrayExpected(${fpath}, v); if (v.length) { wv32(${(f.id << 3) | 2}); var st = ldStart(); for (var i = 0; i < v.length; i++) { ${one} } ldEnd(st); } }`
      }
      return `  v = ${v}; if (v != null) { arrayExpected(${fpath}, v); for (var i = 0; i < v.length; i++) { ${writeValue(f, 'v[i]', (f.id << 3) | wt)} } }`
    }
    const write = writeValue(f, 'v', (f.id << 3) | wt)
    // Explicit presence (proto3 optional, oneof members): written whenever set.
    if (f.partOf) return `  v = ${v}; if (v != null) { ${write} }`
    return `  v = ${v}; if (v != null && ${notDefault(f, 'v')}) { ${write} }`
  })
  return `
function enc_${id}(m) {
  var v;
${parts.join('\n')}
}`
}

function allTypes(ns: Protobuf.NamespaceBase, out: Protobuf.Type[] = [], enums: Protobuf.Enum[] = []) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof pb().Type) out.push(nested)
    else if (nested instanceof pb().Enum) enums.push(nested)
    if (nested instanceof pb().Namespace || nested instanceof pb().Type) allTypes(nested, out, enums)
  }
  return {types: out, enums}
}

/** The generated codec: the body of `function (Buffer, Long)` returning `{ident: {encode, decode}}`. */
export interface CodecSource {
  /** Message types, full names without the leading dot (`mooncake.v1.PutStartRequest`). */
  types: string[]
  body: string
}

/** A codec factory with its message types (what mooncake.codec.cjs exports). */
export interface CodecFactory {
  types: readonly string[]
  factory: (buffer: typeof Buffer, long: LongLike) => Record<string, {encode(m: unknown): Buffer; decode(b: Buffer): unknown}>
}

/** The part of Long the generated code uses (64-bit values given as strings or Long objects). */
interface LongLike {
  fromValue(v: unknown): {low: number; high: number; isZero(): boolean}
}
const LAZY_LONG: LongLike = {fromValue: (v) => (pb().util.Long as unknown as LongLike).fromValue(v)}

const identOf = (fullName: string) => fullName.replace(/^\./, '').replace(/\./g, '_')

/** Generates the codec of every message type of `root` (JavaScript source; see compileCodecs). */
export function codecSource(root: Protobuf.Root): CodecSource {
  root.resolveAll()
  const {types, enums} = allTypes(root)
  const src: string[] = [RUNTIME]
  src.push(`
function unzigzag(z) { return (z >>> 1) ^ -(z & 1) }
function enumName(e, v) { var n = e.byId[v]; return n === undefined ? v : n }
function enumValue(e, v) {
  if (typeof v === "number") return v | 0;
  var n = e.byName[v];
  return n === undefined ? 0 : n;
}`)
  for (const e of enums) {
    const byId: Record<number, string> = {}
    for (const [name, num] of Object.entries(e.values)) if (byId[num] === undefined) byId[num] = name
    src.push(`var ${ident(e)} = {byId: ${JSON.stringify(byId)}, byName: ${JSON.stringify(e.values)}};`)
  }
  for (const type of types) {
    for (const f of type.fieldsArray) {
      if (f.map) throw new Error(`fast-codec: map fields are not supported (${type.fullName}.${f.name})`)
      if (!(f.resolvedType instanceof pb().Type) && !(f.resolvedType instanceof pb().Enum) && !SUPPORTED.has(f.type)) {
        throw new Error(`fast-codec: field type ${f.type} is not supported (${type.fullName}.${f.name}); extend src/lib/proto/fast-codec.ts`)
      }
    }
    src.push(genDecoder(type), genEncoder(type))
  }
  const names = types.map((t) => ident(t))
  src.push(
    `return {${names
      .map((n) => `${n}: {encode: function (m) { return encodeTop(enc_${n}, m) }, decode: function (b) { return decodeTop(dec_${n}, b) }}`)
      .join(',\n')}};`,
  )
  return {types: types.map((t) => t.fullName.replace(/^\./, '')), body: src.join('\n')}
}

/** Instantiates a generated codec (from codecSource, or the prebuilt mooncake.codec.cjs). */
export function instantiateCodecs(codec: CodecFactory): Map<string, MessageCodec> {
  const built = codec.factory(Buffer, LAZY_LONG)
  const out = new Map<string, MessageCodec>()
  for (const name of codec.types) {
    const c = built[identOf(name)]
    if (!c) throw new Error(`fast-codec: the codec has no ${name}`)
    out.set(name, {name, encode: c.encode, decode: c.decode})
  }
  return out
}

/** Compiles encoders and decoders for every message type of `root`, keyed by full name without the leading dot. */
export function compileCodecs(root: Protobuf.Root): Map<string, MessageCodec> {
  const {types, body} = codecSource(root)
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return instantiateCodecs({types, factory: new Function('Buffer', 'Long', body) as CodecFactory['factory']})
}

/** One rpc of a service, as the codec module records it (enough for a grpc-js MethodDefinition). */
export interface ServiceMethod {
  /** rpc name, e.g. `PutStart`. */
  name: string
  /** `/mooncake.v1.Master/PutStart` */
  path: string
  /** Message full names without the leading dot. */
  requestType: string
  responseType: string
  requestStream: boolean
  responseStream: boolean
}

/** The rpcs of `service` (full name, e.g. `mooncake.v1.Master`) in declaration order. */
export function serviceMethods(root: Protobuf.Root, service: string): ServiceMethod[] {
  root.resolveAll()
  const svc = root.lookupService(service)
  const full = svc.fullName.replace(/^\./, '')
  return svc.methodsArray.map((m) => ({
    name: m.name,
    path: `/${full}/${m.name}`,
    requestType: m.resolvedRequestType!.fullName.replace(/^\./, ''),
    responseType: m.resolvedResponseType!.fullName.replace(/^\./, ''),
    requestStream: Boolean(m.requestStream),
    responseStream: Boolean(m.responseStream),
  }))
}

/**
 * Source of a CommonJS module holding the codec and the rpcs of `services` of `root` (what
 * scripts/build-proto.mjs writes to dist/lib/proto/mooncake.codec.cjs). `protoSha256` is the hash of
 * the .proto text it was generated from; the loader ignores a module whose hash disagrees.
 */
export function codecModuleSource(root: Protobuf.Root, services: string[], protoSha256: string): string {
  const {types, body} = codecSource(root)
  const methods = Object.fromEntries(services.map((s) => [s, serviceMethods(root, s)]))
  return `// Generated from mooncake.proto by scripts/build-proto.mjs (src/lib/proto/fast-codec.ts); do not edit.
'use strict'
exports.protoSha256 = ${JSON.stringify(protoSha256)}
exports.types = ${JSON.stringify(types)}
exports.methods = ${JSON.stringify(methods)}
exports.factory = function (Buffer, Long) {
${body}
}
`
}

/** Parses a .proto file the way proto-loader does with `keepCase: false` (camelCase field names). */
export function loadProtoRoot(file: string): Protobuf.Root {
  const root = new (pb().Root)()
  root.loadSync(file, {keepCase: false})
  root.resolveAll()
  return root
}
