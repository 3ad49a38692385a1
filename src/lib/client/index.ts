/** The client library: MooncakeClient, SegmentOwner, the embedded store and their types. */
export {MooncakeClient, type ClientStats, type GetToFileResult, type MountSegmentOptions} from './client.js'
export {
  DEFAULT_CLIENT_OPTIONS,
  type ClientState,
  type GetOptions,
  type MooncakeClientOptions,
  type PutOptions,
  type PutResult,
  type RemoveOptions,
  type TransportMode,
} from './options.js'
export {DEFAULT_SEGMENT_OWNER_OPTIONS, SegmentOwner, type SegmentOwnerOptions, type SegmentOwnerState} from './segment-owner.js'
export {startEmbedded, type EmbeddedOptions, type EmbeddedStore} from './embedded.js'
export {asyncMaster, type CoalescingStats} from './master-calls.js'
export {grantMinter} from './engine-data-path.js'
export {defaultHostId} from './host-id.js'
export type {DataPath, LocalSegment, RemoteTarget, TransferRequest as DataPathRequest} from './data-path.js'
export type {ServedStats, TransferItemResult} from './data-path.js'
// Metrics a client or segment owner records when given one (MooncakeClientOptions.metrics).
export {ClientMetrics, startMetricsServer, type ClientMetricsOptions, type ClientOp, type TransferPath} from '../metrics/client.js'
