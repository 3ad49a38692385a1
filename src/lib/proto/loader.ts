/**
 * Loads mooncake.proto at run time. The options come from loader-options.json, the same file
 * scripts/gen-proto-types.mjs turns into generator flags, so the generated types under
 * ./generated/ describe exactly the objects the loader produces.
 */
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

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
  /** Method definitions of mooncake.v1.Master, keyed by rpc name (PutStart, ...). */
  master: MasterDefinition
}

let cached: MooncakeProto | undefined

/** Parses the .proto once per process (about 20 ms). */
export function loadMooncakeProto(): MooncakeProto {
  if (cached) return cached
  const packageDefinition = protoLoader.loadSync(MOONCAKE_PROTO_PATH, protoLoaderOptions())
  const grpcObject = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType
  const master = packageDefinition['mooncake.v1.Master'] as unknown as MasterDefinition
  cached = {packageDefinition, grpcObject, master}
  return cached
}

/** Full gRPC path of a Master rpc, e.g. `/mooncake.v1.Master/PutStart` (what auth signs). */
export function masterMethodPath(rpc: string): string {
  return `/mooncake.v1.Master/${rpc}`
}
