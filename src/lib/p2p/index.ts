export {P2PStore, P2P_DEFAULTS, toPayloadInfo} from './store.js'
export {P2PAdmin, type P2PAdminOptions} from './admin.js'
export type {DataPlane, DataSegment, ReadRequest} from './engine.js'
export {layoutShards, DEFAULT_MAX_SHARD_SIZE} from './shards.js'
export type {
  GetReplicaOptions,
  GetReplicaResult,
  HolderEntry,
  P2PDestination,
  P2PEvent,
  P2PSource,
  P2PStoreOptions,
  PayloadInfo,
  PayloadRecord,
  PeerRecord,
  RegisterOptions,
  ShardLayout,
} from './types.js'
