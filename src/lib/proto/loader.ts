/**
 * Loads mooncake.proto at run time. The options come from loader-options.json, the same file
 * scripts/gen-proto-types.mjs turns into generator flags, so the generated types under
 * ./generated/ describe exactly the objects the loader produces.
 */
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

import {compileCodecs, loadProtoRoot, type MessageCodec} from './fast-codec.js'
import type {ProtoGrpcType} from './generated/mooncake.js'
import type {MasterDefinition} from './generated/mooncake/v1/Master.js'

/** The .proto sits next to this module in src/ and, copied by scripts/copy-assets.mjs, in dist/. */
export const MOONCAKE_PROTO_PATH = fileURLToPath(new URL('./mooncake.proto', import.meta.url))
const OPTIONS_PATH = fileURLToPath(new URL('./loader-options.json', import.meta.url))

interface LoaderOptionsFile {
  keepCase: boolean
  longs: 'Number' | 'String'
  enums: 'String'
  defaults: boolean
  oneofs: boolean
}

export function protoLoaderOptions(): protoLoader.Options {
  const raw = JSON.parse(readFileSync(OPTIONS_PATH, 'utf8')) as LoaderOptionsFile
  return {
    keepCase: raw.keepCase,
    longs: raw.longs === 'Number' ? Number : String,
    enums: String,
    defaults: raw.defaults,
    oneofs: raw.oneofs,
  }
}

export interface MooncakeProto {
  packageDefinition: protoLoader.PackageDefinition
  grpcObject: ProtoGrpcType
  /**
   * Method definitions of mooncake.v1.Master, keyed by rpc name (PutStart, ...), with the compiled
   * codec of fast-codec.ts as serializers (same objects as proto-loader's, several times cheaper).
   * `MOONCAKE_PROTO_CODEC=reflection` keeps proto-loader's own (for comparisons).
   */
  master: MasterDefinition
  /** The same methods with proto-loader's reflection serializers (what `master` must agree with). */
  reflectionMaster: MasterDefinition
  /** Compiled codecs of every message type, keyed by full name (`mooncake.v1.PutStartRequest`). */
  codecs: Map<string, MessageCodec>
}

type AnyMethod = protoLoader.MethodDefinition<object, object>
const typeName = (t: protoLoader.MessageTypeDefinition<object, object>) => (t.type as {name: string}).name

/** Method definitions whose (de)serializers are the compiled ones. */
function withFastCodec(def: MasterDefinition, codecs: Map<string, MessageCodec>): MasterDefinition {
  const out: Record<string, AnyMethod> = {}
  for (const [name, method] of Object.entries(def) as [string, AnyMethod][]) {
    const req = codecs.get(`mooncake.v1.${typeName(method.requestType)}`)
    const res = codecs.get(`mooncake.v1.${typeName(method.responseType)}`)
    if (!req || !res) throw new Error(`no compiled codec for the messages of ${name}`)
    out[name] = {
      ...method,
      requestSerialize: req.encode as AnyMethod['requestSerialize'],
      requestDeserialize: req.decode as AnyMethod['requestDeserialize'],
      responseSerialize: res.encode as AnyMethod['responseSerialize'],
      responseDeserialize: res.decode as AnyMethod['responseDeserialize'],
    }
  }
  return out as unknown as MasterDefinition
}

let cached: MooncakeProto | undefined

/** Parses the .proto once per process (about 20 ms, and a few ms to compile the codec). */
export function loadMooncakeProto(): MooncakeProto {
  if (cached) return cached
  const packageDefinition = protoLoader.loadSync(MOONCAKE_PROTO_PATH, protoLoaderOptions())
  const grpcObject = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType
  const reflectionMaster = packageDefinition['mooncake.v1.Master'] as unknown as MasterDefinition
  const codecs = compileCodecs(loadProtoRoot(MOONCAKE_PROTO_PATH))
  const master = process.env['MOONCAKE_PROTO_CODEC'] === 'reflection' ? reflectionMaster : withFastCodec(reflectionMaster, codecs)
  cached = {packageDefinition, grpcObject, master, reflectionMaster, codecs}
  return cached
}

/** Full gRPC path of a Master rpc, e.g. `/mooncake.v1.Master/PutStart` (what auth signs). */
export function masterMethodPath(rpc: string): string {
  return `/mooncake.v1.Master/${rpc}`
}
