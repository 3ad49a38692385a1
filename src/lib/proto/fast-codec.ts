/**
 * A compiled protobuf codec for mooncake.proto that produces and accepts exactly the objects
 * @grpc/proto-loader does with loader-options.json (camelCase fields, longs as numbers, enums as
 * names, defaults filled in, oneof names set), in one pass and without protobufjs' intermediate
 * message instances, Writer op lists and Long objects.
 *
 * It is generated at load time from the same .proto (protobufjs parses it; nothing is checked in),
 * so a field added to the .proto is encoded and decoded without touching this file. The wire
 * format is standard proto3; test/unit/proto-fast-codec.test.ts round-trips random messages of
 * every type through this codec and proto-loader's, both ways, and requires identical results.
 *
 * Differences that do not change the decoded message: proto3 scalar fields equal to their default
 * are not written (protobufjs writes any field present in the object), and unknown fields and
 * groups are skipped the same way.
 */
import protobuf from 'protobufjs'

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

type Field = protobuf.Field
const SCALAR_WIRE: Record<string, number> = {
  double: 1, float: 5, int32: 0, uint32: 0, sint32: 0, fixed32: 5, sfixed32: 5,
  int64: 0, uint64: 0, sint64: 0, fixed64: 1, sfixed64: 1, bool: 0, string: 2, bytes: 2,
}
const SUPPORTED = new Set(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'uint64', 'bool', 'string', 'bytes'])

const ident = (type: protobuf.ReflectionObject) => type.fullName.replace(/^\./, '').replace(/\./g, '_')

function defaultValue(f: Field): string {
  if (f.repeated) return '[]'
  if (f.resolvedType instanceof protobuf.Enum) return JSON.stringify(f.resolvedType.valuesById[0] ?? 0)
  if (f.resolvedType instanceof protobuf.Type) return 'null'
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
  if (f.resolvedType instanceof protobuf.Enum) return `enumName(${ident(f.resolvedType)}, rv32() | 0)`
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
  if (f.resolvedType instanceof protobuf.Enum) return `${t} wi32(enumValue(${ident(f.resolvedType)}, ${v}));`
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
  if (f.resolvedType instanceof protobuf.Enum) return `enumValue(${ident(f.resolvedType)}, ${v}) !== 0`
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
  return f.repeated && !(f.resolvedType instanceof protobuf.Type) && f.type !== 'string' && f.type !== 'bytes'
}

function genDecoder(type: protobuf.Type): string {
  const id = ident(type)
  const fields = type.fieldsArray.slice().sort((a, b) => a.id - b.id)
  const init = fields.filter((f) => !f.partOf).map((f) => `${JSON.stringify(f.name)}: ${defaultValue(f)}`)
  const cases = fields.map((f) => {
    const prop = `d[${JSON.stringify(f.name)}]`
    let body: string
    if (f.resolvedType instanceof protobuf.Type) {
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

function genEncoder(type: protobuf.Type): string {
  const id = ident(type)
  const fields = type.fieldsArray.slice().sort((a, b) => a.id - b.id)
  const path = type.fullName
  const parts = fields.map((f) => {
    const v = `m[${JSON.stringify(f.name)}]`
    const fpath = JSON.stringify(`${path}.${f.name}`)
    if (f.resolvedType instanceof protobuf.Type) {
      const tag = (f.id << 3) | 2
      const sub = ident(f.resolvedType)
      const one = (x: string) => `objectExpected(${fpath}, ${x}); wv32(${tag}); var st = ldStart(); enc_${sub}(${x}); ldEnd(st);`
      if (f.repeated) {
        return `  v = ${v}; if (v != null) { arrayExpected(${fpath}, v); for (var i = 0; i < v.length; i++) { var x = v[i]; ${one('x')} } }`
      }
      return `  v = ${v}; if (v != null) { ${one('v')} }`
    }
    const wt = f.resolvedType instanceof protobuf.Enum ? 0 : SCALAR_WIRE[f.type]!
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

function allTypes(ns: protobuf.NamespaceBase, out: protobuf.Type[] = [], enums: protobuf.Enum[] = []) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) out.push(nested)
    else if (nested instanceof protobuf.Enum) enums.push(nested)
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) allTypes(nested, out, enums)
  }
  return {types: out, enums}
}

/** Compiles encoders and decoders for every message type of `root`, keyed by full name without the leading dot. */
export function compileCodecs(root: protobuf.Root): Map<string, MessageCodec> {
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
      if (!(f.resolvedType instanceof protobuf.Type) && !(f.resolvedType instanceof protobuf.Enum) && !SUPPORTED.has(f.type)) {
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
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const factory = new Function('Buffer', 'Long', src.join('\n')) as (
    buffer: typeof Buffer,
    long: typeof protobuf.util.Long,
  ) => Record<string, {encode(m: unknown): Buffer; decode(b: Buffer): unknown}>
  const built = factory(Buffer, protobuf.util.Long)
  const out = new Map<string, MessageCodec>()
  for (const type of types) {
    const name = type.fullName.replace(/^\./, '')
    const c = built[ident(type)]!
    out.set(name, {name, encode: c.encode, decode: c.decode})
  }
  return out
}

/** Parses a .proto file the way proto-loader does with `keepCase: false` (camelCase field names). */
export function loadProtoRoot(file: string): protobuf.Root {
  const root = new protobuf.Root()
  root.loadSync(file, {keepCase: false})
  root.resolveAll()
  return root
}
