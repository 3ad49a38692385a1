/**
 * P2PStore (SPEC P1-P6): a peer of the master-less P2P store. It serves the payloads it
 * registered and the replicas it downloaded from its own data segments, publishes what it holds
 * in etcd under its lease, downloads from the least-loaded holders, and answers unregister /
 * delete-replica requests that other processes send through etcd.
 */
import {createHash, randomBytes} from 'node:crypto'
import os from 'node:os'

import type {Lease, Watcher} from 'etcd3'

import {MooncakeError, toMooncakeError} from '../errors.js'
import {Downloader} from './download.js'
import {openNativeDataPlane, type DataPlane, type DataSegment} from './engine.js'
import {DestinationSet, loadSources, sourceSizes} from './files.js'
import {P2PMetadata, type ControlRequest} from './metadata.js'
import {LocalReplica, type ReplicaKind} from './serve.js'
import {checkSizes, DEFAULT_MAX_SHARD_SIZE, layoutShards, validatePayloadName, validatePeerName, validateShardSize} from './shards.js'
import type {
  GetReplicaOptions,
  GetReplicaResult,
  P2PDestination,
  P2PEvent,
  P2PSource,
  P2PStoreOptions,
  PayloadInfo,
  PayloadRecord,
  RegisterOptions,
} from './types.js'

export const P2P_DEFAULTS = Object.freeze({
  clusterId: 'mooncake_cluster',
  host: '127.0.0.1',
  port: 0,
  leaseTtlMs: 10_000,
  concurrency: 4,
  maxReadsPerHolder: 4,
  readTimeoutMs: 60_000,
  stallTimeoutMs: 30_000,
  drainMs: 2_000,
  fileChunkSize: 8 * 2 ** 20,
})

export function toPayloadInfo(record: PayloadRecord): PayloadInfo {
  return {name: record.name, maxShardSize: record.maxShardSize, totalSize: record.totalSize, sizeList: [...record.sizeList]}
}

function validPartNames(names: string[] | undefined, parts: number): string[] | undefined {
  if (names === undefined) return undefined
  if (names.length !== parts) throw new MooncakeError('INVALID_PARAMS', `partNames has ${names.length} names for ${parts} parts`)
  for (const n of names) {
    if (!n || n === '.' || n === '..' || /[/\\\u0000]/.test(n)) throw new MooncakeError('INVALID_PARAMS', `part name "${n}" is not a plain file name`)
  }
  if (new Set(names).size !== names.length) throw new MooncakeError('INVALID_PARAMS', 'part names must be distinct')
  return [...names]
}

export class P2PStore {
  private readonly replicas = new Map<string, LocalReplica>()
  /** Names being registered or downloaded right now (the one-replica-per-name rule). */
  private readonly busy = new Set<string>()
  /** Segments allocated ahead of a download by prepare(). */
  private readonly prepared = new Map<string, {id: string; segment: DataSegment}>()
  private controlWatcher: Watcher | undefined
  private readonly controls = new Set<Promise<void>>()
  private closing = false
  private closed = false
  private regranting: Promise<void> | undefined

  private constructor(
    readonly peerName: string,
    readonly clusterId: string,
    private readonly meta: P2PMetadata,
    private readonly plane: DataPlane,
    private lease: Lease,
    private readonly options: Required<Pick<P2PStoreOptions, 'leaseTtlMs' | 'concurrency' | 'maxReadsPerHolder' | 'readTimeoutMs' | 'drainMs' | 'fileChunkSize'>> & {
      checksums: boolean
      onEvent?: (event: P2PEvent) => void
    },
  ) {}

  /** P1: joins the cluster as `peerName` (refused while a live peer holds that name). */
  static async open(options: P2PStoreOptions): Promise<P2PStore> {
    const clusterId = options.clusterId ?? P2P_DEFAULTS.clusterId
    const peerName = options.peerName ?? `${os.hostname()}-${process.pid}`
    validatePeerName(peerName)
    const leaseTtlMs = options.leaseTtlMs ?? P2P_DEFAULTS.leaseTtlMs
    if (!(leaseTtlMs >= 1_000)) throw new MooncakeError('INVALID_PARAMS', `leaseTtlMs must be at least 1000 (etcd leases count whole seconds)`)
    const meta = await P2PMetadata.connect(options.etcd, clusterId)
    let plane: DataPlane | undefined
    let lease: Lease | undefined
    try {
      plane =
        options.dataPlane ??
        (await openNativeDataPlane({
          host: options.host ?? P2P_DEFAULTS.host,
          port: options.port ?? P2P_DEFAULTS.port,
          advertiseHost: options.advertiseHost,
          token: options.token,
          insecure: options.insecure,
          transport: options.transport,
        }))
      lease = await meta.grantLease(leaseTtlMs)
      await meta.claimPeer(lease, {peer: peerName, endpoints: plane.endpoints, pid: process.pid, host: os.hostname(), startedAt: Date.now()})
      const store = new P2PStore(peerName, clusterId, meta, plane, lease, {
        leaseTtlMs,
        concurrency: options.concurrency ?? P2P_DEFAULTS.concurrency,
        maxReadsPerHolder: options.maxReadsPerHolder ?? P2P_DEFAULTS.maxReadsPerHolder,
        readTimeoutMs: options.readTimeoutMs ?? P2P_DEFAULTS.readTimeoutMs,
        drainMs: options.drainMs ?? P2P_DEFAULTS.drainMs,
        fileChunkSize: options.fileChunkSize ?? P2P_DEFAULTS.fileChunkSize,
        checksums: options.checksums ?? true,
        onEvent: options.onEvent,
      })
      store.watchLease(lease)
      store.controlWatcher = await meta.watchControl(peerName, (req, key) => store.onControl(req, key))
      return store
    } catch (err) {
      await lease?.revoke().catch(() => {})
      if (plane && !options.dataPlane) await plane.close().catch(() => {})
      meta.close()
      throw toMooncakeError(err, 'UNAVAILABLE')
    }
  }

  /** Data endpoints of this peer. */
  get endpoints(): string[] {
    return this.plane.endpoints
  }

  /** Names this peer serves, with their kind ('seed' for registered, 'replica' for downloaded). */
  held(): Array<{name: string; kind: ReplicaKind; shards: number; complete: boolean}> {
    return [...this.replicas.values()].map((r) => ({name: r.name, kind: r.kind, shards: r.shards.count, complete: r.shards.complete}))
  }

  /**
   * P2: publishes the parts (in order) as payload `name` without moving data to anyone: the
   * bytes are copied once into this peer's segment (files streamed in chunks) and served from
   * there until unregister/close. The name is unique in the cluster.
   */
  async register(name: string, sources: readonly P2PSource[], options: RegisterOptions = {}): Promise<PayloadInfo> {
    this.ensureOpen()
    validatePayloadName(name)
    const maxShardSize = options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE
    validateShardSize(maxShardSize)
    if (!Array.isArray(sources) || sources.length === 0) throw new MooncakeError('INVALID_PARAMS', 'register needs at least one buffer or file')
    this.claimLocal(name)
    let segment: DataSegment | undefined
    try {
      const sizeList = await sourceSizes(sources)
      const totalSize = sizeList.reduce((a, b) => a + b, 0)
      if (totalSize === 0) throw new MooncakeError('INVALID_PARAMS', `payload "${name}" is empty`)
      // Fail fast on a taken name before copying gigabytes (the create transaction decides).
      const existing = await this.meta.getPayload(name)
      if (existing && !(await this.meta.isStale(existing))) {
        throw new MooncakeError('PAYLOAD_ALREADY_EXISTS', `payload "${name}" is already registered by peer "${existing.owner}"`)
      }
      const shards = layoutShards(sizeList, maxShardSize)
      segment = await this.plane.createSegment(this.segmentName(name), totalSize)
      await loadSources(sources, sizeList, segment, this.options.fileChunkSize)
      const shardCrcs = this.options.checksums ? shards.map((s) => this.plane.crc32c(segment!.window(s.offset, s.length))) : undefined
      const record: PayloadRecord = {
        id: randomBytes(8).toString('hex'),
        name,
        maxShardSize,
        totalSize,
        sizeList,
        shardCount: shards.length,
        shardCrcs,
        partNames: validPartNames(options.partNames, sources.length),
        owner: this.peerName,
        createdAt: Date.now(),
      }
      const replica = this.newReplica(record, 'seed', segment)
      for (let i = 0; i < shards.length; i++) replica.shards.set(i)
      await this.meta.createPayload(record, replica.entry(), this.lease)
      replica.markAdvertised()
      this.replicas.set(name, replica)
      segment = undefined
      const stored = await this.meta.getPayload(name)
      if (stored?.id === record.id) record.revision = stored.revision
      return toPayloadInfo(record)
    } finally {
      this.busy.delete(name)
      await segment?.close().catch(() => {})
    }
  }

  /**
   * P3: stops serving a payload this peer registered (reads in flight finish, later ones fail
   * cleanly), and deletes the payload record once no peer serves it any more. For a payload
   * registered by another live peer, asks that peer through etcd and waits for its ack.
   */
  async unregister(name: string, options: {timeoutMs?: number} = {}): Promise<void> {
    this.ensureOpen()
    const local = this.replicas.get(name)
    if (local?.kind === 'seed') {
      await this.releaseLocal(local, 'unregister')
      await this.deleteRecordIfUnserved(local.record)
      return
    }
    const {unregisterPayload} = await import('./admin.js')
    await unregisterPayload(this.meta, name, this.peerName, options.timeoutMs ?? 30_000)
  }

  /** The registered record of `name`, or undefined. */
  async info(name: string): Promise<PayloadRecord | undefined> {
    this.ensureOpen()
    return this.meta.getPayload(name)
  }

  /** P4: payloads whose name starts with prefix, sorted by name. */
  async list(prefix = ''): Promise<PayloadInfo[]> {
    this.ensureOpen()
    return (await this.meta.listPayloads(prefix)).map(toPayloadInfo)
  }

  /**
   * P5: downloads payload `name` into the destinations (sizes must match the registered
   * sizeList; `null` keeps the replica in this peer's memory only, a relay that just serves)
   * sizeList) and serves each shard to other peers as soon as it has landed. The replica keeps
   * being served after the download until deleteReplica(name) or close().
   */
  async getReplica(name: string, destinations: readonly P2PDestination[] | null, options: GetReplicaOptions = {}): Promise<GetReplicaResult> {
    this.ensureOpen()
    validatePayloadName(name)
    const started = Date.now()
    const record = await this.meta.getPayload(name)
    if (!record) throw new MooncakeError('PAYLOAD_NOT_FOUND', `payload "${name}" is not registered`)
    if (destinations !== null && !Array.isArray(destinations)) throw new MooncakeError('INVALID_PARAMS', 'destinations must be a list (or null)')
    if (destinations !== null) checkSizes(name, record.sizeList, DestinationSet.sizesOf(destinations, record.sizeList))
    const advertise = options.advertise ?? true
    this.claimLocal(name)
    let replica: LocalReplica | undefined
    let files: DestinationSet | undefined
    try {
      const shards = layoutShards(record.sizeList, record.maxShardSize)
      if (shards.length !== record.shardCount) {
        throw new MooncakeError('DESERIALIZE_FAIL', `payload "${name}" record is inconsistent (${record.shardCount} shards recorded, ${shards.length} computed)`)
      }
      const ready = this.prepared.get(name)
      this.prepared.delete(name)
      if (ready && ready.id !== record.id) await ready.segment.close().catch(() => {})
      const segment = ready?.id === record.id ? ready.segment : await this.plane.createSegment(this.segmentName(name), record.totalSize)
      replica = this.newReplica(record, 'replica', segment)
      this.replicas.set(name, replica)
      if (!advertise) replica.silence()
      if (destinations !== null) files = await DestinationSet.open(destinations, record.sizeList)
      let done = 0
      const target = replica
      const sink = files
      const downloader = new Downloader({
        meta: this.meta,
        plane: this.plane,
        self: this.peerName,
        record,
        shards,
        segment,
        concurrency: Math.max(1, options.concurrency ?? this.options.concurrency),
        readTimeoutMs: this.options.readTimeoutMs,
        stallTimeoutMs: options.stallTimeoutMs ?? P2P_DEFAULTS.stallTimeoutMs,
        deadline: options.timeoutMs === undefined ? undefined : started + options.timeoutMs,
        signal: options.signal,
        verify: this.options.checksums,
        onEvent: this.options.onEvent,
        maxReadsPerHolder: this.options.maxReadsPerHolder,
        claim: (index, holder, started) => {
          target.track(index, holder, started)
          void target.advertise()
        },
        landed: async (shard) => {
          target.shards.set(shard.index)
          void target.advertise()
          await sink?.write(shard.part, shard.partOffset, segment.window(shard.offset, shard.length))
          done += shard.length
          options.onProgress?.(done, record.totalSize)
        },
      })
      const stats = await downloader.run()
      await files?.commit()
      files = undefined
      await replica.advertise()
      return {name, bytes: record.totalSize, seconds: (Date.now() - started) / 1000, bytesByHolder: stats.bytesByHolder, retries: stats.retries}
    } catch (err) {
      await files?.abort()
      if (replica) await this.releaseLocal(replica, 'delete-replica', 0)
      throw err
    } finally {
      this.busy.delete(name)
    }
  }

  /**
   * Allocates (and pre-faults) the memory a later getReplica(name) downloads into, so that
   * cost (about 0.3-1.5 s per GiB on a VM) is paid before the payload is needed.
   */
  async prepare(name: string): Promise<void> {
    this.ensureOpen()
    const record = await this.meta.getPayload(name)
    if (!record) throw new MooncakeError('PAYLOAD_NOT_FOUND', `payload "${name}" is not registered`)
    if (this.replicas.has(name)) throw new MooncakeError('REPLICA_ALREADY_EXISTS', `peer "${this.peerName}" already holds "${name}"`)
    const previous = this.prepared.get(name)
    if (previous?.id === record.id) return
    await previous?.segment.close().catch(() => {})
    this.prepared.set(name, {id: record.id, segment: await this.plane.createSegment(this.segmentName(name), record.totalSize)})
  }

  /** P6: stops serving this peer's downloaded replica of `name`. */
  async deleteReplica(name: string): Promise<void> {
    this.ensureOpen()
    const local = this.replicas.get(name)
    if (!local || local.kind !== 'replica') {
      throw new MooncakeError('REPLICA_NOT_FOUND', `peer "${this.peerName}" holds no downloaded replica of "${name}"`)
    }
    await this.releaseLocal(local, 'delete-replica')
    await this.deleteRecordIfUnserved(local.record)
  }

  /** Stops serving everything, revokes the lease (peer and holder keys go at once), closes etcd. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    await this.controlWatcher?.cancel().catch(() => {})
    // Requests being handled finish and are acknowledged first.
    await Promise.allSettled([...this.controls])
    this.closed = true
    for (const {segment} of this.prepared.values()) await segment.close().catch(() => {})
    this.prepared.clear()
    const replicas = [...this.replicas.values()]
    // Holder keys first, all at once, then one drain for all of them.
    await Promise.all(replicas.map((r) => this.releaseLocal(r, 'close', 0)))
    await this.lease.revoke().catch(() => {})
    // Payloads nobody serves any more lose their record (the name becomes free).
    await Promise.all(replicas.map((r) => this.deleteRecordIfUnserved(r.record)))
    await this.plane.close().catch(() => {})
    this.meta.close()
  }

  // ---- internals -----------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', 'the P2P store is closed')
  }

  private claimLocal(name: string): void {
    if (this.replicas.has(name) || this.busy.has(name)) {
      throw new MooncakeError('REPLICA_ALREADY_EXISTS', `peer "${this.peerName}" already holds "${name}" (one replica per name per peer)`)
    }
    this.busy.add(name)
  }

  private segmentName(name: string): string {
    const hash = createHash('sha256').update(`${this.clusterId}\0${this.peerName}\0${name}`).digest('hex').slice(0, 16)
    return `p2p-${hash}-${randomBytes(4).toString('hex')}`
  }

  private newReplica(record: PayloadRecord, kind: ReplicaKind, segment: DataSegment): LocalReplica {
    return new LocalReplica(
      record,
      kind,
      segment,
      this.meta,
      () => ({peer: this.peerName, endpoints: this.plane.endpoints, lease: this.lease}),
      (err) => this.options.onEvent?.({type: 'warning', message: `${record.name}: ${(err as Error).message}`}),
    )
  }

  private async releaseLocal(replica: LocalReplica, reason: 'unregister' | 'delete-replica' | 'close', drainMs = this.options.drainMs): Promise<void> {
    if (this.replicas.get(replica.name) === replica) this.replicas.delete(replica.name)
    await replica.release(drainMs)
    this.options.onEvent?.({type: 'released', name: replica.name, reason})
  }

  /** Deletes the payload record once no live peer serves it any more. */
  private async deleteRecordIfUnserved(record: PayloadRecord): Promise<void> {
    try {
      if ((await this.meta.countHolders(record.name)) > 0) return
      const current = await this.meta.getPayload(record.name)
      if (current?.id === record.id) await this.meta.deletePayload(record.name, current.revision)
    } catch (err) {
      this.options.onEvent?.({type: 'warning', message: `cleanup of "${record.name}": ${(err as Error).message}`})
    }
  }

  private onControl(req: ControlRequest, key: string): void {
    if (this.closing) return
    const handling = this.handleControl(req, key).finally(() => this.controls.delete(handling))
    this.controls.add(handling)
  }

  private async handleControl(req: ControlRequest, key: string): Promise<void> {
    let ack: {ok: boolean; code?: string; message?: string}
    try {
      const local = this.replicas.get(req.name)
      if (req.op === 'unregister') {
        if (!local || local.kind !== 'seed') throw new MooncakeError('PAYLOAD_NOT_FOUND', `peer "${this.peerName}" does not serve a registered payload "${req.name}"`)
        await this.releaseLocal(local, 'unregister')
        await this.deleteRecordIfUnserved(local.record)
      } else if (req.op === 'delete-replica') {
        await this.deleteReplica(req.name)
      } else {
        throw new MooncakeError('INVALID_PARAMS', `unknown control operation "${String(req.op)}"`)
      }
      ack = {ok: true}
    } catch (err) {
      const e = toMooncakeError(err)
      ack = {ok: false, code: e.code, message: e.message}
    }
    await this.meta.ack(req, key, ack)
    this.options.onEvent?.({type: 'control', op: req.op, name: req.name, from: req.from, ok: ack.ok, error: ack.message})
  }

  /** Keeps the peer alive across a lost lease (etcd outage longer than the TTL). */
  private watchLease(lease: Lease): void {
    lease.on('lost', () => {
      if (this.closed || lease !== this.lease || this.regranting) return
      this.regranting = this.regrant().finally(() => (this.regranting = undefined))
    })
  }

  private async regrant(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const lease = await this.meta.grantLease(this.options.leaseTtlMs)
        await this.meta.claimPeer(lease, {peer: this.peerName, endpoints: this.plane.endpoints, pid: process.pid, host: os.hostname(), startedAt: Date.now()})
        this.lease = lease
        this.watchLease(lease)
        await Promise.all([...this.replicas.values()].map((r) => r.advertise()))
        this.options.onEvent?.({type: 'lease-regranted', peer: this.peerName})
        return
      } catch (err) {
        this.options.onEvent?.({type: 'warning', message: `lease re-grant failed: ${(err as Error).message}`})
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 250 * 2 ** attempt)))
      }
    }
  }
}
