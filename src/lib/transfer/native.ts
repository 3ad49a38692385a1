import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {MooncakeError} from '../errors.js'

/** Bumped whenever the native function table changes, so a stale build is detected. */
export const EXPECTED_NATIVE_ABI = 5

/** Options object passed to `engineCreate` (already validated and defaulted by options.ts). */
export interface NativeEngineOptions {
  listenHosts: string[]
  port: number
  token: string
  lanesPerPeer: number
  clientThreads: number
  serverThreads: number
  maxConnections: number
  idleTimeoutMs: number
  ioTimeoutMs: number
  connectTimeoutMs: number
  cooldownMs: number
  batchScheduling: boolean
}

/**
 * What `submit` resolves to: per request, the status (0 = success, otherwise an ErrorCode
 * value) and whether it moved through shared memory; messages only when something failed
 * (indexed like the requests, undefined for successes).
 */
export type NativeSubmitResult = [status: Int32Array, viaMemcpy: Uint8Array, messages: Array<string | undefined> | undefined, crcs: Uint32Array]

export interface NativeListenerStats {
  endpoint: string
  open: boolean
  accepted: number
  requests: number
  bytesRead: number
  bytesWritten: number
}

export interface NativeEngineStats {
  client?: {transferredBytes: number; memcpyBytes: number; retries: number; connectionsOpened: number; batchesInFlight: number}
  server?: {
    listeners: NativeListenerStats[]
    connections: number
    refusedConnections: number
    malformedFrames: number
    authFailures: number
    deniedRequests: number
    idleClosed: number
  }
}

/**
 * The flat function table exported by native/addon.cc. Failures throw an Error carrying a
 * numeric `status` (an ErrorCode value); native-call.ts turns it into a MooncakeError.
 */
export interface NativeBinding {
  abiVersion(): number
  crc32c(data: Uint8Array, offset: number, length: number, seed: number): number
  crc32cHardware(): boolean
  /** `target` is a Uint8Array or a segment handle. */
  crc32cAsync(target: Uint8Array | number, offset: number, length: number, seed: number): Promise<number>
  grantMac(key: Uint8Array, segment: string, offset: number, length: number, opMask: number, expiryUnixMs: number): Buffer
  /** HMAC-SHA256(key, msg[0:msgLength]) truncated to outLength bytes, written at out[outOffset]. */
  hmacSha256Into(key: Uint8Array, msg: Uint8Array, msgLength: number, out: Uint8Array, outOffset: number, outLength: number): void
  sweepSegments(): number
  engineCreate(options: NativeEngineOptions): number
  engineStart(engine: number): string[]
  engineClose(engine: number): void
  /** Drops the engine's registrations (after its last batch completed). */
  engineRelease(engine: number): void
  engineCloseListener(engine: number, host: string): boolean
  engineStats(engine: number): NativeEngineStats
  segmentCreate(engine: number, name: string, size: number, grants: boolean): {handle: number; path: string; grantKey?: Buffer}
  segmentClose(handle: number): void
  segmentWindow(handle: number, offset: number, length: number): Buffer
  memoryRegister(engine: number, buffer: Uint8Array): void
  /** true = removed; false = still used by batches in flight (now refused for new ones). */
  memoryUnregister(engine: number, buffer: Uint8Array): boolean
  /**
   * Moves a batch. The requests come as a packed table: `rows` holds 8 numbers per request
   * (op 1 = read / 2 = write, peer index, segment index, local index, local offset, remote
   * offset, length, grant index or -1) indexing `peers`, `segments`, `locals` (a Uint8Array
   * inside registered memory, or a local segment handle) and `grants` (48 bytes each, packed).
   */
  submit(
    engine: number,
    peers: string[][],
    segments: string[],
    locals: Array<Uint8Array | number>,
    grants: Uint8Array | undefined,
    rows: Float64Array,
    sliceSize: number,
    timeoutMs: number,
    transport: number,
  ): Promise<NativeSubmitResult>
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const candidates = [
  path.join(packageRoot, 'build', 'Release', 'mooncake_native.node'),
  path.join(packageRoot, 'build', 'Debug', 'mooncake_native.node'),
]

const FIX = `Rebuild it from the package directory (${packageRoot}) with: npm rebuild  (or: npx node-gyp rebuild --nodedir=/usr). It needs python3, make and g++.`

let cached: NativeBinding | undefined

/** Loads the native transfer engine once, explaining how to fix a missing or stale build. */
export function loadNative(): NativeBinding {
  if (cached) return cached
  const file = candidates.find((candidate) => existsSync(candidate))
  if (!file) {
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine is not built (looked for ${candidates.join(', ')}). ${FIX}`)
  }
  let binding: NativeBinding
  try {
    binding = createRequire(import.meta.url)(file) as NativeBinding
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine at ${file} could not be loaded (${reason}). ${FIX}`, {cause: err})
  }
  const abi = binding.abiVersion()
  if (abi !== EXPECTED_NATIVE_ABI) {
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine at ${file} is stale (ABI ${abi}, expected ${EXPECTED_NATIVE_ABI}). ${FIX}`)
  }
  cached = binding
  return binding
}
