/**
 * Options of the master, one field per row of SPEC's configuration table.
 * Every duration is in milliseconds; flags and the config file accept the duration grammar.
 */
export interface MasterServiceOptions {
  /** Read lease granted by GetReplicaList (single, batch, regex) and ExistKey. @default 10_000 */
  leaseTtlMs: number
  /** Soft-pin lifetime from the moment an object becomes readable. @default 1_800_000 (30 min) */
  softPinTtlMs: number
  /** Upper bound for softPinTtlMs; a larger softPinTtlMs is refused at start. @default 86_400_000 (24 h) */
  maxSoftPinTtlMs: number
  /** Whether eviction may take soft-pinned objects in its second pass. @default true */
  allowEvictSoftPinnedObjects: boolean
  /** Fraction of evictable objects (by count) evicted per eviction round. @default 0.05 */
  evictionRatio: number
  /** used/capacity above which eviction runs. @default 0.95 (the seed's value; the original's code uses 0.90) */
  evictionHighWatermarkRatio: number
  /** A segment owner silent for this long is dead and its segments are unmounted. @default 10_000 */
  clientTtlMs: number
  /** An unfinished PutStart keeps its key busy this long, then may be preempted. @default 30_000 */
  putStartDiscardTimeoutMs: number
  /** Space of an unfinished PutStart is freed after this long; must exceed the discard timeout. @default 600_000 */
  putStartReleaseTimeoutMs: number
  /** Disk tier root; every object also gets a disk replica under rootFsDir/clusterId. @default undefined (off) */
  rootFsDir?: string
  /** Namespace of etcd keys and disk directories. @default 'mooncake_cluster' */
  clusterId: string
  /** Bytes the disk tier's files may take; the oldest files are evicted beyond it. @default undefined (no quota) */
  diskQuota?: number
  /** Number of metadata shards (by key hash). @default 1024 */
  shardCount: number
}

export interface MasterServerOptions extends MasterServiceOptions {
  /** gRPC bind address. Another address than loopback needs a token or `insecure`. @default '127.0.0.1' */
  host: string
  /** gRPC port; 0 picks a free one (the ready line says which). @default 50051 */
  port: number
  /** HTTP port for /metrics, /health and admin endpoints; 0 picks a free one. @default 9003 */
  metricsPort: number
  /** etcd endpoints; when set the master joins the HA election. @default undefined */
  etcd?: string[]
  /** etcd lease TTL of the leader key. @default 5_000 */
  haLeaseTtlMs: number
  /** Address published for clients when leader (HOST:PORT). @default `${host}:${port}` */
  advertise?: string
  /** Directory of the metadata journal of a single master. @default undefined (no journal) */
  dataDir?: string
  /** Cluster token (from MOONCAKE_TOKEN or MOONCAKE_TOKEN_FILE, never a flag). @default undefined */
  token?: string
  /** Allow binding a non-loopback address without a token. @default false */
  insecure: boolean
  /**
   * TLS of the gRPC and HTTP ports (PEM contents): certificate chain and key; with `ca`, clients
   * must present a certificate signed by it (mTLS). @default undefined (plaintext)
   */
  tls?: MasterTls
}

/** PEM contents (not paths) of the master's TLS material. */
export interface MasterTls {
  cert: string | Buffer
  key: string | Buffer
  ca?: string | Buffer
}

export const DEFAULT_MASTER_SERVICE_OPTIONS: Readonly<MasterServiceOptions> = Object.freeze({
  leaseTtlMs: 10_000,
  softPinTtlMs: 30 * 60_000,
  maxSoftPinTtlMs: 24 * 3_600_000,
  allowEvictSoftPinnedObjects: true,
  evictionRatio: 0.05,
  evictionHighWatermarkRatio: 0.95,
  clientTtlMs: 10_000,
  putStartDiscardTimeoutMs: 30_000,
  putStartReleaseTimeoutMs: 600_000,
  rootFsDir: undefined,
  clusterId: 'mooncake_cluster',
  diskQuota: undefined,
  shardCount: 1024,
})

export const DEFAULT_MASTER_SERVER_OPTIONS: Readonly<MasterServerOptions> = Object.freeze({
  ...DEFAULT_MASTER_SERVICE_OPTIONS,
  host: '127.0.0.1',
  port: 50051,
  metricsPort: 9003,
  etcd: undefined,
  haLeaseTtlMs: 5_000,
  advertise: undefined,
  dataDir: undefined,
  token: undefined,
  insecure: false,
})
