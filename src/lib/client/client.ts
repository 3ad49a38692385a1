/**
 * MooncakeClient: put/get/remove/query objects of a Mooncake Store.
 *
 * Metadata goes to the master (gRPC, or an in-process MasterService); object bytes move
 * directly between this process and the segment owners through the data path (the native
 * transfer engine). Concurrent single-key calls are merged into batch RPCs.
 */
import {randomUUID} from 'node:crypto'
import {EventEmitter} from 'node:events'
import {tmpdir} from 'node:os'
import {Readable} from 'node:stream'
import {rm} from 'node:fs/promises'

import {MooncakeError, toMooncakeError} from '../errors.js'
import {ERROR_CODE_METADATA} from '../master/grpc-metadata.js'
import type {
  GetReplicaListResult,
  ItemResult,
  ListKeysRequest,
  MasterApi,
  MemoryLocation,
  ObjectInfo,
  PutCommitRequest,
  PutStartRequest,
  PutStartResult,
  RemoveManyResult,
  ReplicateConfig,
} from '../master/api.js'
import {crc32cFold} from './crc32c.js'
import {createDefaultDataPath, type DataPath, type TransferItemResult, type TransferRequest} from './data-path.js'
import {defaultHostId} from './host-id.js'
import {
  BufferSink,
  BufferSource,
  FileSink,
  FileSource,
  fillSink,
  openTempBeside,
  spoolToTempFile,
  StreamSink,
  StreamSource,
  type ReadSink,
  type SliceView,
  type WriteSource,
} from './io.js'
import {CoalescedMaster, withDeadline, type CoalescingStats} from './master-calls.js'
import {
  DEFAULT_CLIENT_OPTIONS,
  type ClientState,
  type GetOptions,
  type MooncakeClientOptions,
  type PutOptions,
  type PutResult,
  type RemoveOptions,
  type TransportMode,
} from './options.js'
import {ReservationPool, type ReservedPlacement} from './reservations.js'
import {StagingPool, type StagingLease} from './staging.js'
import type {ClientMetrics, ClientOp, TransferPath} from '../metrics/client.js'
import {DISK_READ_SLICE, diskReplicas, directSink, readDiskReplica} from '../disk/reader.js'
import type {SegmentOwner, SegmentOwnerOptions} from './segment-owner.js'

const MAX_KEY_BYTES = 4096
/** Smallest chunk of a pipelined batchPut/batchGet (below it, per-RPC costs dominate). */
const MIN_CHUNK = 32
/** The metric op of each public call that run() wraps (calls not listed are not counted). */
const OP_OF: Readonly<Record<string, ClientOp>> = {
  put: 'put',
  batchPut: 'put',
  get: 'get',
  batchGet: 'get',
  remove: 'remove',
  batchRemove: 'remove',
  removeByRegex: 'remove',
  removeAll: 'remove',
  isExist: 'exist',
  batchIsExist: 'exist',
  query: 'query',
  batchQuery: 'query',
  queryByRegex: 'query',
}

/** A closable master (what connectMaster returns). */
interface ClosableMaster extends MasterApi {
  close(): Promise<void> | void
  getAllKeys?(req: ListKeysRequest): AsyncIterable<string>
}

/** Resolved options (every default applied). */
interface Resolved {
  timeoutMs: number
  transport: TransportMode
  sliceSize: number
  maxParallelSlices: number
  stagingBytes: number
  multiSourceThreshold: number
  hostId: string
  clientId: string
  coalesce: boolean
  maxBatchesInFlight: number
  maxBatchSize: number
  reserveBytes: number
  reserveMaxValue: number
  defaultReplicateConfig: ReplicateConfig
  spoolDir: string
  token?: string
  maxInflightBytes: number
  /** @internal tests: renew leases during long reads. */
  leaseRenewal: boolean
  metrics?: ClientMetrics
}

export interface GetToFileResult {
  key: string
  size: number
  file: string
}

export interface ObjectSummary {
  key: string
  size: number
  checksum?: number
  version: number
}

export interface ClientStats {
  /** Reads whose bytes did not match the object's checksum (the read then tried another replica). */
  checksumMismatches: number
  /** Slice transfers that failed on one replica and were retried on another. */
  replicaFailovers: number
  /** Bytes moved by the data path (all transports). */
  transferredBytes: number
  /** Bytes moved through same-host shared memory. */
  memcpyBytes: number
}

export interface MountSegmentOptions {
  /** Bytes contributed. */
  size: number
  /** Unique segment name. @default `HOST:PORT` of the data endpoint */
  name?: string
  /** Address the segment's data server binds. @default '127.0.0.1' */
  host?: string
  /** Port of the data server; 0 picks a free one. @default 0 */
  port?: number
}

export declare interface MooncakeClient {
  on(event: 'state', listener: (state: ClientState, previous: ClientState) => void): this
  on(event: 'error', listener: (err: MooncakeError) => void): this
}

/**
 * A Mooncake Store client. Create it with {@link MooncakeClient.connect}; close it with
 * {@link MooncakeClient.close}. Every failure is a MooncakeError with a `code`.
 *
 * ```ts
 * const client = await MooncakeClient.connect({masterAddress: '127.0.0.1:50051'})
 * await client.put('greeting', Buffer.from('hello'), {replicaNum: 2})
 * const value = await client.get('greeting')
 * await client.close()
 * ```
 */
export class MooncakeClient extends EventEmitter {
  private _state: ClientState = 'connecting'
  private readonly opts: Resolved
  private readonly calls: CoalescedMaster
  private dataPathPromise: Promise<DataPath> | undefined
  private dataPathValue: DataPath | undefined
  private stagingPool: StagingPool | undefined
  private reservations: ReservationPool | undefined
  private readonly ownsDataPath: boolean
  private readonly injectedDataPath: boolean
  private readonly owners = new Map<string, SegmentOwner>()
  private active = 0
  private readonly inflight: ByteBudget
  private readonly counters = {checksumMismatches: 0, replicaFailovers: 0}
  private idleWaiters: Array<() => void> = []

  private constructor(
    readonly master: MasterApi,
    private readonly ownedMaster: ClosableMaster | undefined,
    opts: Resolved,
    dataPath: DataPath | undefined,
  ) {
    super()
    this.opts = opts
    this.calls = new CoalescedMaster(master, {
      coalesce: opts.coalesce,
      maxInFlight: opts.maxBatchesInFlight,
      maxBatchSize: opts.maxBatchSize,
    })
    this.inflight = new ByteBudget(opts.maxInflightBytes)
    this.ownsDataPath = dataPath === undefined
    this.injectedDataPath = dataPath !== undefined
    if (dataPath) {
      this.dataPathValue = dataPath
      this.dataPathPromise = Promise.resolve(dataPath)
    }
  }

  /** Connects to the master (or adopts `options.master`) and returns a ready client. */
  static async connect(options: MooncakeClientOptions = {}): Promise<MooncakeClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_OPTIONS.timeoutMs
    const sliceSize = options.sliceSize ?? DEFAULT_CLIENT_OPTIONS.sliceSize
    if (!Number.isSafeInteger(sliceSize) || sliceSize < 4096) throw new MooncakeError('INVALID_PARAMS', `sliceSize must be at least 4096 bytes (got ${sliceSize})`)
    const stagingBytes = Math.max(options.stagingBytes ?? DEFAULT_CLIENT_OPTIONS.stagingBytes, sliceSize)
    const opts: Resolved = {
      timeoutMs,
      transport: options.transport ?? DEFAULT_CLIENT_OPTIONS.transport,
      sliceSize,
      maxParallelSlices: Math.max(1, options.maxParallelSlices ?? DEFAULT_CLIENT_OPTIONS.maxParallelSlices),
      stagingBytes,
      multiSourceThreshold: options.multiSourceThreshold ?? DEFAULT_CLIENT_OPTIONS.multiSourceThreshold,
      maxInflightBytes: Math.max(sliceSize, options.maxInflightBytes ?? DEFAULT_CLIENT_OPTIONS.maxInflightBytes),
      hostId: options.hostId ?? defaultHostId(),
      clientId: options.clientId ?? randomUUID(),
      coalesce: options.coalesce ?? DEFAULT_CLIENT_OPTIONS.coalesce,
      maxBatchesInFlight: Math.max(1, options.maxBatchesInFlight ?? DEFAULT_CLIENT_OPTIONS.maxBatchesInFlight),
      maxBatchSize: Math.max(1, options.maxBatchSize ?? DEFAULT_CLIENT_OPTIONS.maxBatchSize),
      reserveBytes: options.reserveBytes ?? DEFAULT_CLIENT_OPTIONS.reserveBytes,
      reserveMaxValue: options.reserveMaxValue ?? DEFAULT_CLIENT_OPTIONS.reserveMaxValue,
      defaultReplicateConfig: options.defaultReplicateConfig ?? {replicaNum: 1},
      spoolDir: options.spoolDir ?? tmpdir(),
      token: options.token ?? process.env.MOONCAKE_TOKEN,
      leaseRenewal: (options as {leaseRenewal?: boolean}).leaseRenewal ?? true,
      metrics: options.metrics,
    }
    for (const name of ['reserveBytes', 'reserveMaxValue'] as const) {
      if (!Number.isSafeInteger(opts[name]) || opts[name] < 0) throw new MooncakeError('INVALID_PARAMS', `${name} must be a non-negative integer (got ${opts[name]})`)
    }
    if (opts.transport !== 'auto' && opts.transport !== 'tcp') throw new MooncakeError('INVALID_PARAMS', `transport must be 'auto' or 'tcp' (got ${String(opts.transport)})`)
    let master = options.master
    let owned: ClosableMaster | undefined
    if (!master) {
      const address = options.masterAddress ?? process.env.MOONCAKE_MASTER ?? DEFAULT_CLIENT_OPTIONS.masterAddress
      const connectTimeoutMs = options.connectTimeoutMs ?? Math.min(timeoutMs, 10_000)
      owned = await connectRemoteMaster({address, token: opts.token, timeoutMs, connectTimeoutMs})
      master = owned
    }
    const client = new MooncakeClient(master, owned, opts, options.dataPath)
    client.setState('ready')
    return client
  }

  /** Current state: 'connecting' | 'ready' | 'closing' | 'closed'. */
  get state(): ClientState {
    return this._state
  }

  /** This client's identity (owner of its puts). */
  get clientId(): string {
    return this.opts.clientId
  }

  /** This machine's identity (replicas with the same hostId are read through shared memory). */
  get hostId(): string {
    return this.opts.hostId
  }

  /**
   * Counters of the read and write paths: checksum mismatches and transfer failures seen (each
   * one made a read try another replica), and the data path's byte counts.
   */
  get stats(): ClientStats {
    const dp = this.dataPathValue?.stats?.() ?? {transferredBytes: 0, memcpyBytes: 0}
    return {...this.counters, ...dp}
  }

  /** How many RPCs the coalescing layer sent, per call kind, and how many calls they carried. */
  get coalescingStats(): Readonly<Record<string, CoalescingStats>> {
    return this.calls.stats
  }

  private setState(next: ClientState): void {
    const prev = this._state
    if (prev === next) return
    this._state = next
    this.emit('state', next, prev)
  }

  // ---------------------------------------------------------------- lifecycle helpers

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this._state !== 'ready') {
      throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', `${what}: the client is ${this._state}`)
    }
    this.active++
    const op = this.opts.metrics === undefined ? undefined : OP_OF[what]
    const t0 = op === undefined ? 0 : performance.now()
    try {
      const out = await fn()
      if (op !== undefined) this.opts.metrics!.recordOperation(op, (performance.now() - t0) / 1000)
      return out
    } catch (err) {
      const e = toMooncakeError(err)
      if (op !== undefined) this.opts.metrics!.recordOperation(op, (performance.now() - t0) / 1000, e.code)
      throw e
    } finally {
      this.active--
      if (this.active === 0 && this.idleWaiters.length > 0) {
        for (const w of this.idleWaiters.splice(0)) w()
      }
    }
  }

  private deadline(timeoutMs?: number): number {
    return Date.now() + (timeoutMs ?? this.opts.timeoutMs)
  }

  private rpc<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
    return withDeadline(promise, deadline, what)
  }

  private async dataPath(): Promise<DataPath> {
    if (this.dataPathValue) return this.dataPathValue
    if (!this.dataPathPromise) {
      this.dataPathPromise = (async () => {
        const dp = await createDefaultDataPath({token: this.opts.token, hostId: this.opts.hostId})
        await dp.start()
        this.dataPathValue = dp
        return dp
      })()
      this.dataPathPromise.catch(() => (this.dataPathPromise = undefined))
    }
    return this.dataPathPromise
  }

  private staging(dp: DataPath): StagingPool {
    if (!this.stagingPool) this.stagingPool = new StagingPool(dp, this.opts.stagingBytes, this.opts.sliceSize)
    return this.stagingPool
  }

  // ---------------------------------------------------------------- put

  /** Stores `value` under `key` (a new key; see {@link upsert} to replace). */
  put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    return this.run('put', () => this.putBuffer(key, value, options))
  }

  private async putBuffer(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    checkKey(key)
    checkValue(value)
    const dp = await this.dataPath()
    if (options.upsert !== true && value.length <= this.opts.reserveMaxValue && value.length <= this.opts.sliceSize) {
      const config = this.replicateConfig(options)
      const pool = this.reservationPool(config)
      if (pool !== undefined) {
        const out: ItemResult<PutResult>[] = []
        const rest = await this.putReserved(pool, [{key, value}], [0], config, options, dp, out)
        if (rest.length === 0) {
          const r = out[0]!
          if (r.ok) return r.value
          throw new MooncakeError(r.code, r.message)
        }
      }
    }
    const source = new BufferSource(value, this.staging(dp), dp)
    return this.putSource(key, source, options, dp)
  }

  /** Replaces the value of `key` (or creates it): readers see the old value or the new one, never a mix. */
  upsert(key: string, value: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    return this.put(key, value, {...options, upsert: true})
  }

  /** Stores the contents of a file, streamed slice by slice (the file may be larger than memory). */
  putFile(key: string, file: string, options: PutOptions = {}): Promise<PutResult> {
    return this.run('put', async () => {
      checkKey(key)
      const dp = await this.dataPath()
      const source = await FileSource.open(file, this.staging(dp))
      try {
        if (source.size === 0) throw new MooncakeError('INVALID_PARAMS', `${file} is empty: a value must hold at least 1 byte`)
        return await this.putSource(key, source, options, dp)
      } finally {
        await source.close()
      }
    })
  }

  /**
   * Stores what a stream yields. With `options.size` the stream is consumed slice by slice;
   * without it, it is first spooled to a temporary file (in `spoolDir`) to learn its size.
   */
  putStream(key: string, stream: Readable | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    if (options.size === undefined) {
      return this.run('put', async () => {
        checkKey(key)
        const file = await spoolToTempFile(stream, this.opts.spoolDir)
        try {
          const dp = await this.dataPath()
          const source = await FileSource.open(file, this.staging(dp))
          try {
            if (source.size === 0) throw new MooncakeError('INVALID_PARAMS', 'the stream was empty: a value must hold at least 1 byte')
            return await this.putSource(key, source, options, dp)
          } finally {
            await source.close()
          }
        } finally {
          await rm(file, {force: true})
        }
      })
    }
    return this.run('put', async () => {
      checkKey(key)
      const size = options.size as number
      if (!Number.isSafeInteger(size) || size <= 0) throw new MooncakeError('INVALID_PARAMS', `size must be a positive number of bytes (got ${size})`)
      const dp = await this.dataPath()
      const source = new StreamSource(stream, size, this.staging(dp))
      try {
        return await this.putSource(key, source, options, dp)
      } finally {
        await source.close()
      }
    })
  }

  /** Puts many values; one result per item (one bad key does not fail the others). */
  async batchPut(items: ReadonlyArray<{key: string; value: Uint8Array; options?: PutOptions}>, options: PutOptions = {}): Promise<ItemResult<PutResult>[]> {
    if (this._state !== 'ready') return settleAll(items.map((item) => this.put(item.key, item.value, {...options, ...item.options})))
    return this.run('batchPut', () => this.batchPutPipelined(items, options))
  }

  /**
   * batchPut of small values (one slice each) in pipelined chunks: BatchPutStart, one transfer
   * of every replica of the chunk, BatchPutEnd, with up to maxBatchesInFlight chunks in flight,
   * so one chunk's PutStart travels while another's bytes move. Anything else (upserts, large
   * values, per-item options) takes the single-key path.
   */
  private async batchPutPipelined(items: ReadonlyArray<{key: string; value: Uint8Array; options?: PutOptions}>, options: PutOptions): Promise<ItemResult<PutResult>[]> {
    const n = items.length
    const out: ItemResult<PutResult>[] = new Array(n)
    const fast: number[] = []
    const slow: Promise<void>[] = []
    const limit = this.opts.sliceSize
    const plain = options.upsert !== true
    for (let i = 0; i < n; i++) {
      const item = items[i]
      const v = item.value
      if (plain && item.options === undefined && v instanceof Uint8Array && v.length > 0 && v.length <= limit) {
        try {
          checkKey(item.key)
          fast.push(i)
        } catch (err) {
          out[i] = errorResult(err)
        }
      } else {
        // An item of the batch operation (already counted), not an operation of its own.
        const single = this.run('batchPut item', () => this.putBuffer(item.key, item.value, {...options, ...item.options}))
        slow.push(single.then((value) => void (out[i] = {ok: true, value}), (err) => void (out[i] = errorResult(err))))
      }
    }
    if (fast.length > 0) {
      const dp = await this.dataPath()
      await this.pipelineChunks(fast, (part) => this.putChunk(items, part, options, dp, out))
    }
    await Promise.all(slow)
    return out
  }

  /** Runs `fn` over consecutive chunks of `idx`, at most maxBatchesInFlight at a time; chunk size adapts to the batch. */
  private async pipelineChunks(idx: number[], fn: (part: number[]) => Promise<void>): Promise<void> {
    const depth = this.opts.maxBatchesInFlight
    // Enough chunks to keep every stage busy, none so small that per-RPC costs dominate.
    const chunk = Math.max(Math.min(MIN_CHUNK, idx.length), Math.min(this.opts.maxBatchSize, Math.ceil(idx.length / depth)))
    let next = 0
    const lane = async (): Promise<void> => {
      while (next < idx.length) {
        const part = idx.slice(next, next + chunk)
        next += chunk
        await fn(part)
      }
    }
    const lanes: Promise<void>[] = []
    for (let l = 0; l < Math.min(depth, Math.ceil(idx.length / chunk)); l++) lanes.push(lane())
    await Promise.all(lanes)
  }

  private async putChunk(items: ReadonlyArray<{key: string; value: Uint8Array}>, part: number[], options: PutOptions, dp: DataPath, out: ItemResult<PutResult>[]): Promise<void> {
    const config = this.replicateConfig(options)
    const pool = this.reservationPool(config)
    if (pool !== undefined) {
      part = await this.putReserved(pool, items, part, config, options, dp, out)
      if (part.length === 0) return
    }
    const deadline = this.deadline(options.timeoutMs)
    const {clientId, hostId} = this.opts
    const m = part.length
    const reqs: PutStartRequest[] = new Array(m)
    for (let k = 0; k < m; k++) {
      const item = items[part[k]]
      reqs[k] = {clientId, requestId: randomUUID(), key: item.key, size: item.value.length, config, hostId}
    }
    let starts: ItemResult<PutStartResult>[]
    try {
      starts = await this.rpc(this.calls.putStartMany(reqs), deadline, 'BatchPutStart')
      // Items the master answered UNAVAILABLE (nothing was done: e.g. a new leader whose restored
      // segments are re-mounting) go again, spaced out, within the deadline; the same request
      // ids make every retry idempotent.
      for (let attempt = 0; ; attempt++) {
        const again = retryable(starts, ['UNAVAILABLE'])
        const wait = retryDelayMs(attempt)
        if (again.length === 0 || Date.now() + wait >= deadline) break
        this.opts.metrics?.recordRetry('put', 'UNAVAILABLE')
        if (wait > 0) await sleep(wait)
        const next = await this.rpc(this.calls.putStartMany(again.map((k) => reqs[k])), deadline, 'BatchPutStart')
        for (let j = 0; j < again.length; j++) starts[again[j]] = next[j]
      }
    } catch (err) {
      return fillError(out, part, err)
    }
    // Every replica of every started item, in as few transfers as staging allows.
    const writes: ValueWrite[] = []
    const owner: number[] = []
    const crcs: number[] = new Array(m)
    const locs: MemoryLocation[][] = new Array(m)
    const failed: Array<ItemResult<never> | undefined> = new Array(m)
    for (let k = 0; k < m; k++) {
      const st = starts[k]
      if (!st || !st.ok) {
        out[part[k]] = st ?? {ok: false, code: 'INTERNAL_ERROR', message: 'the master answered a batch with too few results'}
        continue
      }
      const l: MemoryLocation[] = []
      for (const r of st.value.replicas) if (r.type === 'memory' && r.memory) l.push(r.memory)
      locs[k] = l
      if (l.length === 0) {
        failed[k] = {ok: false, code: 'NO_AVAILABLE_HANDLE', message: `the master placed no memory replica for ${reqs[k].key}`}
        continue
      }
      // The engine computes the checksum while it writes the first replica.
      for (let r = 0; r < l.length; r++) {
        writes.push({value: items[part[k]].value, remote: remoteOf(l[r]), crc: r === 0})
        owner.push(k)
      }
    }
    if (writes.length > 0) {
      const results = await this.writeValues(dp, writes, deadline)
      for (let j = 0; j < results.length; j++) {
        const r = results[j]
        const k = owner[j]
        if (r.ok && writes[j].crc) crcs[k] = r.crc!
        if (!r.ok && !failed[k]) failed[k] = {ok: false, code: 'TRANSFER_FAIL', message: `writing to segment ${writes[j].remote.segment} failed: ${r.code}: ${r.message}`}
      }
    }
    const revokes: Array<{clientId: string; key: string}> = []
    const ends: Array<{clientId: string; key: string; checksum: number}> = []
    const endK: number[] = []
    for (let k = 0; k < m; k++) {
      if (!starts[k]?.ok) continue
      const f = failed[k]
      if (f) {
        revokes.push({clientId, key: reqs[k].key})
        out[part[k]] = f
      } else {
        ends.push({clientId, key: reqs[k].key, checksum: crcs[k]})
        endK.push(k)
      }
    }
    const revokeDeadline = Math.max(deadline, Date.now() + 2000)
    const revoking = revokes.length > 0 ? this.rpc(this.calls.putRevokeMany(revokes), revokeDeadline, 'BatchPutRevoke').catch(() => {}) : undefined
    if (ends.length > 0) {
      let res: ItemResult<void>[] | undefined
      try {
        res = await this.rpc(this.calls.putEndMany(ends), deadline, 'BatchPutEnd')
        // One retry after a transport failure: the reply may have been lost; then give up the space.
        const again = retryable(res, ['UNAVAILABLE', 'RPC_FAIL'])
        if (again.length > 0) {
          this.opts.metrics?.recordRetry('put', (res[again[0]] as {code: string}).code)
          const second = await this.rpc(this.calls.putEndMany(again.map((j) => ends[j])), deadline, 'BatchPutEnd')
          const lost: Array<{clientId: string; key: string}> = []
          for (let x = 0; x < again.length; x++) {
            res[again[x]] = second[x]
            if (!second[x].ok) lost.push({clientId, key: ends[again[x]].key})
          }
          if (lost.length > 0) await this.rpc(this.calls.putRevokeMany(lost), revokeDeadline, 'BatchPutRevoke').catch(() => {})
        }
      } catch (err) {
        await this.rpc(this.calls.putRevokeMany(ends.map((x) => ({clientId, key: x.key}))), revokeDeadline, 'BatchPutRevoke').catch(() => {})
        fillError(out, endK.map((k) => part[k]), err)
      }
      if (res) {
        for (let j = 0; j < endK.length; j++) {
          const k = endK[j]
          const r = res[j]
          const st = starts[k] as {ok: true; value: PutStartResult}
          if (!r) out[part[k]] = {ok: false, code: 'INTERNAL_ERROR', message: 'the master answered a batch with too few results'}
          else if (!r.ok) out[part[k]] = r
          else {
            out[part[k]] = {ok: true, value: {key: reqs[k].key, size: reqs[k].size, replicas: locs[k].length, requestedReplicas: st.value.requestedReplicas, checksum: crcs[k]}}
            this.opts.metrics?.recordValueSize('put', reqs[k].size)
          }
        }
      }
    }
    if (revoking) await revoking
  }

  /**
   * Writes values (several writes of one value in a row share its staging copy) in as few
   * transfers as staging room allows; one result per write, with the value's CRC32C where `crc`
   * is set. Values not in registered memory are copied into staging leases, and a write never
   * waits for staging room while holding leases: it first sends what it has and gives them back
   * (chunks in flight at once, each waiting for the others' leases, would otherwise wait forever).
   */
  private async writeValues(dp: DataPath, writes: readonly ValueWrite[], deadline: number): Promise<TransferItemResult[]> {
    const results: TransferItemResult[] = new Array(writes.length)
    let batch: TransferRequest[] = []
    let at: number[] = []
    let leases: StagingLease[] = []
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return
      const sent = batch
      const where = at
      const held = leases
      batch = []
      at = []
      leases = []
      try {
        const res = await this.transfer(dp, sent, deadline)
        for (let j = 0; j < res.length; j++) {
          const r = res[j]
          const w = writes[where[j]]
          results[where[j]] = r.ok && w.crc && r.crc === undefined ? {...r, crc: dp.crc32c(w.value)} : r
        }
      } finally {
        for (const lease of held) this.stagingPool?.release(lease)
      }
    }
    let lastValue: Uint8Array | undefined
    let lastView: Uint8Array | undefined
    for (let w = 0; w < writes.length; w++) {
      const {value, remote, crc} = writes[w]
      let view = value
      if (value === lastValue) view = lastView!
      else if (!dp.isRegistered(value)) {
        const pool = this.staging(dp)
        let lease = pool.acquireNow(value.length)
        if (lease === undefined) {
          await flush()
          const got = pool.acquire(value.length)
          lease = got instanceof Promise ? await got : got
        }
        lease.view.set(value)
        leases.push(lease)
        view = lease.view
      }
      lastValue = value
      lastView = view
      batch.push({op: 'write', local: view, remote, crc})
      at.push(w)
    }
    await flush()
    return results
  }

  /** The reservations puts of `config` may take space from (only the default placement, one replica). */
  private reservationPool(config: ReplicateConfig): ReservationPool | undefined {
    if (this.opts.reserveBytes === 0 || config.replicaNum !== 1 || config.withSoftPin === true) return undefined
    if ((config.preferredSegments?.length ?? 0) > 0 || (config.preferredSegment ?? '') !== '') return undefined
    if (this.reservations === undefined) {
      this.reservations = new ReservationPool({
        reserve: (req) => this.rpc(this.master.reserveSpace(req), this.deadline(), 'ReserveSpace'),
        release: (reservationId) => this.rpc(this.master.releaseSpace({clientId: this.opts.clientId, reservationId}), this.deadline(), 'ReleaseSpace'),
        clientId: this.opts.clientId,
        hostId: this.opts.hostId,
        reserveBytes: this.opts.reserveBytes,
      })
    }
    return this.reservations
  }

  /**
   * Puts the items of a chunk into reserved space: the values written (writeValues), then one
   * BatchPutCommit. Returns the items it found no reserved space for, or whose reservation the
   * master no longer has (they take PutStart).
   */
  private async putReserved(
    pool: ReservationPool,
    items: ReadonlyArray<{key: string; value: Uint8Array}>,
    part: number[],
    config: ReplicateConfig,
    options: PutOptions,
    dp: DataPath,
    out: ItemResult<PutResult>[],
  ): Promise<number[]> {
    const deadline = this.deadline(options.timeoutMs)
    const sameNode = config.preferAllocInSameNode === true
    const limit = this.opts.reserveMaxValue
    const rest: number[] = []
    const mine: number[] = []
    const places: ReservedPlacement[] = []
    for (const i of part) {
      const size = items[i].value.length
      const p = size > limit ? undefined : (pool.tryPlace(size) ?? (await pool.place(size, sameNode)))
      if (p === undefined) rest.push(i)
      else {
        mine.push(i)
        places.push(p)
      }
    }
    const m = mine.length
    if (m === 0) return rest
    const writes: ValueWrite[] = new Array(m)
    for (let k = 0; k < m; k++) writes[k] = {value: items[mine[k]].value, remote: remoteOf(places[k].location), crc: true}
    const {clientId} = this.opts
    const commits: PutCommitRequest[] = []
    const committing: number[] = []
    try {
      const results = await this.writeValues(dp, writes, deadline)
      for (let k = 0; k < m; k++) {
        const r = results[k]
        const item = items[mine[k]]
        if (!r.ok) {
          out[mine[k]] = {ok: false, code: 'TRANSFER_FAIL', message: `writing to segment ${places[k].location.segment} failed: ${r.code}: ${r.message}`}
          continue
        }
        const checksum = r.crc!
        commits.push({clientId, reservationId: places[k].reservationId, key: item.key, offset: places[k].location.offset, size: item.value.length, checksum})
        committing.push(k)
      }
      if (commits.length > 0) {
        const res = await this.rpc(this.calls.putCommitMany(commits), deadline, 'BatchPutCommit')
        // Committing again is safe (an object committed already is recognised): one retry after a transport failure.
        const again = retryable(res, ['UNAVAILABLE', 'RPC_FAIL'])
        // These may have landed: a master that no longer knows them (a new leader that has not
        // got the object back yet) must not send them down the PutStart path, which would find
        // our own object and call it someone else's.
        const uncertain = new Set(again)
        if (again.length > 0) {
          this.opts.metrics?.recordRetry('put', (res[again[0]] as {code: string}).code)
          const second = await this.rpc(this.calls.putCommitMany(again.map((j) => commits[j])), deadline, 'BatchPutCommit')
          for (let x = 0; x < again.length; x++) res[again[x]] = second[x]
        }
        for (let j = 0; j < committing.length; j++) {
          const k = committing[j]
          const r = res[j]
          const c = commits[j]
          if (!r) out[mine[k]] = {ok: false, code: 'INTERNAL_ERROR', message: 'the master answered a batch with too few results'}
          else if (!r.ok) {
            const gone = r.code === 'OBJECT_NOT_FOUND' || r.code === 'SEGMENT_NOT_FOUND'
            // The reservation is gone (a new leader, an unmounted segment, expiry): stop placing
            // there, and put this value again the usual way unless an earlier commit may have landed.
            if (gone) pool.forget(c.reservationId)
            if (gone && !uncertain.has(j)) rest.push(mine[k])
            else out[mine[k]] = r
          } else {
            out[mine[k]] = {ok: true, value: {key: c.key, size: c.size, replicas: 1, requestedReplicas: 1, checksum: c.checksum!}}
            this.opts.metrics?.recordValueSize('put', c.size)
          }
        }
      }
    } catch (err) {
      for (let k = 0; k < m; k++) if (out[mine[k]] === undefined && !rest.includes(mine[k])) out[mine[k]] = errorResult(err)
    } finally {
      for (let k = 0; k < m; k++) pool.settle(places[k], out[mine[k]]?.ok === true)
    }
    return rest
  }

  private replicateConfig(options: PutOptions): ReplicateConfig {
    const base = this.opts.defaultReplicateConfig
    return {
      replicaNum: options.replicaNum ?? base.replicaNum ?? 1,
      withSoftPin: options.withSoftPin ?? base.withSoftPin ?? false,
      preferredSegments: options.preferredSegments ?? base.preferredSegments ?? [],
      preferredSegment: options.preferredSegment ?? base.preferredSegment,
      preferAllocInSameNode: options.preferAllocInSameNode ?? base.preferAllocInSameNode ?? false,
    }
  }

  private async putSource(key: string, source: WriteSource, options: PutOptions, dp: DataPath): Promise<PutResult> {
    const deadline = this.deadline(options.timeoutMs)
    const upsert = options.upsert === true
    const req: PutStartRequest = {
      clientId: this.opts.clientId,
      requestId: randomUUID(),
      key,
      size: source.size,
      config: this.replicateConfig(options),
      hostId: this.opts.hostId,
    }
    const start = await this.putStart(req, upsert, deadline)
    const locations: MemoryLocation[] = []
    for (const r of start.replicas) if (r.type === 'memory' && r.memory) locations.push(r.memory)
    let checksum: number
    try {
      if (locations.length === 0) throw new MooncakeError('NO_AVAILABLE_HANDLE', `the master placed no memory replica for ${key}`)
      checksum = await this.writeSlices(locations, source, deadline, dp)
    } catch (err) {
      const e = toMooncakeError(err, 'TRANSFER_FAIL')
      await this.revoke(key, upsert, deadline).catch(() => {})
      throw e
    }
    const end = {clientId: this.opts.clientId, key, checksum}
    try {
      await this.rpc(upsert ? this.master.upsertEnd(end) : this.calls.putEnd(end), deadline, 'PutEnd')
    } catch (err) {
      const e = toMooncakeError(err)
      if (e.code !== 'UNAVAILABLE' && e.code !== 'RPC_FAIL') throw e
      // One retry after a transport failure: the reply may have been lost.
      this.opts.metrics?.recordRetry('put', e.code)
      try {
        await this.rpc(upsert ? this.master.upsertEnd(end) : this.calls.putEnd(end), deadline, 'PutEnd')
      } catch (err2) {
        await this.revoke(key, upsert, deadline).catch(() => {})
        throw toMooncakeError(err2)
      }
    }
    this.opts.metrics?.recordValueSize('put', source.size)
    return {key, size: source.size, replicas: locations.length, requestedReplicas: start.requestedReplicas, checksum}
  }

  private putStart(req: PutStartRequest, upsert: boolean, deadline: number): Promise<PutStartResult> {
    // One retry after a transport failure: the same request id makes it idempotent when only
    // the reply was lost.
    return this.whileMasterUnavailable('put', deadline, 1, () => this.rpc(upsert ? this.master.upsertStart(req) : this.calls.putStart(req), deadline, 'PutStart'))
  }

  /**
   * Sends a call again while the master itself answers UNAVAILABLE (nothing was done: e.g. a new
   * leader whose restored segments are re-mounting), spaced out within the deadline, and up to
   * `transportRetries` times at once after a transport failure (only where a retry is safe).
   */
  private async whileMasterUnavailable<T>(op: ClientOp, deadline: number, transportRetries: number, send: () => Promise<T>): Promise<T> {
    for (let attempt = 0, transport = 0; ; attempt++) {
      try {
        return await send()
      } catch (err) {
        const e = toMooncakeError(err)
        if (e.code !== 'UNAVAILABLE') throw e
        const answered = answeredByMaster(e)
        if (!answered && transport++ >= transportRetries) throw e
        const wait = answered ? retryDelayMs(attempt) : 0
        if (Date.now() + wait >= deadline) throw e
        this.opts.metrics?.recordRetry(op, e.code)
        if (wait > 0) await sleep(wait)
      }
    }
  }

  private revoke(key: string, upsert: boolean, deadline: number): Promise<void> {
    const req = {clientId: this.opts.clientId, key}
    return this.rpc(upsert ? this.master.upsertRevoke(req) : this.calls.putRevoke(req), Math.max(deadline, Date.now() + 2000), 'PutRevoke')
  }

  /** Writes every slice to every replica (in parallel); returns the CRC32C of the value. */
  private async writeSlices(locations: MemoryLocation[], source: WriteSource, deadline: number, dp: DataPath): Promise<number> {
    const size = source.size
    const slice = this.opts.sliceSize
    const crcs: Array<{crc: number; length: number}> = []
    let failure: MooncakeError | undefined
    const inflight = new Set<Promise<void>>()
    for (let offset = 0; offset < size && !failure; offset += slice) {
      const length = Math.min(slice, size - offset)
      const got = source.read(offset, length)
      const part: SliceView = got instanceof Promise ? await got : got
      const index = crcs.length
      crcs.push({crc: 0, length})
      // The engine computes the slice's checksum while it writes the first replica.
      const requests: TransferRequest[] = locations.map((loc, r) => ({
        op: 'write',
        local: part.view,
        remote: {segment: loc.segment, endpoints: loc.endpoints, hostId: loc.hostId, offset: loc.offset + offset, grant: loc.grant},
        crc: r === 0,
      }))
      const p: Promise<void> = this.transfer(dp, requests, deadline)
        .then((results) => {
          crcs[index].crc = results[0]?.crc ?? dp.crc32c(part.view)
          for (let i = 0; i < results.length; i++) {
            const r = results[i]
            if (!r.ok && !failure) {
              failure = new MooncakeError('TRANSFER_FAIL', `writing to segment ${locations[i].segment} failed: ${r.code}: ${r.message}`, {details: {segment: locations[i].segment, code: r.code}})
            }
          }
        })
        .finally(() => {
          if (part.lease) this.stagingPool?.release(part.lease)
          inflight.delete(p)
        })
      inflight.add(p)
      if (inflight.size >= this.opts.maxParallelSlices) await Promise.race(inflight)
    }
    await Promise.all(inflight)
    if (failure) throw failure
    return crc32cFold(crcs)
  }

  private async transfer(dp: DataPath, requests: TransferRequest[], deadline: number): Promise<TransferItemResult[]> {
    let bytes = 0
    for (const r of requests) bytes += r.local.length
    const wait = this.inflight.acquire(bytes)
    if (wait) await wait
    try {
      const timeoutMs = deadline - Date.now()
      if (timeoutMs <= 0) return requests.map(() => ({ok: false, code: 'TRANSFER_FAIL', message: 'deadline exceeded before the transfer started'}))
      if (this.opts.metrics === undefined) return await dp.transfer(requests, {timeoutMs, transport: this.opts.transport})
      const t0 = performance.now()
      const results = await dp.transfer(requests, {timeoutMs, transport: this.opts.transport})
      this.recordBytes(requests, results, (performance.now() - t0) / 1000)
      return results
    } catch (err) {
      const e = toMooncakeError(err, 'TRANSFER_FAIL')
      return requests.map(() => ({ok: false, code: e.code, message: e.message}))
    } finally {
      this.inflight.release(bytes)
    }
  }

  /** Bytes of the successful requests of one transfer, by op and path (metrics). */
  private recordBytes(requests: TransferRequest[], results: TransferItemResult[], seconds: number): void {
    const m = this.opts.metrics!
    // Sums per (op, path): a batch of many small values is one observation per path.
    const sums = new Map<string, number>()
    for (let i = 0; i < requests.length; i++) {
      const r = results[i]
      if (!r?.ok) continue
      const q = requests[i]
      // The engine says how the bytes moved; a data path that does not is judged by host.
      const local = r.via !== undefined ? r.via === 'memcpy' : this.opts.transport === 'auto' && q.remote.hostId === this.opts.hostId
      const id = `${q.op === 'write' ? 'put' : 'get'}:${local ? 'local' : 'tcp'}`
      sums.set(id, (sums.get(id) ?? 0) + q.local.length)
    }
    for (const [id, n] of sums) {
      const [op, path] = id.split(':') as ['put' | 'get', TransferPath]
      m.recordBytes(op, path, n, seconds)
    }
  }

  // ---------------------------------------------------------------- get

  /** Reads the whole value into a new Buffer. */
  get(key: string, options: GetOptions = {}): Promise<Buffer> {
    return this.run('get', () => this.getBuffer(key, options))
  }

  private async getBuffer(key: string, options: GetOptions): Promise<Buffer> {
    checkKey(key)
    const dp = await this.dataPath()
    let out: Buffer | undefined
    await this.readValue(key, dp, options, (size) => {
      out = Buffer.allocUnsafe(size)
      return new BufferSink(out, this.staging(dp), dp)
    })
    return out as Buffer
  }

  /**
   * Reads the value into `dest` (in place when `dest` is registered memory); returns its size.
   * A value larger than `dest` is BUFFER_OVERFLOW.
   */
  getInto(key: string, dest: Uint8Array, options: GetOptions = {}): Promise<number> {
    return this.run('get', async () => {
      checkKey(key)
      return this.readInto(key, dest, await this.dataPath(), options)
    })
  }

  /** readValue into `dest` (in place when it is registered, through staging otherwise). */
  private readInto(key: string, dest: Uint8Array, dp: DataPath, options: GetOptions): Promise<number> {
    return this.readValue(key, dp, options, (size) => {
      if (size > dest.length) throw tooSmall(key, size, dest)
      return new BufferSink(dest.subarray(0, size), this.staging(dp), dp)
    })
  }

  /** Reads the value into `file`, atomically (a temporary file in the same directory, then rename). */
  getToFile(key: string, file: string, options: GetOptions = {}): Promise<GetToFileResult> {
    return this.run('get', async () => {
      checkKey(key)
      const dp = await this.dataPath()
      const tmp = await openTempBeside(file)
      try {
        const size = await this.readValue(key, dp, options, async (len) => {
          await tmp.handle.truncate(len)
          return new FileSink(tmp.handle, this.staging(dp))
        })
        await tmp.commit()
        return {key, size, file}
      } catch (err) {
        await tmp.abort()
        throw err
      }
    })
  }

  /**
   * The value as a Readable stream (slices are fetched ahead, in parallel, and pushed in order).
   * Errors (e.g. OBJECT_NOT_FOUND) are emitted as 'error' events. A checksum mismatch found at
   * the end of a stream that has already delivered bytes is reported as CHECKSUM_MISMATCH.
   */
  getStream(key: string, options: GetOptions = {}): Readable {
    let sink: StreamSink | undefined
    const out = new Readable({
      highWaterMark: this.opts.sliceSize,
      read: () => sink?.onRead(),
      destroy: (err, cb) => {
        sink?.abort()
        cb(err)
      },
    })
    void this.run('get', async () => {
      checkKey(key)
      const dp = await this.dataPath()
      await this.readValue(key, dp, options, (size) => {
        sink = new StreamSink(out, this.staging(dp))
        ;(out as Readable & {mooncakeSize?: number}).mooncakeSize = size
        out.emit('size', size)
        return sink
      })
    }).then(
      () => out.push(null),
      (err) => out.destroy(toMooncakeError(err)),
    )
    return out
  }

  /** Gets many values; one result per key. */
  batchGet(keys: readonly string[], options: GetOptions = {}): Promise<ItemResult<Buffer>[]> {
    if (this._state !== 'ready') return settleAll(keys.map((key) => this.get(key, options)))
    return this.run('batchGet', () => this.batchGetPipelined(keys, options))
  }

  /**
   * batchGet in pipelined chunks: one BatchGetReplicaList and one transfer per chunk (small
   * values, best replica, into one staging lease), checksums verified. A key this path cannot
   * finish (large value, no memory replica, failed or corrupt read, lease over) takes the
   * single-key path, which tries the other replicas.
   */
  private batchGetPipelined(keys: readonly string[], options: GetOptions): Promise<ItemResult<Buffer>[]> {
    return this.batchRead<Buffer>(keys.length, (i) => checkKey(keys[i]), (part, dp, out, slow) => this.getChunk(keys, part, options, dp, out, slow))
  }

  /**
   * A batch read: items that fail `check` get their error; the rest are read by `readChunk` in
   * pipelined chunks, then whatever it left to the single-key path (`slow`) is awaited.
   */
  private async batchRead<T>(
    n: number,
    check: (i: number) => void,
    readChunk: (part: number[], dp: DataPath, out: ItemResult<T>[], slow: Promise<void>[]) => Promise<void>,
  ): Promise<ItemResult<T>[]> {
    const out: ItemResult<T>[] = new Array(n)
    const fast: number[] = []
    for (let i = 0; i < n; i++) {
      try {
        check(i)
        fast.push(i)
      } catch (err) {
        out[i] = errorResult(err)
      }
    }
    const slow: Promise<void>[] = []
    if (fast.length > 0) {
      const dp = await this.dataPath()
      await this.pipelineChunks(fast, (part) => readChunk(part, dp, out, slow))
    }
    await Promise.all(slow)
    return out
  }

  private slowGet(key: string, options: GetOptions, out: ItemResult<Buffer>[], i: number): Promise<void> {
    // An item of the batch operation (already counted), not an operation of its own.
    return this.run('batchGet item', () => this.getBuffer(key, options)).then(
      (value) => void (out[i] = {ok: true, value}),
      (err) => void (out[i] = errorResult(err)),
    )
  }

  /**
   * The first half of a batch read chunk: one BatchGetReplicaList, and the best replica of each
   * value the fast path can read (small, a memory replica). Keys it settles (not found, ...) get
   * their result in `out`; keys it cannot read itself go to `slowRead`.
   */
  private async chunkSources(
    keys: readonly string[],
    part: number[],
    deadline: number,
    out: ItemResult<unknown>[],
    slowRead: (i: number) => void,
  ): Promise<ChunkSources> {
    const names = part.map((i) => keys[i])
    const sentAt = Date.now()
    const take: number[] = []
    const sources: MemoryLocation[] = []
    const infos: GetReplicaListResult[] = []
    let lists: ItemResult<GetReplicaListResult>[]
    try {
      lists = await this.rpc(this.calls.getReplicaListMany(names), deadline, 'BatchGetReplicaList')
    } catch {
      for (const i of part) slowRead(i)
      return {take, sources, infos, sentAt}
    }
    const limit = this.opts.sliceSize
    for (let k = 0; k < part.length; k++) {
      const r = lists[k]
      if (r && !r.ok && r.code !== 'UNAVAILABLE' && r.code !== 'RPC_FAIL') {
        out[part[k]] = r
        continue
      }
      const first = r?.ok ? firstMemoryReplica(r.value, this.opts.hostId, this.opts.transport) : undefined
      if (!r?.ok || !first || r.value.size > limit) {
        slowRead(part[k])
        continue
      }
      take.push(part[k])
      sources.push(first)
      infos.push(r.value)
    }
    return {take, sources, infos, sentAt}
  }

  /**
   * The second half: every value read into its view in one transfer, checksums verified. Returns
   * the positions (in `take`) read correctly; the others went to `slowRead`, which tries the
   * other replicas.
   */
  private async chunkRead(
    dp: DataPath,
    deadline: number,
    chunk: ChunkSources,
    views: Uint8Array[],
    slowRead: (i: number) => void,
  ): Promise<number[]> {
    const {take, sources, infos, sentAt} = chunk
    const requests: TransferRequest[] = new Array(take.length)
    for (let j = 0; j < take.length; j++) requests[j] = {op: 'read', local: views[j], remote: remoteOf(sources[j]), crc: true}
    const results = await this.transfer(dp, requests, deadline)
    const now = Date.now()
    const good: number[] = []
    for (let j = 0; j < take.length; j++) {
      const info = infos[j]
      const res = results[j]
      if (!res.ok) {
        this.counters.replicaFailovers++
        this.opts.metrics?.recordReplicaFallback(res.code)
        slowRead(take[j])
        continue
      }
      if (info.checksum !== undefined && info.checksum !== null && (res.crc ?? dp.crc32c(views[j])) !== info.checksum >>> 0) {
        this.counters.checksumMismatches++
        this.opts.metrics?.recordReplicaFallback('CHECKSUM_MISMATCH')
        slowRead(take[j])
        continue
      }
      // Bytes read after the lease ran out cannot be trusted: read again.
      if (now > sentAt + info.leaseTtlMs) {
        slowRead(take[j])
        continue
      }
      this.opts.metrics?.recordValueSize('get', views[j].length)
      good.push(j)
    }
    return good
  }

  private async getChunk(keys: readonly string[], part: number[], options: GetOptions, dp: DataPath, out: ItemResult<Buffer>[], slow: Promise<void>[]): Promise<void> {
    const deadline = this.deadline(options.timeoutMs)
    const slowRead = (i: number) => void slow.push(this.slowGet(keys[i], options, out, i))
    const chunk = await this.chunkSources(keys, part, deadline, out, slowRead)
    if (chunk.take.length === 0) return
    // The chunk's values land straight in the result buffer, registered for the time of the
    // transfer (its own memory: allocUnsafeSlow), so no staging lease and no copy per value.
    let total = 0
    for (const info of chunk.infos) total += info.size
    const dest = Buffer.allocUnsafeSlow(total)
    const views: Buffer[] = new Array(chunk.take.length)
    for (let j = 0, at = 0; j < views.length; j++) {
      views[j] = dest.subarray(at, (at += chunk.infos[j].size))
    }
    dp.registerMemory(dest)
    try {
      for (const j of await this.chunkRead(dp, deadline, chunk, views, slowRead)) out[chunk.take[j]] = {ok: true, value: views[j]}
    } finally {
      await dp.unregisterMemory(dest)
    }
  }

  /**
   * Gets many values into the caller's buffers (each value at the start of its `dest`); one
   * result per item: the value's size, or BUFFER_OVERFLOW when `dest` is too small. Values land in
   * registered `dest`s directly (zero copy, as getInto) and nothing is allocated per value, which
   * keeps the garbage collector out of the read path.
   */
  batchGetInto(items: ReadonlyArray<{key: string; dest: Uint8Array}>, options: GetOptions = {}): Promise<ItemResult<number>[]> {
    if (this._state !== 'ready') return settleAll(items.map((x) => this.getInto(x.key, x.dest, options)))
    const keys = items.map((x) => x?.key)
    return this.run('batchGet', () =>
      this.batchRead<number>(
        items.length,
        (i) => {
          checkKey(keys[i])
          if (!(items[i].dest instanceof Uint8Array)) throw new MooncakeError('INVALID_PARAMS', `dest of ${keys[i]} must be a Uint8Array`)
        },
        (part, dp, out, slow) => this.getChunkInto(items, keys, part, options, dp, out, slow),
      ),
    )
  }

  private async getChunkInto(
    items: ReadonlyArray<{key: string; dest: Uint8Array}>,
    keys: readonly string[],
    part: number[],
    options: GetOptions,
    dp: DataPath,
    out: ItemResult<number>[],
    slow: Promise<void>[],
  ): Promise<void> {
    const deadline = this.deadline(options.timeoutMs)
    // An item of the batch operation (already counted), not an operation of its own.
    const slowRead = (i: number) =>
      void slow.push(
        this.run('batchGet item', () => this.readInto(keys[i], items[i].dest, dp, options)).then(
          (size) => void (out[i] = {ok: true, value: size}),
          (err) => void (out[i] = errorResult(err)),
        ),
      )
    const found = await this.chunkSources(keys, part, deadline, out, slowRead)
    // Registered destinations are read into in place; the others (and too small ones) go one by one.
    const chunk: ChunkSources = {take: [], sources: [], infos: [], sentAt: found.sentAt}
    const views: Uint8Array[] = []
    for (let j = 0; j < found.take.length; j++) {
      const i = found.take[j]
      const size = found.infos[j].size
      const dest = items[i].dest
      if (size > dest.length) {
        out[i] = errorResult(tooSmall(keys[i], size, dest))
        continue
      }
      const view = dest.subarray(0, size)
      if (!dp.isRegistered(view)) {
        slowRead(i)
        continue
      }
      chunk.take.push(i)
      chunk.sources.push(found.sources[j])
      chunk.infos.push(found.infos[j])
      views.push(view)
    }
    if (chunk.take.length === 0) return
    for (const j of await this.chunkRead(dp, deadline, chunk, views, slowRead)) out[chunk.take[j]] = {ok: true, value: views[j].length}
  }

  /**
   * The read path: GetReplicaList, best replica first (same host, then others; large values
   * striped over several replicas), checksum verified, next replica on a failed or corrupt read,
   * lease renewed while the read runs. Returns the value's size.
   */
  private async readValue(key: string, dp: DataPath, options: GetOptions, makeSink: (size: number) => ReadSink | Promise<ReadSink>): Promise<number> {
    const deadline = this.deadline(options.timeoutMs)
    let sentAt = Date.now()
    let info = await this.whileMasterUnavailable('get', deadline, 0, () => {
      sentAt = Date.now()
      return this.rpc(this.calls.getReplicaList(key), deadline, 'GetReplicaList')
    })
    const {ordered: memory, local} = orderReplicas(info, this.opts.hostId, this.opts.transport)
    const disks = diskReplicas(info)
    if (memory.length === 0 && disks.length === 0) {
      throw new MooncakeError('REPLICA_IS_NOT_READY', `${key} has no readable memory replica`)
    }
    const size = info.size
    const sink = await makeSink(size)
    const lease = new LeaseKeeper(sentAt + info.leaseTtlMs, info.leaseTtlMs)
    if (this.opts.leaseRenewal) {
      lease.startRenewal(async () => {
        this.opts.metrics?.recordLeaseRenewal()
        sentAt = Date.now()
        const renewed = await this.rpc(this.calls.getReplicaList(key), deadline, 'GetReplicaList (lease renewal)')
        if (renewed.version !== info.version) throw new MooncakeError('LEASE_EXPIRED', `${key} was replaced while it was being read`)
        refreshGrants(memory, renewed)
        info = renewed
        return sentAt + renewed.leaseTtlMs
      })
    }
    try {
      const plans = readPlans(memory, local, size, this.opts.multiSourceThreshold)
      let lastError: MooncakeError | undefined
      for (const plan of plans) {
        if (lastError && !sink.restartable) break
        let crc: number
        try {
          crc = await this.readSlices(plan, memory, size, sink, deadline, dp, lease)
        } catch (err) {
          const e = toMooncakeError(err, 'TRANSFER_FAIL')
          if (e.code !== 'TRANSFER_FAIL' && e.code !== 'CHECKSUM_MISMATCH') throw e
          lastError = e
          continue
        }
        lease.check(key)
        if (info.checksum !== undefined && info.checksum !== null && crc !== info.checksum >>> 0) {
          this.counters.checksumMismatches++
          this.opts.metrics?.recordReplicaFallback('CHECKSUM_MISMATCH')
          lastError = new MooncakeError('CHECKSUM_MISMATCH', `${key}: the bytes read from ${plan.map((r) => r.segment).join(', ')} do not match the checksum written (${crc.toString(16)} != ${(info.checksum >>> 0).toString(16)})`)
          continue
        }
        this.opts.metrics?.recordValueSize('get', size)
        return size
      }
      // FILE_READ (disk tier): no memory replica left, or none could be read.
      for (const d of disks) {
        if (lastError && !sink.restartable) break
        const t0 = performance.now()
        try {
          const direct = sink instanceof BufferSink
          await readDiskReplica(
            {path: d.path, key, size, version: info.version, checksum: info.checksum ?? undefined},
            direct ? directSink(sink.destination) : sink,
            {crc32c: (data, seed) => dp.crc32c(data, seed), sliceSize: direct ? Math.max(this.opts.sliceSize, DISK_READ_SLICE) : this.opts.sliceSize, check: () => lease.check()},
          )
        } catch (err) {
          const e = toMooncakeError(err, 'FILE_READ_FAIL')
          if (e.code === 'CHECKSUM_MISMATCH') this.counters.checksumMismatches++
          if (e.code === 'LEASE_EXPIRED' || e.code === 'INTERRUPTED') throw e
          this.opts.metrics?.recordReplicaFallback(e.code)
          lastError = e
          continue
        }
        lease.check(key)
        if (this.opts.metrics) {
          this.opts.metrics.recordBytes('get', 'file', size, (performance.now() - t0) / 1000)
          this.opts.metrics.recordValueSize('get', size)
        }
        return size
      }
      throw lastError ?? new MooncakeError('TRANSFER_FAIL', `${key}: no replica could be read`)
    } finally {
      lease.stop()
    }
  }

  /**
   * Reads every slice into the sink. Slice i goes to plan[i % plan.length]; when a transfer
   * fails the slice is retried on the other replicas (the failed one is avoided from then on).
   */
  private async readSlices(plan: MemoryLocation[], all: MemoryLocation[], size: number, sink: ReadSink, deadline: number, dp: DataPath, lease: LeaseKeeper): Promise<number> {
    const bad = new Set<MemoryLocation>()
    const options = {sliceSize: this.opts.sliceSize, parallel: this.opts.maxParallelSlices, crc32c: (data: Uint8Array) => dp.crc32c(data), check: () => lease.check()}
    return fillSink(sink, size, options, async (i, offset, view) => {
      const preferred = plan[i % plan.length]
      const order = [preferred, ...plan.filter((r) => r !== preferred), ...all.filter((r) => !plan.includes(r))]
      let lastErr: ItemResult<void> | undefined
      for (const loc of order) {
        if (bad.has(loc) && order.some((r) => !bad.has(r))) continue
        const [res] = await this.transfer(dp, [{op: 'read', local: view, remote: {segment: loc.segment, endpoints: loc.endpoints, hostId: loc.hostId, offset: loc.offset + offset, grant: loc.grant}, crc: true}], deadline)
        if (res.ok) return res.crc
        lastErr = res
        bad.add(loc)
        this.counters.replicaFailovers++
        this.opts.metrics?.recordReplicaFallback(res.code)
      }
      const why = lastErr && !lastErr.ok ? `${lastErr.code}: ${lastErr.message}` : 'no replica left'
      throw new MooncakeError('TRANSFER_FAIL', `reading bytes ${offset}..${offset + view.length} failed on every replica (${why})`)
    })
  }

  // ---------------------------------------------------------------- remove

  /** Removes `key`; OBJECT_HAS_LEASE while a reader's lease runs unless `force`. */
  remove(key: string, options: RemoveOptions = {}): Promise<void> {
    return this.run('remove', async () => {
      checkKey(key)
      await this.rpc(this.master.remove({key, force: options.force}), this.deadline(), 'Remove')
    })
  }

  /** Removes many keys; one result per key. */
  batchRemove(keys: readonly string[], options: RemoveOptions = {}): Promise<ItemResult<void>[]> {
    return this.run('batchRemove', async () => this.rpc(this.master.batchRemove([...keys], options.force), this.deadline(), 'BatchRemove'))
  }

  /** Removes every key matching `regex` (ECMAScript, unanchored search); leased objects are skipped unless `force`. */
  removeByRegex(regex: string, options: RemoveOptions & {dryRun?: boolean} = {}): Promise<RemoveManyResult> {
    return this.run('removeByRegex', async () => {
      checkRegex(regex)
      return this.rpc(this.master.removeByRegex({regex, force: options.force, dryRun: options.dryRun}), this.deadline(), 'RemoveByRegex')
    })
  }

  /** Removes every object; leased objects are skipped unless `force`. */
  removeAll(options: RemoveOptions & {dryRun?: boolean} = {}): Promise<RemoveManyResult> {
    return this.run('removeAll', async () => this.rpc(this.master.removeAll({force: options.force, dryRun: options.dryRun}), this.deadline(), 'RemoveAll'))
  }

  // ---------------------------------------------------------------- queries

  /** True when `key` has a COMPLETE replica (grants a read lease, as the original). */
  isExist(key: string): Promise<boolean> {
    return this.run('isExist', async () => {
      checkKey(key)
      return this.rpc(this.calls.existKey(key), this.deadline(), 'ExistKey')
    })
  }

  batchIsExist(keys: readonly string[]): Promise<boolean[]> {
    return this.run('batchIsExist', async () => {
      for (const k of keys) checkKey(k)
      return this.rpc(this.master.batchExistKey([...keys]), this.deadline(), 'BatchExistKey')
    })
  }

  /** Metadata of `key` (no lease); OBJECT_NOT_FOUND when missing. */
  query(key: string): Promise<ObjectInfo> {
    return this.run('query', async () => {
      checkKey(key)
      return this.rpc(this.calls.query(key), this.deadline(), 'Query')
    })
  }

  batchQuery(keys: readonly string[]): Promise<ItemResult<ObjectInfo>[]> {
    return this.run('batchQuery', async () => this.rpc(this.master.batchQuery([...keys]), this.deadline(), 'BatchQuery'))
  }

  queryByRegex(regex: string): Promise<ObjectInfo[]> {
    return this.run('queryByRegex', async () => {
      checkRegex(regex)
      return this.rpc(this.master.queryByRegex(regex), this.deadline(), 'QueryByRegex')
    })
  }

  /**
   * Every key of a readable object (optionally filtered), streamed page by page in a stable
   * order: works with millions of keys in constant memory.
   */
  async *getAllKeys(options: {prefix?: string; regex?: string; after?: string; limit?: number; pageSize?: number} = {}): AsyncGenerator<string> {
    if (this._state !== 'ready') throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', `getAllKeys: the client is ${this._state}`)
    const metrics = this.opts.metrics
    if (metrics === undefined) {
      yield* this.listKeys(options)
      return
    }
    const t0 = performance.now()
    let result = 'ok'
    try {
      yield* this.listKeys(options)
    } catch (err) {
      const e = toMooncakeError(err)
      result = e.code
      throw e
    } finally {
      // A listing the caller stopped early counts as ok.
      metrics.recordOperation('list', (performance.now() - t0) / 1000, result)
    }
  }

  private async *listKeys(options: {prefix?: string; regex?: string; after?: string; limit?: number; pageSize?: number}): AsyncGenerator<string> {
    if (options.regex !== undefined) checkRegex(options.regex)
    const streaming = (this.master as Partial<ClosableMaster>).getAllKeys
    if (typeof streaming === 'function') {
      yield* streaming.call(this.master, {prefix: options.prefix, regex: options.regex, after: options.after, limit: options.limit, pageSize: options.pageSize})
      return
    }
    let after = options.after
    let left = options.limit ?? Number.POSITIVE_INFINITY
    while (left > 0) {
      const limit = Math.min(options.pageSize ?? 10_000, left)
      const page = await this.rpc(this.master.listKeys({prefix: options.prefix, regex: options.regex, after, limit}), this.deadline(), 'ListKeys')
      for (const k of page.keys) yield k
      left -= page.keys.length
      if (page.next === undefined || page.keys.length === 0) return
      after = page.next
    }
  }

  // ---------------------------------------------------------------- memory and segments

  /** Registers `buffer` so that puts from it and gets into it move bytes in place (no staging copy). */
  registerLocalMemory(buffer: Uint8Array): Promise<void> {
    return this.run('registerLocalMemory', async () => {
      if (buffer.length === 0) throw new MooncakeError('INVALID_PARAMS', 'cannot register an empty buffer')
      const dp = await this.dataPath()
      dp.registerMemory(buffer)
    })
  }

  /** Unregisters `buffer`, waiting for transfers in flight on it. */
  unregisterLocalMemory(buffer: Uint8Array): Promise<void> {
    return this.run('unregisterLocalMemory', async () => {
      const dp = await this.dataPath()
      await dp.unregisterMemory(buffer)
    })
  }

  /**
   * Contributes `size` bytes of this process' memory to the cluster (the client then serves
   * them until {@link unmountSegment} or close). Returns the segment's name.
   */
  mountSegment(options: MountSegmentOptions): Promise<string> {
    return this.run('mountSegment', async () => {
      const {SegmentOwner} = await import('./segment-owner.js')
      // The owner gets its own engine (with a data server); this client's engine is client-only.
      const ownerOptions: SegmentOwnerOptions = {
        master: this.master,
        size: options.size,
        name: options.name,
        host: options.host,
        port: options.port,
        hostId: this.opts.hostId,
        token: this.opts.token,
        dataPath: this.injectedDataPath ? this.dataPathValue : undefined,
        metrics: this.opts.metrics,
      }
      const owner = await SegmentOwner.start(ownerOptions)
      this.owners.set(owner.name, owner)
      owner.once('closed', () => this.owners.delete(owner.name))
      return owner.name
    })
  }

  /** Unmounts a segment this client mounted and frees its memory. */
  unmountSegment(name: string): Promise<void> {
    return this.run('unmountSegment', async () => {
      const owner = this.owners.get(name)
      if (!owner) throw new MooncakeError('SEGMENT_NOT_FOUND', `this client has not mounted a segment named ${name}`)
      this.owners.delete(name)
      await owner.close()
    })
  }

  /** Waits for operations in flight, unmounts this client's segments and releases everything. Idempotent. */
  async close(): Promise<void> {
    if (this._state === 'closed' || this._state === 'closing') {
      if (this._state === 'closing') await new Promise<void>((resolve) => this.once('state', () => resolve()))
      return
    }
    this.setState('closing')
    if (this.active > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, this.opts.timeoutMs).unref()),
      ])
    }
    for (const owner of [...this.owners.values()]) await owner.close().catch(() => {})
    this.owners.clear()
    await this.reservations?.close()
    await this.stagingPool?.close()
    if (this.ownsDataPath && this.dataPathValue) await this.dataPathValue.close().catch(() => {})
    if (this.ownedMaster) await Promise.resolve(this.ownedMaster.close()).catch(() => {})
    this.setState('closed')
  }
}

// ------------------------------------------------------------------ helpers

async function connectRemoteMaster(options: {address: string; token?: string; timeoutMs: number; connectTimeoutMs: number}): Promise<ClosableMaster> {
  const mod = (await import('./master-client.js')) as unknown as {connectMaster(o: typeof options): Promise<ClosableMaster>}
  try {
    return await mod.connectMaster(options)
  } catch (err) {
    throw toMooncakeError(err, 'UNAVAILABLE')
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new MooncakeError('INVALID_PARAMS', 'a key must be a non-empty string')
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new MooncakeError('INVALID_PARAMS', `a key holds at most ${MAX_KEY_BYTES} UTF-8 bytes`)
  }
}

function checkValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array)) throw new MooncakeError('INVALID_PARAMS', 'a value must be a Buffer or Uint8Array')
  if (value.length === 0) throw new MooncakeError('INVALID_PARAMS', 'a value must hold at least 1 byte')
}

function checkRegex(regex: string): void {
  if (typeof regex !== 'string' || regex.length === 0) throw new MooncakeError('INVALID_PARAMS', 'a regex must be a non-empty string')
  try {
    new RegExp(regex, 'u')
  } catch {
    try {
      new RegExp(regex)
    } catch (err) {
      throw new MooncakeError('INVALID_PARAMS', `bad regex ${JSON.stringify(regex)}: ${(err as Error).message}`)
    }
  }
}

/** COMPLETE memory replicas, same-host ones first (when shared memory may be used), master order otherwise. */
function orderReplicas(info: GetReplicaListResult, hostId: string, transport: TransportMode): {ordered: MemoryLocation[]; local: number} {
  const local: MemoryLocation[] = []
  const remote: MemoryLocation[] = []
  for (const r of info.replicas) {
    if (r.type !== 'memory' || r.status !== 'COMPLETE' || !r.memory) continue
    if (transport === 'auto' && r.memory.hostId === hostId) local.push(r.memory)
    else remote.push(r.memory)
  }
  return {ordered: [...local, ...remote], local: local.length}
}

/** Renewed reads carry fresh grants (they expire with the lease): update the locations in use. */
function refreshGrants(locations: MemoryLocation[], renewed: GetReplicaListResult): void {
  for (const r of renewed.replicas) {
    const m = r.memory
    if (!m?.grant) continue
    const loc = locations.find((l) => l.segment === m.segment && l.offset === m.offset)
    if (loc) loc.grant = m.grant
  }
}

/**
 * The order in which replicas are tried. A large value is first striped over several replicas
 * (the same-host ones only when there are any: a local copy beats the network); then each
 * replica alone, best first, so that a corrupt replica is found and skipped.
 */
function readPlans(ordered: MemoryLocation[], local: number, size: number, threshold: number): MemoryLocation[][] {
  const plans: MemoryLocation[][] = []
  if (size >= threshold) {
    const stripe = local > 0 ? ordered.slice(0, local) : ordered
    if (stripe.length > 1) plans.push(stripe)
  }
  for (const r of ordered) plans.push([r])
  return plans
}

/**
 * Tracks a read lease measured from the request's send time (as the original) and renews it
 * at half its TTL while the read runs. A read that ends after the deadline fails with
 * LEASE_EXPIRED: the space may already hold another object.
 */
class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private renewError: MooncakeError | undefined

  constructor(
    private deadline: number,
    private readonly ttlMs: number,
  ) {}

  startRenewal(renew: () => Promise<number>): void {
    const schedule = () => {
      if (this.stopped) return
      const delay = Math.max(10, (this.deadline - Date.now()) / 2)
      this.timer = setTimeout(() => {
        renew().then(
          (next) => {
            this.deadline = Math.max(this.deadline, next)
            schedule()
          },
          (err) => {
            const e = toMooncakeError(err)
            if (e.code === 'LEASE_EXPIRED') this.renewError = e
            else schedule() // try again; the deadline still holds
          },
        )
      }, delay)
      this.timer.unref?.()
    }
    if (this.ttlMs > 0) schedule()
  }

  check(key?: string): void {
    if (this.renewError) throw this.renewError
    if (key !== undefined && Date.now() > this.deadline) {
      throw new MooncakeError('LEASE_EXPIRED', `the read of ${key} finished after its lease deadline; its bytes cannot be trusted`)
    }
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
  }
}

/** Bounds the bytes of transfers in flight (a transfer larger than the budget runs alone). FIFO. */
class ByteBudget {
  private used = 0
  private readonly waiters: Array<{bytes: number; resolve: () => void}> = []

  constructor(private readonly limit: number) {}

  acquire(bytes: number): Promise<void> | undefined {
    if (this.waiters.length === 0 && (this.used === 0 || this.used + bytes <= this.limit)) {
      this.used += bytes
      return undefined
    }
    return new Promise<void>((resolve) => this.waiters.push({bytes, resolve}))
  }

  release(bytes: number): void {
    this.used -= bytes
    while (this.waiters.length > 0) {
      const head = this.waiters[0]
      if (this.used !== 0 && this.used + head.bytes > this.limit) break
      this.waiters.shift()
      this.used += head.bytes
      head.resolve()
    }
  }
}

/** One write of writeValues: `value` to `remote`, its CRC32C computed on the way if `crc`. */
interface ValueWrite {
  value: Uint8Array
  remote: TransferRequest['remote']
  crc: boolean
}

/** Where a transfer writes or reads, from a replica's location. */
function remoteOf(loc: MemoryLocation): TransferRequest['remote'] {
  return {segment: loc.segment, endpoints: loc.endpoints, hostId: loc.hostId, offset: loc.offset, grant: loc.grant}
}

function tooSmall(key: string, size: number, dest: Uint8Array): MooncakeError {
  return new MooncakeError('BUFFER_OVERFLOW', `the value of ${key} holds ${size} bytes; the buffer only ${dest.length}`)
}

/** The values of a batch-read chunk the fast path reads: their items, best replicas and replica lists. */
interface ChunkSources {
  take: number[]
  sources: MemoryLocation[]
  infos: GetReplicaListResult[]
  /** When the replica lists were asked for (their leases count from then). */
  sentAt: number
}

function errorResult(err: unknown): {ok: false; code: MooncakeError['code']; message: string} {
  const e = toMooncakeError(err)
  return {ok: false, code: e.code, message: e.message}
}

/** Retries of a call the master answered UNAVAILABLE: at once, then 250 ms doubling to 1 s. */
function retryDelayMs(attempt: number): number {
  return attempt === 0 ? 0 : Math.min(1000, 125 << Math.min(attempt, 3))
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the master's own logic answered this error (not a transport failure). */
function answeredByMaster(e: MooncakeError): boolean {
  const md = (e.cause as {metadata?: {get(k: string): unknown[]}} | undefined)?.metadata
  return md !== undefined && md.get(ERROR_CODE_METADATA).length > 0
}

/** Indexes of the results that failed with one of `codes`. */
function retryable(results: ItemResult<unknown>[], codes: string[]): number[] {
  const out: number[] = []
  for (let i = 0; i < results.length; i++) {
    const r = results[i]
    if (r && !r.ok && codes.includes(r.code)) out.push(i)
  }
  return out
}

function fillError(out: ItemResult<unknown>[], at: number[], err: unknown): void {
  const e = errorResult(err)
  for (const i of at) out[i] = e
}

/** The replica a small value is read from: the first of orderReplicas (same host first). */
function firstMemoryReplica(info: GetReplicaListResult, hostId: string, transport: TransportMode): MemoryLocation | undefined {
  let remote: MemoryLocation | undefined
  for (const r of info.replicas) {
    if (r.type !== 'memory' || r.status !== 'COMPLETE' || !r.memory) continue
    if (transport === 'auto' && r.memory.hostId === hostId) return r.memory
    remote ??= r.memory
  }
  return remote
}

async function settleAll<T>(promises: Promise<T>[]): Promise<ItemResult<T>[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((s): ItemResult<T> => (s.status === 'fulfilled' ? {ok: true, value: s.value} : errorResult(s.reason)))
}
