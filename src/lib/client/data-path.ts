/**
 * The client's view of the data plane. MooncakeClient and SegmentOwner only use this interface;
 * the one file that knows the native transfer engine's API is engine-data-path.ts. Unit tests
 * plug in a fake.
 */
import type {ItemResult} from '../master/api.js'
import type {TransportMode} from './options.js'

/** Where in a remote segment: the fields of a MemoryLocation the data plane needs. */
export interface RemoteTarget {
  segment: string
  endpoints: string[]
  hostId: string
  /** Byte offset inside the segment. */
  offset: number
  /** Access grant minted by the master, when the segment requires one. */
  grant?: Uint8Array
}

export interface TransferRequest {
  op: 'read' | 'write'
  /** A view that lies inside registered memory (staging, or a buffer the caller registered); its length is the transfer length. */
  local: Uint8Array
  remote: RemoteTarget
  /** Also compute the CRC32C of `local` (after a read; what was sent for a write) off the event loop: the result's `crc`. */
  crc?: boolean
}

/** One request's outcome; a success may say how the bytes moved (metrics: `memcpy` is the same-host path). */
export type TransferItemResult = ItemResult<void> & {via?: 'tcp' | 'memcpy'; crc?: number}

/** Bytes and requests this process' data server has served to others, since it started. */
export interface ServedStats {
  /** Bytes other processes read from this process' segments. */
  bytesRead: number
  /** Bytes other processes wrote into them. */
  bytesWritten: number
  requests: number
}

export interface TransferOptions {
  timeoutMs: number
  transport: TransportMode
}

/** A segment this process owns (memory it contributes). */
export interface LocalSegment {
  readonly name: string
  readonly size: number
  /** Hex key with which the master mints grants for this segment (absent: no grants required). */
  readonly grantKey?: string
  /** A view of [offset, offset+length) of the segment memory (length <= 1 GiB), e.g. for repair or tests. */
  window(offset: number, length: number): Uint8Array
  /** Frees the memory. */
  close(): Promise<void>
}

export interface DataPath {
  /** Starts the data server (owners) or the client side only; returns the data endpoints (`host:port`). */
  start(): Promise<string[]>
  /** Endpoints of this process' data server (empty before start or for pure clients). */
  readonly endpoints: string[]
  /** Moves bytes; one result per request, in order. Never rejects for a per-request failure. */
  transfer(requests: TransferRequest[], options: TransferOptions): Promise<TransferItemResult[]>
  /** Registers memory that transfers may read and write in place. */
  registerMemory(buffer: Uint8Array): void
  /** Unregisters memory, waiting for transfers in flight on it. */
  unregisterMemory(buffer: Uint8Array): Promise<void>
  /** True when the whole view lies inside registered memory. */
  isRegistered(view: Uint8Array): boolean
  /** CRC32C continuing `seed` (native where available). */
  crc32c(data: Uint8Array, seed?: number): number
  /** Creates (and pre-faults) a shared-memory segment served by this process' data server. */
  createSegment(name: string, size: number): Promise<LocalSegment>
  /** Bytes moved so far, in total and through same-host shared memory (when the data path counts them). */
  stats?(): {transferredBytes: number; memcpyBytes: number}
  /** What the data server served over TCP (same-host readers copy from shared memory unseen), when the data path counts it. */
  servedStats?(): ServedStats
  close(): Promise<void>
}

/** Builds the default data path (the native engine). Loaded lazily so that importing the client stays cheap. */
export async function createDefaultDataPath(options: {token?: string; host?: string; port?: number; hostId: string; grants?: boolean}): Promise<DataPath> {
  const {EngineDataPath} = await import('./engine-data-path.js')
  return new EngineDataPath(options)
}
