// What both ends of the master's gRPC wire agree on besides the .proto (trailing-metadata keys,
// the Pipeline frame limit), in a module without grpc-js so that callers that only inspect errors
// do not load it.

/** The exact ErrorCode name of a failed call: present only when the master's logic answered. */
export const ERROR_CODE_METADATA = 'mooncake-error-code'
/** Trailing metadata of a NOT_LEADER answer: the leader's HOST:PORT. */
export const LEADER_METADATA = 'mooncake-leader'

/**
 * Largest request or answer body a Pipeline frame carries: the 64 MiB message limit of both ends,
 * less room for the frame's own fields. A larger request goes as a unary call (which grpc-js
 * refuses as the unary call always did); a larger answer fails only its own frame.
 */
export const PIPELINE_MAX_BODY = 64 * 1024 * 1024 - 64 * 1024
