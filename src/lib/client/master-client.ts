/**
 * The master over gRPC: MasterApi with a deadline on every call, the server's ErrorCodes mapped
 * back to MooncakeError, transport failures turned into UNAVAILABLE with a useful message, signed
 * calls when a token is set, and one retry of idempotent calls after a dropped connection.
 */
import {setTimeout as sleep} from 'node:timers/promises'

import * as grpc from '@grpc/grpc-js'
import type {MethodDefinition} from '@grpc/proto-loader'

import {
  type GetReplicaListResult,
  type ItemResult,
  type ListKeysPage,
  type ListKeysRequest,
  type MasterApi,
  type MountSegmentRequest,
  type MountSegmentResult,
  type ObjectInfo,
  type PingRequest,
  type PingResult,
  PROTOCOL_VERSION,
  type PutEndRequest,
  type PutCommitRequest,
  type PutRevokeRequest,
  type ReleaseSpaceRequest,
  type ReserveSpaceRequest,
  type ReserveSpaceResult,
  type PutStartRequest,
  type PutStartResult,
  type ReMountSegmentRequest,
  type RemoveAllRequest,
  type RemoveByRegexRequest,
  type RemoveManyResult,
  type RemoveRequest,
  type SegmentInfo,
  type SegmentUsage,
  type ServiceReadyResult,
  type MasterStats,
  type UnmountSegmentRequest,
} from '../master/api.js'
import {MooncakeError} from '../errors.js'
import {CallSigner} from '../master/grpc-auth.js'
import * as codec from '../master/grpc-codec.js'
import {
  decodeBatchGetReplicaListResults,
  decodeBatchPutStartResults,
  decodeBatchVoidResults,
  decodeReplicaListResponse,
  encodeBatchPutCommitRequest,
  encodeBatchPutEndRequest,
  encodeBatchPutStartRequest,
  NotPlain,
} from '../master/grpc-batch-wire.js'
import {decodeDiskTask, encodeDiskResult} from '../master/disk-codec.js'
import {fromServiceError, isTransportUnavailable} from '../master/grpc-errors.js'
import {PIPELINE_MAX_BODY} from '../master/grpc-metadata.js'
import type * as w from '../proto/generated/index.js'
import type {MasterDefinition} from '../proto/generated/mooncake/v1/Master.js'
import {loadMooncakeProto} from '../proto/loader.js'
import {isPipelineUnsupported, MasterPipeline} from './master-pipeline.js'

export interface MasterClientOptions {
  /** Address of the master, `HOST:PORT` (`[v6]:PORT` for IPv6). */
  address: string
  /** Cluster token: every call is signed with it (it is never sent). @default undefined (unsigned calls) */
  token?: string
  /**
   * TLS towards a master started with --tls-cert (PEM contents): `ca` verifies it (the system's
   * roots when absent); `cert` + `key` are presented to a master that requires client
   * certificates (--tls-ca). @default undefined (plaintext)
   */
  tls?: {ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer}
  /** Deadline of each call, ms. @default 30_000 */
  timeoutMs?: number
  /** How long connectMaster waits for the master to answer ServiceReady, ms. @default min(timeoutMs, 5_000) */
  connectTimeoutMs?: number
  /** Retry an idempotent call once, within its deadline, when the connection failed. @default true */
  retry?: boolean
  /**
   * Send unary calls as frames of one Pipeline stream instead of one HTTP/2 stream each (same
   * requests, answers and errors; ~4x less latency and ~6x less CPU per call in grpc-js).
   * @default true
   */
  pipeline?: boolean
  /**
   * Merge batch calls of the same kind issued in the same event-loop turn (batchPutStart,
   * batchPutEnd, batchGetReplicaList, ...) into one rpc of up to 4096 items. Each caller still
   * gets its own items' results; the master processes them in the same order. Saves the per-rpc
   * cost of gRPC (about 0.2 ms of CPU on each side) when many callers run concurrently.
   * @default true
   */
  coalesceBatches?: boolean
  /** Reserved for leader discovery through etcd (HA); not supported yet. @default undefined */
  etcd?: string[]
  /** Reserved for leader discovery through etcd (HA). @default 'mooncake_cluster' */
  clusterId?: string
}

export const DEFAULT_MASTER_TIMEOUT_MS = 30_000
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
/** Pause before the one retry: long enough for a restarted master's port to come back. */
const RETRY_DELAY_MS = 100
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024
function channelCredentials(tls: MasterClientOptions['tls']): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure()
  const pem = (v: string | Buffer | undefined) => (v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v)
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new MooncakeError('INVALID_PARAMS', 'tls.cert and tls.key go together')
  return grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert))
}

/** Serializer of a message serialized beforehand (signed calls sign its bytes). */
const passThrough = (b: Buffer): Buffer => b

/** What `getAllKeys` streams. */
export interface GetAllKeysRequest {
  /** Only keys starting with this. @default none */
  prefix?: string
  /** Only keys matching this pattern (ECMAScript, unanchored). @default none */
  regex?: string
  /** Resume after this key (exclusive). @default from the first key */
  after?: string
  /** Stop after this many keys in total. @default no limit */
  limit?: number
  /** Keys per streamed message. @default 1000 */
  pageSize?: number
}

export interface MasterClient extends MasterApi {
  /** The `HOST:PORT` this client talks to. */
  readonly address: string
  /** Keys of readable objects, streamed page by page in a stable order (constant memory). */
  getAllKeys(req?: GetAllKeysRequest): AsyncIterable<string>
  /** Closes the channel; calls in flight fail. */
  close(): void
}

type Rpc = keyof MasterDefinition & string
type ReqOf<K extends Rpc> = MasterDefinition[K] extends MethodDefinition<infer R, any, any, any> ? R : never // eslint-disable-line @typescript-eslint/no-explicit-any
type ResOf<K extends Rpc> = MasterDefinition[K] extends MethodDefinition<any, any, any, infer R> ? R : never // eslint-disable-line @typescript-eslint/no-explicit-any

const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/

export function parseMasterAddress(address: string): {host: string; port: number} {
  const m = ADDRESS.exec(address)
  const port = m ? Number(m[2]) : NaN
  if (!m || port < 1 || port > 65_535) {
    throw new MooncakeError('INVALID_PARAMS', `master address must be HOST:PORT, e.g. 127.0.0.1:50051 (got ${JSON.stringify(address)})`)
  }
  return {host: m[1]!, port}
}

function itemsOf<T, V>(res: {items: unknown[]}, decode: (v: V) => T): ItemResult<T>[] {
  return res.items.map((item) => codec.decodeItem(item as Parameters<typeof codec.decodeItem<V, T>>[0], decode))
}

const PUT_START_WIRE = {encode: encodeBatchPutStartRequest, decode: decodeBatchPutStartResults}
const PUT_END_WIRE = {encode: encodeBatchPutEndRequest, decode: decodeBatchVoidResults}
const PUT_COMMIT_WIRE = {encode: encodeBatchPutCommitRequest, decode: decodeBatchVoidResults}

/** Most items one merged batch rpc carries (the master accepts up to 100 000). */
export const MAX_COALESCED_ITEMS = 4096

interface PendingBatch<In, Out> {
  items: In[]
  idempotent: boolean
  resolve(out: Out[]): void
  reject(err: unknown): void
}

/**
 * Batch calls of one rpc issued in the same event-loop turn, sent as one rpc at the next
 * setImmediate (or as soon as MAX_COALESCED_ITEMS are waiting). Results are split back by position.
 */
class BatchCoalescer<In, Out> {
  #queue: PendingBatch<In, Out>[] = []
  #count = 0
  #scheduled = false

  constructor(private readonly send: (items: In[], idempotent: boolean) => Promise<Out[]>) {}

  add(items: In[], idempotent: boolean): Promise<Out[]> {
    if (items.length === 0) return this.send(items, idempotent)
    return new Promise<Out[]>((resolve, reject) => {
      if (this.#count + items.length > MAX_COALESCED_ITEMS) this.#flush()
      this.#queue.push({items, idempotent, resolve, reject})
      this.#count += items.length
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => {
          this.#scheduled = false
          this.#flush()
        })
      }
    })
  }

  #flush(): void {
    const queue = this.#queue
    if (queue.length === 0) return
    this.#queue = []
    this.#count = 0
    if (queue.length === 1) {
      const only = queue[0]!
      this.send(only.items, only.idempotent).then(only.resolve, only.reject)
      return
    }
    const all: In[] = []
    let idempotent = true
    for (const p of queue) {
      for (const item of p.items) all.push(item)
      idempotent &&= p.idempotent
    }
    this.send(all, idempotent).then(
      (out) => {
        if (out.length !== all.length) {
          const err = new MooncakeError('INTERNAL_ERROR', `the master answered ${out.length} items for a batch of ${all.length}`)
          for (const p of queue) p.reject(err)
          return
        }
        let at = 0
        for (const p of queue) {
          p.resolve(out.slice(at, at + p.items.length))
          at += p.items.length
        }
      },
      (err: unknown) => {
        // A request the master refuses as a whole (a malformed field) must fail only its caller:
        // send the parts again one by one.
        if (err instanceof MooncakeError && err.code === 'INVALID_PARAMS') {
          for (const p of queue) this.send(p.items, p.idempotent).then(p.resolve, p.reject)
        } else for (const p of queue) p.reject(err)
      },
    )
  }
}

class GrpcMasterClient implements MasterClient {
  readonly address: string
  readonly #client: grpc.Client
  readonly #def: MasterDefinition
  readonly #signer: CallSigner | undefined
  readonly #timeoutMs: number
  readonly #retry: boolean
  readonly #coalesce: boolean
  /** Batch puts through grpc-batch-wire.ts (off with MOONCAKE_PROTO_CODEC=reflection, the benchmarks' "before"). */
  readonly #fastBatches = process.env['MOONCAKE_PROTO_CODEC'] !== 'reflection'
  readonly #pipeline: MasterPipeline | undefined
  #closed = false
  readonly #putStarts = new BatchCoalescer<PutStartRequest, ItemResult<PutStartResult>>((reqs, idempotent) => this.#batchPutStart(reqs, idempotent))
  readonly #putEnds = new BatchCoalescer<PutEndRequest, ItemResult<void>>((reqs) => this.#batchPutEnd(reqs))
  readonly #replicaLists = new BatchCoalescer<string, ItemResult<GetReplicaListResult>>((keys) => this.#batchGetReplicaList(keys))
  readonly #exists = new BatchCoalescer<string, boolean>(async (keys) => (await this.call('BatchExistKey', {keys}, true)).exists)

  constructor(options: MasterClientOptions) {
    this.address = options.address
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_MASTER_TIMEOUT_MS
    this.#retry = options.retry ?? true
    this.#coalesce = options.coalesceBatches ?? true
    this.#signer = options.token === undefined ? undefined : new CallSigner(options.token)
    this.#def = loadMooncakeProto().master
    this.#client = new grpc.Client(options.address, channelCredentials(options.tls), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // Without keepalive a half-open connection to a vanished master is noticed only by deadlines.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Come back quickly after a master restart (grpc-js starts at 1 s and grows to 120 s).
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
    })
    if (options.pipeline ?? true) this.#pipeline = new MasterPipeline({client: this.#client, method: this.#def.Pipeline, signer: this.#signer})
  }

  #metadata(path: string, body?: Uint8Array): grpc.Metadata {
    const metadata = new grpc.Metadata()
    this.#signer?.sign(metadata, path, Date.now(), body)
    return metadata
  }

  #closedError(): MooncakeError {
    return new MooncakeError('UNAVAILABLE', `the client of the master at ${this.address} is closed`)
  }

  #once<Req, Res>(path: string, serialize: (req: Req) => Buffer, deserialize: (buf: Buffer) => Res, req: Req, deadline: number): Promise<Res> {
    if (this.#pipeline?.usable) {
      const body = serialize(req)
      if (body.length <= PIPELINE_MAX_BODY) {
        return this.#pipeline.call(path, body, deadline).then(deserialize, (err: unknown) => {
          if (isPipelineUnsupported(err)) return this.#unary(path, passThrough, deserialize, body, deadline)
          throw err
        })
      }
      // Too large for a frame: as a unary call, whose size limit answers as it always did.
      return this.#unary(path, passThrough, deserialize, body, deadline)
    }
    return this.#unary(path, serialize, deserialize, req, deadline)
  }

  #unary<Req, Res>(path: string, serialize: (req: Req) => Buffer, deserialize: (buf: Buffer) => Res, req: Req, deadline: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      const done = (err: grpc.ServiceError | null, res?: Res) => (err ? reject(err) : resolve(res as Res))
      if (this.#signer === undefined) {
        this.#client.makeUnaryRequest(path, serialize, deserialize, req, this.#metadata(path), {deadline}, done)
        return
      }
      // Signed: the signature covers the serialized message, so serialize it once, here.
      const body = serialize(req)
      this.#client.makeUnaryRequest(path, passThrough, deserialize, body, this.#metadata(path, body), {deadline}, done)
    })
  }

  /** One unary call with a deadline; idempotent calls are retried once after a transport failure. */
  call<K extends Rpc>(rpc: K, req: ReqOf<K>, idempotent: boolean, timeoutMs = this.#timeoutMs): Promise<ResOf<K>> {
    const method = this.#def[rpc] as unknown as MethodDefinition<ReqOf<K>, unknown, unknown, ResOf<K>>
    return this.#callWith(rpc, method.requestSerialize, method.responseDeserialize, req, idempotent, timeoutMs)
  }

  /**
   * A batch put rpc through grpc-batch-wire.ts: the request serialized once from the api types,
   * the answer decoded straight into ItemResults. A request with values the fast encoder does not
   * take (NotPlain) goes the generic way, with the same bytes on the wire.
   */
  #batchCall<In, Out>(
    rpc: 'BatchPutStart' | 'BatchPutEnd' | 'BatchPutCommit',
    reqs: In[],
    fast: {encode(reqs: In[]): Buffer; decode(buf: Buffer): ItemResult<Out>[]},
    generic: () => Promise<ItemResult<Out>[]>,
    idempotent: boolean,
  ): Promise<ItemResult<Out>[]> {
    if (!this.#fastBatches) return generic()
    let body: Buffer
    try {
      body = fast.encode(reqs)
    } catch (err) {
      if (err instanceof NotPlain) return generic()
      throw err
    }
    return this.#callWith(rpc, passThrough, fast.decode, body, idempotent, this.#timeoutMs)
  }

  async #callWith<Req, Res>(
    rpc: Rpc,
    serialize: (req: Req) => Buffer,
    deserialize: (buf: Buffer) => Res,
    req: Req,
    idempotent: boolean,
    timeoutMs: number,
  ): Promise<Res> {
    if (this.#closed) throw this.#closedError()
    const path = this.#def[rpc].path
    const deadline = Date.now() + timeoutMs
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(path, serialize, deserialize, req, deadline)
      } catch (err) {
        const retry =
          idempotent && this.#retry && attempt === 0 && !this.#closed && isTransportUnavailable(err) && deadline - Date.now() > 4 * RETRY_DELAY_MS
        if (!retry) throw this.#closed ? this.#closedError() : fromServiceError(err, {address: this.address, rpc, timeoutMs})
        await sleep(RETRY_DELAY_MS)
      }
    }
  }

  async *getAllKeys(req: GetAllKeysRequest = {}): AsyncGenerator<string> {
    if (this.#closed) throw this.#closedError()
    const method = this.#def.GetAllKeys
    const wire: w.GetAllKeysRequest = {
      prefix: req.prefix ?? '',
      regex: req.regex ?? '',
      after: req.after ?? '',
      limit: req.limit ?? 0,
      pageSize: req.pageSize ?? 0,
    }
    if (req.limit !== undefined && req.limit <= 0) return
    const body = method.requestSerialize(wire)
    const stream = this.#client.makeServerStreamRequest(
      method.path,
      passThrough,
      method.responseDeserialize,
      body,
      this.#metadata(method.path, body),
      {deadline: Date.now() + this.#timeoutMs},
    )
    try {
      for await (const page of stream as AsyncIterable<w.KeyPage__Output>) yield* page.keys
    } catch (err) {
      throw fromServiceError(err, {address: this.address, rpc: 'GetAllKeys', timeoutMs: this.#timeoutMs})
    } finally {
      // The consumer may stop early: tell the master to stop listing.
      stream.cancel()
    }
  }

  close(): void {
    this.#closed = true
    this.#pipeline?.close()
    this.#client.close()
  }

  // --- writes --------------------------------------------------------------------------------------

  async putStart(req: PutStartRequest): Promise<PutStartResult> {
    // Idempotent through the request id: a retry after a lost reply gets the same placement.
    return codec.decodePutStartResult(await this.call('PutStart', codec.encodePutStartRequest(req), req.requestId !== ''))
  }

  async putEnd(req: PutEndRequest): Promise<void> {
    await this.call('PutEnd', codec.encodePutEndRequest(req), true)
  }

  async putRevoke(req: PutRevokeRequest): Promise<void> {
    await this.call('PutRevoke', codec.encodePutRevokeRequest(req), false)
  }

  async batchPutStart(reqs: PutStartRequest[]): Promise<ItemResult<PutStartResult>[]> {
    const idempotent = reqs.every((r) => r.requestId !== '')
    if (this.#coalesce) return this.#putStarts.add(reqs, idempotent)
    return this.#batchPutStart(reqs, idempotent)
  }

  #batchPutStart(reqs: PutStartRequest[], idempotent: boolean): Promise<ItemResult<PutStartResult>[]> {
    const generic = async () =>
      itemsOf(await this.call('BatchPutStart', {items: reqs.map(codec.encodePutStartRequest)}, idempotent), codec.decodePutStartResult)
    return this.#batchCall('BatchPutStart', reqs, PUT_START_WIRE, generic, idempotent)
  }

  async batchPutEnd(reqs: PutEndRequest[]): Promise<ItemResult<void>[]> {
    if (this.#coalesce) return this.#putEnds.add(reqs, true)
    return this.#batchPutEnd(reqs)
  }

  #batchPutEnd(reqs: PutEndRequest[]): Promise<ItemResult<void>[]> {
    const generic = async () => codec.decodeVoidItems(await this.call('BatchPutEnd', {items: reqs.map(codec.encodePutEndRequest)}, true))
    return this.#batchCall('BatchPutEnd', reqs, PUT_END_WIRE, generic, true)
  }

  async batchPutRevoke(reqs: PutRevokeRequest[]): Promise<ItemResult<void>[]> {
    return codec.decodeVoidItems(await this.call('BatchPutRevoke', {items: reqs.map(codec.encodePutRevokeRequest)}, false))
  }

  async reserveSpace(req: ReserveSpaceRequest): Promise<ReserveSpaceResult> {
    // Not repeated after an unknown outcome: a second reservation would only hold space until it expires.
    return codec.decodeReserveSpaceResult(await this.call('ReserveSpace', codec.encodeReserveSpaceRequest(req), false))
  }

  async batchPutCommit(reqs: PutCommitRequest[]): Promise<ItemResult<void>[]> {
    // Not repeated here after a transport failure: the client's put retries its commits itself,
    // knowing then that they may have landed (a repeat is safe; what it answers needs that knowledge).
    const generic = async () => codec.decodeVoidItems(await this.call('BatchPutCommit', {items: reqs.map(codec.encodePutCommitRequest)}, false))
    return this.#batchCall('BatchPutCommit', reqs, PUT_COMMIT_WIRE, generic, false)
  }

  async releaseSpace(req: ReleaseSpaceRequest): Promise<void> {
    await this.call('ReleaseSpace', {clientId: req.clientId, reservationId: req.reservationId}, true)
  }

  async upsertStart(req: PutStartRequest): Promise<PutStartResult> {
    return codec.decodePutStartResult(await this.call('UpsertStart', codec.encodePutStartRequest(req), false))
  }

  async upsertEnd(req: PutEndRequest): Promise<void> {
    await this.call('UpsertEnd', codec.encodePutEndRequest(req), false)
  }

  async upsertRevoke(req: PutRevokeRequest): Promise<void> {
    await this.call('UpsertRevoke', codec.encodePutRevokeRequest(req), false)
  }

  // --- reads ---------------------------------------------------------------------------------------

  async getReplicaList(key: string): Promise<GetReplicaListResult> {
    if (!this.#fastBatches) return codec.decodeReplicaList(await this.call('GetReplicaList', {key}, true))
    return this.#callWith('GetReplicaList', this.#def.GetReplicaList.requestSerialize, decodeReplicaListResponse, {key}, true, this.#timeoutMs)
  }

  async batchGetReplicaList(keys: string[]): Promise<ItemResult<GetReplicaListResult>[]> {
    if (this.#coalesce) return this.#replicaLists.add(keys, true)
    return this.#batchGetReplicaList(keys)
  }

  /** Answers decoded straight into ItemResults (grpc-batch-wire.ts), unless the reflection codec is asked for. */
  async #batchGetReplicaList(keys: string[]): Promise<ItemResult<GetReplicaListResult>[]> {
    if (!this.#fastBatches) return itemsOf(await this.call('BatchGetReplicaList', {keys}, true), codec.decodeReplicaList)
    return this.#callWith('BatchGetReplicaList', this.#def.BatchGetReplicaList.requestSerialize, decodeBatchGetReplicaListResults, {keys}, true, this.#timeoutMs)
  }

  async getReplicaListByRegex(regex: string): Promise<Map<string, GetReplicaListResult>> {
    const res = await this.call('GetReplicaListByRegex', {regex}, true)
    return new Map(res.entries.map((e) => [e.key, codec.decodeReplicaList(e.value!)]))
  }

  async existKey(key: string): Promise<boolean> {
    return (await this.call('ExistKey', {key}, true)).exists
  }

  async batchExistKey(keys: string[]): Promise<boolean[]> {
    if (this.#coalesce) return this.#exists.add(keys, true)
    return (await this.call('BatchExistKey', {keys}, true)).exists
  }

  async query(key: string): Promise<ObjectInfo> {
    return codec.decodeObjectInfo(await this.call('Query', {key}, true))
  }

  async batchQuery(keys: string[]): Promise<ItemResult<ObjectInfo>[]> {
    return itemsOf(await this.call('BatchQuery', {keys}, true), codec.decodeObjectInfo)
  }

  async queryByRegex(regex: string): Promise<ObjectInfo[]> {
    return (await this.call('QueryByRegex', {regex}, true)).objects.map(codec.decodeObjectInfo)
  }

  /** One page of keys, over the GetAllKeys stream (asks for one key more to learn whether another page exists). */
  async listKeys(req: ListKeysRequest): Promise<ListKeysPage> {
    const limit = req.limit ?? 10_000
    const keys: string[] = []
    for await (const key of this.getAllKeys({prefix: req.prefix, regex: req.regex, after: req.after, limit: limit + 1, pageSize: Math.min(limit + 1, 10_000)})) {
      keys.push(key)
    }
    if (keys.length <= limit) return {keys}
    keys.length = limit
    return {keys, next: keys[limit - 1]}
  }

  // --- removal -------------------------------------------------------------------------------------

  async remove(req: RemoveRequest): Promise<void> {
    await this.call('Remove', {key: req.key, force: req.force ?? false}, false)
  }

  async batchRemove(keys: string[], force = false): Promise<ItemResult<void>[]> {
    return codec.decodeVoidItems(await this.call('BatchRemove', {keys, force}, false))
  }

  async removeByRegex(req: RemoveByRegexRequest): Promise<RemoveManyResult> {
    const res = await this.call('RemoveByRegex', {regex: req.regex, force: req.force ?? false, dryRun: req.dryRun ?? false}, false)
    return {removed: res.removed, skipped: res.skipped, keys: res.keys}
  }

  async removeAll(req: RemoveAllRequest): Promise<RemoveManyResult> {
    const res = await this.call('RemoveAll', {force: req.force ?? false, dryRun: req.dryRun ?? false}, false)
    return {removed: res.removed, skipped: res.skipped, keys: res.keys}
  }

  // --- segments ------------------------------------------------------------------------------------

  async mountSegment(req: MountSegmentRequest): Promise<MountSegmentResult> {
    // The same owner mounting again is idempotent (S4).
    const res = await this.call('MountSegment', {clientId: req.clientId, segment: codec.encodeSegment(req.segment)}, true)
    return {viewVersion: res.viewVersion}
  }

  async reMountSegment(req: ReMountSegmentRequest): Promise<void> {
    await this.call('ReMountSegment', {clientId: req.clientId, segments: req.segments.map(codec.encodeSegment)}, true)
  }

  async unmountSegment(req: UnmountSegmentRequest): Promise<void> {
    await this.call('UnmountSegment', codec.encodeUnmountSegmentRequest(req), false)
  }

  async getAllSegments(): Promise<SegmentInfo[]> {
    return (await this.call('GetAllSegments', {}, true)).segments.map(codec.decodeSegmentInfo)
  }

  async querySegments(name: string): Promise<SegmentUsage> {
    const res = await this.call('QuerySegments', {name}, true)
    return {name: res.name, capacity: res.capacity, used: res.used}
  }

  async ping(req: PingRequest): Promise<PingResult> {
    const res = await this.call('Ping', {clientId: req.clientId, diskResults: req.diskResults?.map(encodeDiskResult) ?? []}, true)
    const out: PingResult = {viewVersion: res.viewVersion, status: codec.decodeClientStatus(res.status)}
    if (res.diskTasks !== undefined && res.diskTasks.length > 0) out.diskTasks = res.diskTasks.map(decodeDiskTask)
    return out
  }

  // --- service -------------------------------------------------------------------------------------

  async serviceReady(timeoutMs?: number): Promise<ServiceReadyResult> {
    const res = await this.call('ServiceReady', {}, true, timeoutMs)
    return {version: res.version, protocolVersion: res.protocolVersion, viewVersion: res.viewVersion}
  }

  async stats(): Promise<MasterStats> {
    const r = await this.call('Stats', {}, true)
    return {capacity: r.capacity, used: r.used, keys: r.keys, softPinnedKeys: r.softPinnedKeys, clients: r.clients, segments: r.segments}
  }
}

/**
 * Connects to the master and checks that it answers (ServiceReady) and speaks our protocol.
 * Fails with UNAVAILABLE within connectTimeoutMs when nothing answers, UNAUTHENTICATED when the
 * token is missing or wrong, INVALID_VERSION for an incompatible master.
 */
export async function connectMaster(options: MasterClientOptions): Promise<MasterClient> {
  if (options.etcd && options.etcd.length > 0) {
    // HA: the leader is found through etcd and followed across failovers (src/lib/master/ha).
    const {connectHaMaster} = await import('../master/ha/ha-master-client.js')
    return connectHaMaster(options, (o) => connectMaster({...o, etcd: undefined}))
  }
  parseMasterAddress(options.address)
  const timeoutMs = options.timeoutMs ?? DEFAULT_MASTER_TIMEOUT_MS
  const connectTimeoutMs = options.connectTimeoutMs ?? Math.min(timeoutMs, DEFAULT_CONNECT_TIMEOUT_MS)
  const client = new GrpcMasterClient(options)
  try {
    const ready = await client.serviceReady(connectTimeoutMs)
    if (ready.protocolVersion !== PROTOCOL_VERSION) {
      throw new MooncakeError(
        'INVALID_VERSION',
        `the master at ${options.address} speaks protocol ${ready.protocolVersion} (version ${ready.version}); this client speaks ${PROTOCOL_VERSION}: upgrade the older side`,
      )
    }
    return client
  } catch (err) {
    client.close()
    throw err
  }
}
