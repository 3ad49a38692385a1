/**
 * Public types and options of the P2P store (SPEC P1-P6): master-less sharing of large payloads
 * (checkpoints) between peers, with metadata in etcd and bytes on the native transfer engine.
 */

/** A payload part: bytes already in memory, or a file read (streamed) at register time. */
export type P2PSource = Buffer | {file: string}

/**
 * Where a downloaded part goes: a caller buffer of the registered size, or a file written
 * atomically (temporary file, fsync, rename); a file's `size`, when given, is checked too.
 */
export type P2PDestination = Buffer | {file: string; size?: number}

/** What `list` returns for each payload (the original's PayloadInfo). */
export interface PayloadInfo {
  name: string
  maxShardSize: number
  totalSize: number
  sizeList: number[]
}

/** The payload record stored at `mooncake/<cluster>/p2p/payloads/<name>`. */
export interface PayloadRecord extends PayloadInfo {
  /** Random id of this registration; holder entries name it, so a re-registered name never mixes bytes. */
  id: string
  /** Number of shards (shards never span two parts). */
  shardCount: number
  /** CRC32C of every shard, in shard order, when the owner computed them. */
  shardCrcs?: number[]
  /** Names of the parts (e.g. the file names given to `p2p register`), for `p2p get` into a directory. */
  partNames?: string[]
  /** Peer that registered the payload. */
  owner: string
  /** Unix ms at registration. */
  createdAt: number
  /** etcd create revision of the record (filled in when read). */
  revision?: string
}

/** One shard of a payload: a byte range of one part. */
export interface ShardLayout {
  index: number
  /** Index of the part (source or destination) the shard belongs to. */
  part: number
  /** Offset inside the part. */
  partOffset: number
  /** Offset inside the whole payload (= offset inside a replica's segment). */
  offset: number
  length: number
}

/**
 * A holder entry (`.../holders/<name>/<peer>`), put under the holder's lease: which shards of the
 * payload the peer serves and where they are in its segment.
 */
export interface HolderEntry {
  peer: string
  endpoints: string[]
  segment: string
  /** Offset of the payload's first byte inside the segment. */
  base: number
  /** 'all', or a base64 bitmap of the shards held (bit i%8 of byte i>>3 is shard i). */
  shards: 'all' | string
  /** Number of shards held. */
  count: number
  /**
   * Base64 bitmap of the shards the peer is downloading right now (claims): others prefer
   * different shards, so the seeder's uplink is not spent twice on the same bytes.
   */
  pending?: string
  /** Reads the peer has in flight, by holder peer: others add them up to see each holder's load. */
  reading?: Record<string, number>
  /** Read grant for the payload's range of the segment, when the engine uses grants (hex). */
  grant?: string
  /** Id of the payload registration this replica belongs to. */
  payloadId: string
}

/** The peer record (`.../peers/<peer>`), put under the peer's lease. */
export interface PeerRecord {
  peer: string
  endpoints: string[]
  pid: number
  host: string
  startedAt: number
}

export interface P2PStoreOptions {
  /** etcd endpoints (`host:port`, comma-separated string or list). */
  etcd: string[] | string
  /** Namespace of the etcd keys. @default 'mooncake_cluster' */
  clusterId?: string
  /** Name of this peer, unique among live peers of the cluster. @default `${hostname}-${pid}` */
  peerName?: string
  /** Address the data server binds. @default '127.0.0.1' */
  host?: string
  /** Port of the data server; 0 picks a free one. @default 0 */
  port?: number
  /** Address other peers use to reach this one, when it differs from host (e.g. 0.0.0.0 binds). */
  advertiseHost?: string
  /** Cluster token (MOONCAKE_TOKEN); authenticates data connections. @default undefined */
  token?: string
  /** Allow binding a non-loopback address without a token. @default false */
  insecure?: boolean
  /**
   * 'auto' copies through shared memory from peers on the same host and uses TCP otherwise;
   * 'tcp' always uses the network. @default 'auto'
   */
  transport?: 'auto' | 'tcp'
  /**
   * NIC priority matrix of the original (JSON). Accepted for compatibility and ignored: the TCP
   * engine has no NIC choice. @default undefined
   */
  nicPriorityMatrix?: string
  /** TTL of the peer's etcd lease (peer and holder keys vanish this long after a crash). @default 10_000 */
  leaseTtlMs?: number
  /** Shards downloaded at the same time by one getReplica. @default 4 */
  concurrency?: number
  /** Most reads in flight towards one holder, all downloaders together (as published). @default 4 */
  maxReadsPerHolder?: number
  /** Deadline of one shard read from one holder. @default 60_000 */
  readTimeoutMs?: number
  /** How long unregister/deleteReplica wait for reads in flight before releasing memory. @default 2_000 */
  drainMs?: number
  /** Compute and verify CRC32C per shard. @default true */
  checksums?: boolean
  /** Bytes read per step when a file is streamed into a segment. @default 8 MiB */
  fileChunkSize?: number
  /** Overrides the data plane (tests, custom transports). @default the native engine */
  dataPlane?: import('./engine.js').DataPlane
  /** Called with non-fatal events (retries, lease re-grants) for logging. */
  onEvent?: (event: P2PEvent) => void
}

export interface RegisterOptions {
  /** Shard size: the unit of download and of re-serving. @default 64 MiB */
  maxShardSize?: number
  /** Opaque location label of the original (NIC choice); accepted and ignored. */
  location?: string
  /** A name per part (plain file names), recorded so downloads into a directory can reuse them. */
  partNames?: string[]
}

export interface GetReplicaOptions {
  /** Shards in flight at once (overrides the store's option). */
  concurrency?: number
  /**
   * Deadline of the whole download in ms. @default undefined (none; stallTimeoutMs still applies)
   */
  timeoutMs?: number
  /** Fail when no shard has landed for this long (all holders failing or gone). @default 30_000 */
  stallTimeoutMs?: number
  /** Progress callback: bytes landed so far, total bytes. */
  onProgress?: (done: number, total: number) => void
  /**
   * Serve the shards to other peers as they land and after the download. False makes a
   * download that serves nobody (the single-source baseline of the benchmark). @default true
   */
  advertise?: boolean
  /** Aborts the download (the error is INTERRUPTED). */
  signal?: AbortSignal
}

export interface GetReplicaResult {
  name: string
  bytes: number
  seconds: number
  /** Bytes fetched from each holder, by peer name. */
  bytesByHolder: Record<string, number>
  /** Shard reads that failed and were retried elsewhere. */
  retries: number
}

export type P2PEvent =
  | {type: 'retry'; name: string; shard: number; holder: string; error: string; attempt: number}
  | {type: 'lease-regranted'; peer: string}
  | {type: 'control'; op: string; name: string; from: string; ok: boolean; error?: string}
  | {type: 'released'; name: string; reason: 'unregister' | 'delete-replica' | 'close'}
  | {type: 'warning'; message: string}
