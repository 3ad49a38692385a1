// Trailing-metadata keys of the master's gRPC answers, in a module without grpc-js so that
// callers that only inspect errors do not load it.

/** The exact ErrorCode name of a failed call: present only when the master's logic answered. */
export const ERROR_CODE_METADATA = 'mooncake-error-code'
/** Trailing metadata of a NOT_LEADER answer: the leader's HOST:PORT. */
export const LEADER_METADATA = 'mooncake-leader'
