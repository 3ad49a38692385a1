/**
 * Loads mooncake.proto at run time. The options come from loader-options.json, the same file
 * scripts/gen-proto-types.mjs turns into generator flags, so the generated types under
 * ./generated/ describe exactly the objects the loader produces.
 *
 * Two levels, so that a short CLI command pays only for what it uses:
 * - `loadMasterDefinition()` (what clients and the server use): the Master methods with the
 *   compiled codec of fast-codec.ts. In dist it comes from mooncake.codec.cjs, generated at build
 *   time by scripts/build-proto.mjs: neither protobufjs nor proto-loader is loaded and nothing is
 *   parsed. Without that file (tests under tsx) or when it is stale, the .proto is parsed once.
 * - `loadMooncakeProto()`: the above plus proto-loader's package definition, grpc object and
 *   reflection codecs (tests, `MOONCAKE_PROTO_CODEC=reflection`), built lazily from the same
 *   parsed Root.
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {fileURLToPath} from 'node:url'

import type * as grpc from '@grpc/grpc-js'
import type * as protoLoader from '@grpc/proto-loader'
import type Protobuf from 'protobufjs'

import {compileCodecs, instantiateCodecs, loadProtoRoot, serviceMethods, type CodecFactory, type MessageCodec, type ServiceMethod} from './fast-codec.js'
import type {ProtoGrpcType} from './generated/mooncake.js'
import type {MasterDefinition} from './generated/mooncake/v1/Master.js'

/** The .proto sits next to this module in src/ and, copied by scripts/copy-assets.mjs, in dist/. */
export const MOONCAKE_PROTO_PATH = fileURLToPath(new URL('./mooncake.proto', import.meta.url))
/** The prebuilt codec, written next to the .proto in dist/ by scripts/build-proto.mjs (absent in src/). */
export const MOONCAKE_CODEC_PATH = fileURLToPath(new URL('./mooncake.codec.cjs', import.meta.url))
const OPTIONS_PATH = fileURLToPath(new URL('./loader-options.json', import.meta.url))
export const MASTER_SERVICE = 'mooncake.v1.Master'

const require = createRequire(import.meta.url)

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

/** What mooncake.codec.cjs exports (see fast-codec.ts codecModuleSource). */
export interface CodecModule extends CodecFactory {
  protoSha256: string
  methods: Record<string, ServiceMethod[]>
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex')
}

/**
 * The prebuilt codec module at `file` if it exists and was generated from the .proto at
 * `protoFile` (same sha256), else undefined.
 */
export function readCodecModule(file = MOONCAKE_CODEC_PATH, protoFile = MOONCAKE_PROTO_PATH): CodecModule | undefined {
  if (!existsSync(file)) return undefined
  const mod = require(file) as CodecModule
  return mod.protoSha256 === sha256(readFileSync(protoFile)) ? mod : undefined
}

type AnyMethod = grpc.MethodDefinition<object, object> & {originalName?: string}

/** grpc-js method definitions of `methods` whose (de)serializers are the compiled codecs. */
export function fastServiceDefinition(methods: readonly ServiceMethod[], codecs: Map<string, MessageCodec>): Record<string, AnyMethod> {
  const out: Record<string, AnyMethod> = {}
  for (const m of methods) {
    const req = codecs.get(m.requestType)
    const res = codecs.get(m.responseType)
    if (!req || !res) throw new Error(`no compiled codec for the messages of ${m.name}`)
    out[m.name] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      // proto-loader's camelCase of the rpc name (the alias grpc-js' generated clients get).
      originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
      requestSerialize: req.encode as AnyMethod['requestSerialize'],
      requestDeserialize: req.decode as AnyMethod['requestDeserialize'],
      responseSerialize: res.encode as AnyMethod['responseSerialize'],
      responseDeserialize: res.decode as AnyMethod['responseDeserialize'],
    }
  }
  return out
}

interface Fast {
  master: MasterDefinition
  codecs: Map<string, MessageCodec>
}

let root: Protobuf.Root | undefined
let fast: Fast | undefined
let full: Omit<MooncakeProto, 'master' | 'codecs'> | undefined
let proto: MooncakeProto | undefined

/** The .proto parsed once per process (only when there is no prebuilt codec, or for proto-loader). */
function protoRoot(): Protobuf.Root {
  return (root ??= loadProtoRoot(MOONCAKE_PROTO_PATH))
}

function loadFast(): Fast {
  if (fast) return fast
  const prebuilt = readCodecModule()
  const codecs = prebuilt ? instantiateCodecs(prebuilt) : compileCodecs(protoRoot())
  const methods = prebuilt?.methods[MASTER_SERVICE] ?? serviceMethods(protoRoot(), MASTER_SERVICE)
  fast = {master: fastServiceDefinition(methods, codecs) as unknown as MasterDefinition, codecs}
  return fast
}

/** proto-loader's view of the same Root (loads protobufjs, proto-loader and converts: ~30 ms). */
function loadFull(): Omit<MooncakeProto, 'master' | 'codecs'> {
  if (full) return full
  const loader = require('@grpc/proto-loader') as typeof protoLoader
  const grpcJs = require('@grpc/grpc-js') as typeof grpc
  // fromJSON rebuilds a Root from the parsed one's descriptor instead of parsing the text again.
  const packageDefinition = loader.fromJSON(protoRoot().toJSON(), protoLoaderOptions())
  const grpcObject = grpcJs.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType
  const reflectionMaster = packageDefinition[MASTER_SERVICE] as unknown as MasterDefinition
  full = {packageDefinition, grpcObject, reflectionMaster}
  return full
}

/**
 * The Master methods as grpc-js needs them (client and server): the compiled codec, prebuilt in
 * dist (no .proto parsing, a few ms), or proto-loader's reflection one with
 * `MOONCAKE_PROTO_CODEC=reflection`.
 */
export function loadMasterDefinition(): MasterDefinition {
  return process.env['MOONCAKE_PROTO_CODEC'] === 'reflection' ? loadFull().reflectionMaster : loadFast().master
}

/** Everything about mooncake.proto; each part is built on first access, the .proto parsed at most once. */
export function loadMooncakeProto(): MooncakeProto {
  return (proto ??= {
    get master() {
      return loadMasterDefinition()
    },
    get codecs() {
      return loadFast().codecs
    },
    get packageDefinition() {
      return loadFull().packageDefinition
    },
    get grpcObject() {
      return loadFull().grpcObject
    },
    get reflectionMaster() {
      return loadFull().reflectionMaster
    },
  })
}

/** Full gRPC path of a Master rpc, e.g. `/mooncake.v1.Master/PutStart` (what auth signs). */
export function masterMethodPath(rpc: string): string {
  return `/${MASTER_SERVICE}/${rpc}`
}
