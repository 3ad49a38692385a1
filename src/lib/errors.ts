/**
 * One error vocabulary for the library, the gRPC wire and the CLI.
 * Names and numbers below -2000 are the original Mooncake's (`include/types.h`); the rest are ours.
 */
export enum ErrorCode {
  OK = 0,
  INTERNAL_ERROR = -1,
  BUFFER_OVERFLOW = -10,
  SHARD_INDEX_OUT_OF_RANGE = -100,
  SEGMENT_NOT_FOUND = -101,
  SEGMENT_ALREADY_EXISTS = -102,
  CLIENT_NOT_FOUND = -103,
  NO_AVAILABLE_HANDLE = -200,
  INVALID_VERSION = -300,
  INVALID_KEY = -400,
  WRITE_FAIL = -500,
  INVALID_PARAMS = -600,
  ILLEGAL_CLIENT = -601,
  INVALID_WRITE = -700,
  INVALID_READ = -701,
  INVALID_REPLICA = -702,
  REPLICA_IS_NOT_READY = -703,
  OBJECT_NOT_FOUND = -704,
  OBJECT_ALREADY_EXISTS = -705,
  OBJECT_HAS_LEASE = -706,
  LEASE_EXPIRED = -707,
  OBJECT_HAS_REPLICATION_TASK = -708,
  OBJECT_NO_REPLICATION_TASK = -709,
  REPLICA_NOT_FOUND = -710,
  REPLICA_ALREADY_EXISTS = -711,
  REPLICA_IS_GONE = -712,
  REPLICA_NOT_IN_LOCAL_MEMORY = -713,
  OBJECT_REPLICA_BUSY = -714,
  TRANSFER_FAIL = -800,
  CHECKSUM_MISMATCH = -801,
  RPC_FAIL = -900,
  RPC_TIMEOUT = -901,
  ETCD_OPERATION_ERROR = -1000,
  ETCD_KEY_NOT_EXIST = -1001,
  ETCD_TRANSACTION_FAIL = -1002,
  ETCD_CTX_CANCELLED = -1003,
  OPLOG_ENTRY_NOT_FOUND = -1004,
  INCOMPLETE_OPLOG_CATCH_UP = -1007,
  UNAVAILABLE_IN_CURRENT_STATUS = -1010,
  UNAVAILABLE_IN_CURRENT_MODE = -1011,
  NOT_SUPPORTED = -1012,
  FILE_NOT_FOUND = -1100,
  FILE_OPEN_FAIL = -1101,
  FILE_READ_FAIL = -1102,
  FILE_WRITE_FAIL = -1103,
  FILE_INVALID_BUFFER = -1104,
  FILE_LOCK_FAIL = -1105,
  FILE_INVALID_HANDLE = -1106,
  SERIALIZE_FAIL = -1501,
  DESERIALIZE_FAIL = -1502,
  PERSISTENT_FAIL = -1503,
  // ours
  UNAUTHENTICATED = -2000,
  NOT_LEADER = -2001,
  /** The master, leader or etcd could not be reached within the deadline. */
  UNAVAILABLE = -2002,
  /** Some items of a batch, regex or multi-key command failed. */
  PARTIAL_FAILURE = -2003,
  INTERRUPTED = -2004,
  DEADLINE_EXCEEDED = -2005,
  /** The native addon is missing or does not match this version of the package. */
  NATIVE_BUILD_MISSING = -2006,
  /** Usage errors found by the CLI before anything was sent. */
  USAGE = -2007,
  SEGMENT_UNMOUNTED = -2008,
  PAYLOAD_NOT_FOUND = -2100,
  PAYLOAD_ALREADY_EXISTS = -2101,
  PAYLOAD_SIZE_MISMATCH = -2102,
  /** A P2P peer name is held by another live peer. */
  PEER_ALREADY_EXISTS = -2103,
  /** A transfer without a valid access grant (missing, expired, forged, or not covering the range). */
  ACCESS_DENIED = -2300,
}

export type ErrorCodeName = keyof typeof ErrorCode

export interface MooncakeErrorOptions {
  cause?: unknown
  /** Per-item details, e.g. the keys that failed in a batch. */
  details?: Record<string, unknown>
}

export class MooncakeError extends Error {
  readonly code: ErrorCodeName
  readonly details?: Record<string, unknown>

  constructor(code: ErrorCodeName | ErrorCode, message: string, options: MooncakeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.code = typeof code === 'number' ? codeName(code) : code
    this.details = options.details
    Error.captureStackTrace?.(this, new.target)
  }

  override get name(): string {
    return 'MooncakeError'
  }

  /** The original's numeric value, e.g. -704 for OBJECT_NOT_FOUND. */
  get value(): number {
    return ErrorCode[this.code]
  }

  toJSON(): {code: ErrorCodeName; message: string} {
    return {code: this.code, message: this.message}
  }
}

export function codeName(value: number): ErrorCodeName {
  const name = ErrorCode[value] as ErrorCodeName | undefined
  return name ?? 'INTERNAL_ERROR'
}

export function isErrorCodeName(name: string): name is ErrorCodeName {
  return typeof (ErrorCode as Record<string, unknown>)[name] === 'number'
}

export function isMooncakeError(err: unknown, code?: ErrorCodeName): err is MooncakeError {
  return err instanceof MooncakeError && (code === undefined || err.code === code)
}

/** Wraps anything thrown into a MooncakeError, keeping MooncakeErrors as they are. */
export function toMooncakeError(err: unknown, fallback: ErrorCodeName = 'INTERNAL_ERROR'): MooncakeError {
  if (err instanceof MooncakeError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new MooncakeError(fallback, message, {cause: err})
}

/** Exit codes of the CLI contract (SPEC "Output, errors and exit codes"), in one place. */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  PARTIAL: 4,
  UNAVAILABLE: 5,
  UNAUTHENTICATED: 6,
  INTERRUPTED: 130,
} as const

const EXIT_BY_CODE: Partial<Record<ErrorCodeName, number>> = {
  USAGE: ExitCode.USAGE,
  INVALID_PARAMS: ExitCode.USAGE,
  INVALID_KEY: ExitCode.USAGE,
  OBJECT_NOT_FOUND: ExitCode.NOT_FOUND,
  SEGMENT_NOT_FOUND: ExitCode.NOT_FOUND,
  PAYLOAD_NOT_FOUND: ExitCode.NOT_FOUND,
  FILE_NOT_FOUND: ExitCode.NOT_FOUND,
  PARTIAL_FAILURE: ExitCode.PARTIAL,
  UNAVAILABLE: ExitCode.UNAVAILABLE,
  NOT_LEADER: ExitCode.UNAVAILABLE,
  RPC_FAIL: ExitCode.UNAVAILABLE,
  RPC_TIMEOUT: ExitCode.UNAVAILABLE,
  ETCD_OPERATION_ERROR: ExitCode.UNAVAILABLE,
  ETCD_CTX_CANCELLED: ExitCode.UNAVAILABLE,
  UNAUTHENTICATED: ExitCode.UNAUTHENTICATED,
  INTERRUPTED: ExitCode.INTERRUPTED,
}

export function exitCodeFor(code: ErrorCodeName): number {
  return EXIT_BY_CODE[code] ?? ExitCode.FAILURE
}
