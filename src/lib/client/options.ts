import type {MasterApi, ReplicateConfig} from '../master/api.js'
import type {ClientMetrics} from '../metrics/client.js'
import type {DataPath} from './data-path.js'

/** How bytes move: `auto` uses shared memory for same-host segments and TCP otherwise; `tcp` always TCP. */
export type TransportMode = 'auto' | 'tcp'

/** Connection state of a MooncakeClient; a `state` event is emitted on every transition. */
export type ClientState = 'connecting' | 'ready' | 'closing' | 'closed'

/** Options of {@link MooncakeClient.connect}. Every field is optional. */
export interface MooncakeClientOptions {
  /**
   * Master address `HOST:PORT`. Ignored when `master` is given.
   * @default process.env.MOONCAKE_MASTER ?? '127.0.0.1:50051'
   */
  masterAddress?: string
  /**
   * An already-connected master to use instead of dialing `masterAddress`: a MasterClient, or an
   * in-process MasterService wrapped with `asyncMaster()`. The client does not close it.
   * @default undefined
   */
  master?: MasterApi
  /** Cluster token (never pass it on a command line). @default process.env.MOONCAKE_TOKEN */
  token?: string
  /** Deadline of each operation (a put, a get, a query...), including retries. @default 30_000 */
  timeoutMs?: number
  /** Deadline of the initial connection to the master. @default min(timeoutMs, 10_000) */
  connectTimeoutMs?: number
  /** `auto`: same-host segments are read and written through shared memory; `tcp`: always TCP. @default 'auto' */
  transport?: TransportMode
  /** Values are moved in slices of this many bytes. @default 4 MiB */
  sliceSize?: number
  /** Slices of one value in flight at once (across replicas). @default 8 */
  maxParallelSlices?: number
  /**
   * Bytes of registered staging memory (allocated once, pre-faulted, reused) through which values
   * that are not in registered memory travel. Bounds the client's memory use: a 4 GiB file is
   * streamed through it slice by slice. @default 64 MiB
   */
  stagingBytes?: number
  /**
   * Bytes of transfers this client keeps in flight at once, over all its operations (more
   * wait their turn): keeps many concurrent large reads from flooding the lanes. @default 64 MiB
   */
  maxInflightBytes?: number
  /** Values of at least this size are read from several replicas in parallel. @default 4 MiB */
  multiSourceThreshold?: number
  /** Identity of this machine, compared with replicas' hostId for same-host reads. @default defaultHostId() (machine-id + boot id) */
  hostId?: string
  /** Identity of this client process (owner of its puts). @default crypto.randomUUID() */
  clientId?: string
  /**
   * Merge concurrent single-key calls issued in the same tick into batch RPCs (like ioredis'
   * auto-pipelining). @default true
   */
  coalesce?: boolean
  /** Batch RPCs of one kind in flight at once; further calls accumulate into the next batch. @default 4 */
  maxBatchesInFlight?: number
  /** Largest number of keys in one coalesced batch RPC. @default 1024 */
  maxBatchSize?: number
  /**
   * Puts with the default placement (one replica, no preferred segment, no soft pin) of values of
   * at most `reserveMaxValue` bytes take their space from ranges the master reserves for this
   * client, this many bytes at a time, and need one commit instead of PutStart + PutEnd each.
   * 0 turns this off. Reserved bytes not used within about 10 s go back to the master. @default 16 MiB
   */
  reserveBytes?: number
  /** Largest value placed in a reservation (see reserveBytes). @default 1 MiB */
  reserveMaxValue?: number
  /** Replication used when a put gives none. @default {replicaNum: 1} */
  defaultReplicateConfig?: ReplicateConfig
  /** Directory for spooling streams of unknown length before a put. @default os.tmpdir() */
  spoolDir?: string
  /**
   * The data path to use (an adapter over the native transfer engine). Injected by tests and by
   * processes that share one engine between a client and segment owners. @default a new engine
   */
  dataPath?: DataPath
  /**
   * Where to record this client's metrics: operations (count, duration, result), value bytes by
   * op and path (local shared memory, TCP, disk file), retried master calls, replica fallbacks,
   * lease renewals; and, for the segments it mounts, their pings, re-mounts and served bytes.
   * Serve it with `startMetricsServer(metrics)` or read `metrics.text()`. Recording costs a few
   * counter increments per operation. @default undefined (nothing is recorded)
   */
  metrics?: ClientMetrics
}

export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  masterAddress: '127.0.0.1:50051',
  timeoutMs: 30_000,
  transport: 'auto' as TransportMode,
  sliceSize: 4 * 2 ** 20,
  maxParallelSlices: 8,
  stagingBytes: 64 * 2 ** 20,
  multiSourceThreshold: 4 * 2 ** 20,
  maxInflightBytes: 64 * 2 ** 20,
  coalesce: true,
  maxBatchesInFlight: 4,
  maxBatchSize: 1024,
  reserveBytes: 16 * 2 ** 20,
  reserveMaxValue: 2 ** 20,
})

/** Options of one put. */
export interface PutOptions extends ReplicateConfig {
  /** Replace an existing value (UpsertStart/End): readers see the old value or the new one. @default false */
  upsert?: boolean
  /** Size of a stream source, when known (else the stream is spooled to a temporary file first). */
  size?: number
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number
}

/** What a put reports. */
export interface PutResult {
  key: string
  size: number
  /** Memory replicas placed (best effort: may be fewer than requested). */
  replicas: number
  requestedReplicas: number
  /** CRC32C of the value. */
  checksum: number
}

export interface GetOptions {
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number
}

export interface RemoveOptions {
  /** Remove even under an unexpired lease. @default false */
  force?: boolean
}
