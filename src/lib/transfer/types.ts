import type {ErrorCodeName} from '../errors.js'
import type {Grant, TransferOp} from './grant.js'
import type {Segment} from './segment.js'

export type {TransferOp} from './grant.js'

/** Lifecycle of a {@link TransferEngine}; each state only moves forward. */
export type TransferEngineState = 'created' | 'running' | 'closing' | 'closed'

/**
 * How bytes move: 'tcp' always uses the network lanes; 'memcpy' maps the peer's segment
 * (same host, same user, token proven) and copies, failing with NOT_SUPPORTED when that is
 * impossible; 'auto' uses memcpy when possible and TCP otherwise.
 */
export type TransferTransport = 'auto' | 'tcp' | 'memcpy'

export interface TransferRequest {
  /** 'read' copies peer segment bytes into `local`; 'write' copies `local` into the peer segment. */
  op: TransferOp
  /** A registered buffer (or a view inside one) or a segment of this engine. */
  local: Uint8Array | Segment
  /** Offset into `local`. @default 0 */
  localOffset?: number
  /** The peer's transfer endpoints ("ip:port"), one per address; slices use all of them. */
  peer: readonly string[]
  /** Name of the segment on the peer. */
  segment: string
  /** Offset in the peer's segment. */
  offset: number
  /** Bytes to move (at least 1). */
  length: number
  /** Required when the peer segment has a grant key (see mintGrant). */
  grant?: Grant
  /**
   * The same as `grant`, as its 48-byte wire form (what the master hands out), passed to the
   * engine as is: no object per request. Checked by the owner like any grant. @default none
   */
  grantWire?: Uint8Array
  /**
   * Also compute the CRC32C of the local bytes (after a read; of the bytes sent for a write) on
   * the engine's threads: the result's `crc`. @default false
   */
  crc?: boolean
}

export type TransferResult =
  | {ok: true; via: 'tcp' | 'memcpy'; crc?: number}
  | {ok: false; code: ErrorCodeName; message: string}

export interface SubmitOptions {
  /** @default 'auto' */
  transport?: TransferTransport
  /** Deadline of this batch. @default the engine's requestTimeoutMs */
  timeoutMs?: number
  /** Slice size for this batch (64 KiB to 16 MiB). @default the engine's sliceSize */
  sliceSize?: number
}

export interface CreateSegmentOptions {
  /**
   * Require an access grant with every request (a fresh random 32-byte key, `Segment.grantKey`).
   * @default true
   */
  grants?: boolean
}

export interface TransferEngineStats {
  /** Bytes moved by this engine's client (TCP and memcpy), counted per completed slice. */
  transferredBytes: number
  memcpyBytes: number
  retries: number
  connectionsOpened: number
  batchesInFlight: number
  server?: {
    listeners: Array<{endpoint: string; open: boolean; accepted: number; requests: number; bytesRead: number; bytesWritten: number}>
    connections: number
    refusedConnections: number
    malformedFrames: number
    authFailures: number
    deniedRequests: number
    idleClosed: number
  }
}
