/**
 * ErrorCodes across the gRPC wire. The server answers a failed call with a gRPC status plus the
 * exact ErrorCode name in trailing metadata; the client turns that back into the same
 * MooncakeError. Failures that never reached the master's logic (connection refused, deadline,
 * RST) carry no such metadata and become UNAVAILABLE, with a message that says what to check.
 */
import * as grpc from '@grpc/grpc-js'

import {type ErrorCodeName, ErrorCode, isErrorCodeName, MooncakeError} from '../errors.js'

import {ERROR_CODE_METADATA, LEADER_METADATA} from './grpc-metadata.js'

export {ERROR_CODE_METADATA, LEADER_METADATA} from './grpc-metadata.js'

const STATUS_BY_CODE: Partial<Record<ErrorCodeName, grpc.status>> = {
  OBJECT_NOT_FOUND: grpc.status.NOT_FOUND,
  SEGMENT_NOT_FOUND: grpc.status.NOT_FOUND,
  CLIENT_NOT_FOUND: grpc.status.NOT_FOUND,
  REPLICA_NOT_FOUND: grpc.status.NOT_FOUND,
  FILE_NOT_FOUND: grpc.status.NOT_FOUND,
  PAYLOAD_NOT_FOUND: grpc.status.NOT_FOUND,
  OBJECT_ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  SEGMENT_ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  REPLICA_ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  PAYLOAD_ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  INVALID_PARAMS: grpc.status.INVALID_ARGUMENT,
  INVALID_KEY: grpc.status.INVALID_ARGUMENT,
  USAGE: grpc.status.INVALID_ARGUMENT,
  ILLEGAL_CLIENT: grpc.status.PERMISSION_DENIED,
  OBJECT_HAS_LEASE: grpc.status.FAILED_PRECONDITION,
  REPLICA_IS_NOT_READY: grpc.status.FAILED_PRECONDITION,
  INVALID_WRITE: grpc.status.FAILED_PRECONDITION,
  INVALID_READ: grpc.status.FAILED_PRECONDITION,
  OBJECT_REPLICA_BUSY: grpc.status.FAILED_PRECONDITION,
  UNAVAILABLE_IN_CURRENT_STATUS: grpc.status.FAILED_PRECONDITION,
  UNAVAILABLE_IN_CURRENT_MODE: grpc.status.FAILED_PRECONDITION,
  SEGMENT_UNMOUNTED: grpc.status.FAILED_PRECONDITION,
  LEASE_EXPIRED: grpc.status.FAILED_PRECONDITION,
  NO_AVAILABLE_HANDLE: grpc.status.RESOURCE_EXHAUSTED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  NOT_LEADER: grpc.status.UNAVAILABLE,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  NOT_SUPPORTED: grpc.status.UNIMPLEMENTED,
  INTERNAL_ERROR: grpc.status.INTERNAL,
}

/** The gRPC status a failed call with this ErrorCode answers (a hint for non-Mooncake clients). */
export function grpcStatusFor(code: ErrorCodeName): grpc.status {
  return STATUS_BY_CODE[code] ?? grpc.status.UNKNOWN
}

/** What a handler passes to grpc-js for any thrown value; never throws itself. */
export function toServiceError(err: unknown): grpc.ServiceError {
  const mooncake =
    err instanceof MooncakeError
      ? err
      : new MooncakeError('INTERNAL_ERROR', `master bug: ${err instanceof Error ? err.message : String(err)}`)
  const metadata = new grpc.Metadata()
  metadata.set(ERROR_CODE_METADATA, mooncake.code)
  // NOT_LEADER names the leader when known (HA), so a client can go there directly.
  if (typeof mooncake.details?.leader === 'string') metadata.set(LEADER_METADATA, mooncake.details.leader)
  const error = new Error(mooncake.message) as grpc.ServiceError
  error.code = grpcStatusFor(mooncake.code)
  error.details = mooncake.message
  error.metadata = metadata
  return error
}

/** The ErrorCode name the server put in the trailers, if any. */
export function errorCodeFromMetadata(metadata: grpc.Metadata | undefined): ErrorCodeName | undefined {
  const value = metadata?.get(ERROR_CODE_METADATA)[0]
  return typeof value === 'string' && isErrorCodeName(value) ? value : undefined
}

/** True for a failure of the transport (no answer from the master's logic), which a retry may cure. */
export function isTransportUnavailable(err: unknown): boolean {
  const e = err as Partial<grpc.ServiceError>
  return e?.code === grpc.status.UNAVAILABLE && errorCodeFromMetadata(e.metadata) === undefined
}

export interface CallContext {
  /** host:port the client talks to. */
  address: string
  /** rpc name, e.g. PutStart. */
  rpc: string
  /** The deadline of this call, ms. */
  timeoutMs: number
}

/** Maps a grpc-js client error back to a MooncakeError with the server's ErrorCode name. */
export function fromServiceError(err: unknown, ctx: CallContext): MooncakeError {
  if (err instanceof MooncakeError) return err
  const e = err as Partial<grpc.ServiceError>
  const details = e?.details || (err instanceof Error ? err.message : String(err))
  const named = errorCodeFromMetadata(e?.metadata)
  if (named) return new MooncakeError(named, details, {cause: err})
  const where = `the master at ${ctx.address}`
  switch (e?.code) {
    case grpc.status.UNAVAILABLE:
      return new MooncakeError(
        'UNAVAILABLE',
        `cannot reach ${where} (${details}): check that \`mooncake master\` runs there and that --master / MOONCAKE_MASTER names it, and, if it serves TLS, that --tls-ca / MOONCAKE_TLS_CA names the CA of its certificate`,
        {cause: err},
      )
    case grpc.status.DEADLINE_EXCEEDED:
      return new MooncakeError(
        'UNAVAILABLE',
        `${where} did not answer ${ctx.rpc} within ${ctx.timeoutMs} ms: check that it runs and is reachable, or raise --timeout`,
        {cause: err},
      )
    case grpc.status.CANCELLED:
      return new MooncakeError('INTERRUPTED', `${ctx.rpc} to ${where} was cancelled`, {cause: err})
    case grpc.status.UNAUTHENTICATED:
      return new MooncakeError('UNAUTHENTICATED', details, {cause: err})
    case grpc.status.RESOURCE_EXHAUSTED:
      // grpc-js's own message-size limit: the request or the answer was too large.
      return new MooncakeError('INVALID_PARAMS', `${ctx.rpc}: ${details}: send smaller batches`, {cause: err})
    case grpc.status.UNIMPLEMENTED:
      return new MooncakeError(
        'NOT_SUPPORTED',
        `${where} does not implement ${ctx.rpc}: it runs an incompatible version of mooncake`,
        {cause: err},
      )
    default:
      return new MooncakeError('RPC_FAIL', `${ctx.rpc} to ${where} failed: ${details}`, {cause: err})
  }
}

/** The original's numeric value of an ErrorCode name (for ItemError.value). */
export function errorValue(code: ErrorCodeName): number {
  return ErrorCode[code]
}
