/** The TypeScript face of the native transfer engine (S13, S14). */
export {Crc32c, crc32c, crc32cAsync, crc32cHardware} from './crc32c.js'
export {sweepStaleSegments, TransferEngine} from './engine.js'
export {
  canonicalGrantBytes,
  decodeGrant,
  encodeGrant,
  GRANT_KEY_SIZE,
  GRANT_MAC_SIZE,
  GRANT_WIRE_SIZE,
  mintGrant,
  OP_READ,
  OP_WRITE,
  opMask,
  opsFromMask,
  type Grant,
  type GrantSpec,
} from './grant.js'
export {EXPECTED_NATIVE_ABI, loadNative, type NativeBinding} from './native.js'
export {MAX_SLICE_SIZE, MIN_SLICE_SIZE, resolveTransferOptions, TRANSFER_DEFAULTS, type TransferEngineOptions} from './options.js'
export {MAX_WINDOW, Segment} from './segment.js'
export type {
  CreateSegmentOptions,
  SubmitOptions,
  TransferEngineState,
  TransferEngineStats,
  TransferOp,
  TransferRequest,
  TransferResult,
  TransferTransport,
} from './types.js'
