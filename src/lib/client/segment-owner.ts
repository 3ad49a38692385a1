/**
 * SegmentOwner: contributes a region of this process' memory to the cluster. It creates a
 * pre-faulted shared-memory segment served by the transfer engine's data server, mounts it on
 * the master, pings every second, re-mounts when the master asks (NEED_REMOUNT: after a master
 * restart or failover), and stops when an operator unmounts it (Ping answers UNMOUNTED).
 */
import {randomUUID} from 'node:crypto'
import {EventEmitter} from 'node:events'

import {DiskWriter} from '../disk/writer.js'
import {MooncakeError, toMooncakeError} from '../errors.js'
import type {ListKeysRequest, MasterApi, PingResult, SegmentDescriptor} from '../master/api.js'
import type {ClientMetrics} from '../metrics/client.js'
import {createDefaultDataPath, type DataPath, type LocalSegment} from './data-path.js'
import {defaultHostId} from './host-id.js'
import {withDeadline} from './master-calls.js'

/** 'starting' → 'mounted' ⇄ 'remounting'; → 'unmounted' (an operator unmounted it); → 'closed'. */
export type SegmentOwnerState = 'starting' | 'mounted' | 'remounting' | 'unmounted' | 'closed'

export interface SegmentOwnerOptions {
  /** Master address `HOST:PORT`; ignored when `master` is given. @default process.env.MOONCAKE_MASTER ?? '127.0.0.1:50051' */
  masterAddress?: string
  /** An already-connected master (not closed by the owner). @default undefined */
  master?: MasterApi
  /** Bytes contributed (required; at least 1 MiB). */
  size: number
  /** Unique segment name in the cluster. @default `HOST:PORT` of the data endpoint */
  name?: string
  /** Address the data server binds. @default '127.0.0.1' */
  host?: string
  /** Port of the data server; 0 picks a free one. @default 0 */
  port?: number
  /** Cluster token. @default process.env.MOONCAKE_TOKEN */
  token?: string
  /** Interval of the liveness pings. @default 1000 */
  pingIntervalMs?: number
  /** Deadline of each master call (mount, ping, unmount). @default 5000 */
  rpcTimeoutMs?: number
  /** Identity of this machine. @default defaultHostId() */
  hostId?: string
  /** Identity of this owner on the master. @default crypto.randomUUID() */
  clientId?: string
  /**
   * Require a master-minted access grant with every request to the segment (its grant key goes
   * to the master in MountSegment). The master must then be built with `mintGrant: grantMinter`.
   * @default true
   */
  grants?: boolean
  /** A started data path to serve the segment from (shared with a client); else a new engine is started. @default undefined */
  dataPath?: DataPath
  /**
   * Where to record pings (by result, with their round-trip time), re-mounts and the bytes this
   * segment served over TCP (read from the data path's server counters at each scrape; only for
   * a data path this owner started, so that a shared one is not counted twice).
   * @default undefined (nothing is recorded)
   */
  metrics?: ClientMetrics
}

export const DEFAULT_SEGMENT_OWNER_OPTIONS = Object.freeze({
  masterAddress: '127.0.0.1:50051',
  host: '127.0.0.1',
  port: 0,
  pingIntervalMs: 1000,
  rpcTimeoutMs: 5000,
})

const MIN_SEGMENT_SIZE = 2 ** 20

interface ClosableMaster extends MasterApi {
  close(): Promise<void> | void
  getAllKeys?(req: ListKeysRequest): AsyncIterable<string>
}

export declare interface SegmentOwner {
  on(event: 'state', listener: (state: SegmentOwnerState, previous: SegmentOwnerState) => void): this
  on(event: 'mounted' | 'remounting' | 'unmounted' | 'closed', listener: () => void): this
  /** A ping or remount failed (the owner keeps trying). */
  on(event: 'warning', listener: (err: MooncakeError) => void): this
}

export class SegmentOwner extends EventEmitter {
  private _state: SegmentOwnerState = 'starting'
  private timer: NodeJS.Timeout | undefined
  private pinging: Promise<void> | undefined
  private consecutiveFailures = 0
  private closing: Promise<void> | undefined
  /** Writes the disk replicas the master asks for (disk tier; docs/disk-tier.md). */
  private readonly diskWriter: DiskWriter
  /** Ping again at once (disk results are waiting). */
  private pingNow = false
  private metrics: ClientMetrics | undefined
  /** Stops following the data server's counters (after adding their last growth). */
  private untrackServed: (() => void) | undefined

  private constructor(
    private readonly master: MasterApi,
    private readonly ownedMaster: ClosableMaster | undefined,
    private readonly dataPath: DataPath,
    private readonly ownsDataPath: boolean,
    /** The segment's memory (served by the data path). */
    readonly segment: LocalSegment,
    /** What was mounted. */
    readonly descriptor: SegmentDescriptor,
    readonly clientId: string,
    private readonly pingIntervalMs: number,
    private readonly rpcTimeoutMs: number,
  ) {
    super()
    this.diskWriter = new DiskWriter(
      {name: segment.name, window: (offset, length) => segment.window(offset, length)},
      {crc32c: (data, seed) => dataPath.crc32c(data, seed), onResult: () => this.pingSoon()},
    )
  }

  /** Disk replicas written and failed by this owner, and bytes written. */
  get diskStats(): {written: number; failed: number; bytes: number; pending: number} {
    return {...this.diskWriter.counts, pending: this.diskWriter.pending}
  }

  /** Reports finished disk writes now rather than at the next regular ping. */
  private pingSoon(): void {
    if (this.closing || this._state === 'closed' || this._state === 'unmounted') return
    this.pingNow = true
    if (this.pinging || this.timer === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.schedule()
  }

  /** Creates the segment, mounts it and starts pinging; resolves once mounted. */
  static async start(options: SegmentOwnerOptions): Promise<SegmentOwner> {
    const size = options.size
    if (!Number.isSafeInteger(size) || size < MIN_SEGMENT_SIZE) {
      throw new MooncakeError('INVALID_PARAMS', `a segment holds at least ${MIN_SEGMENT_SIZE} bytes (got ${size})`)
    }
    const token = options.token ?? process.env.MOONCAKE_TOKEN
    const hostId = options.hostId ?? defaultHostId()
    const clientId = options.clientId ?? randomUUID()
    const rpcTimeoutMs = options.rpcTimeoutMs ?? DEFAULT_SEGMENT_OWNER_OPTIONS.rpcTimeoutMs
    let master = options.master
    let ownedMaster: ClosableMaster | undefined
    let dataPath = options.dataPath
    const ownsDataPath = !dataPath
    let segment: LocalSegment | undefined
    try {
      if (!master) {
        const address = options.masterAddress ?? process.env.MOONCAKE_MASTER ?? DEFAULT_SEGMENT_OWNER_OPTIONS.masterAddress
        const mod = (await import('./master-client.js')) as unknown as {connectMaster(o: object): Promise<ClosableMaster>}
        ownedMaster = await mod.connectMaster({address, token, timeoutMs: rpcTimeoutMs, connectTimeoutMs: rpcTimeoutMs}).catch((err: unknown) => {
          throw toMooncakeError(err, 'UNAVAILABLE')
        })
        master = ownedMaster
      }
      let endpoints: string[]
      if (!dataPath) {
        dataPath = await createDefaultDataPath({
          token,
          hostId,
          host: options.host ?? DEFAULT_SEGMENT_OWNER_OPTIONS.host,
          port: options.port ?? DEFAULT_SEGMENT_OWNER_OPTIONS.port,
          grants: options.grants ?? true,
        })
        endpoints = await dataPath.start()
      } else {
        endpoints = dataPath.endpoints.length > 0 ? dataPath.endpoints : await dataPath.start()
      }
      if (endpoints.length === 0) throw new MooncakeError('INTERNAL_ERROR', 'the data path has no endpoint to serve a segment from')
      const name = options.name ?? endpoints[0]
      segment = await dataPath.createSegment(name, size)
      const descriptor: SegmentDescriptor = {id: randomUUID(), name, endpoints, size, hostId, grantKey: segment.grantKey}
      await withDeadline(master.mountSegment({clientId, segment: descriptor}), Date.now() + rpcTimeoutMs, 'MountSegment')
      const owner = new SegmentOwner(master, ownedMaster, dataPath, ownsDataPath, segment, descriptor, clientId, options.pingIntervalMs ?? DEFAULT_SEGMENT_OWNER_OPTIONS.pingIntervalMs, rpcTimeoutMs)
      owner.metrics = options.metrics
      if (options.metrics && ownsDataPath && dataPath.servedStats) {
        const dp = dataPath
        owner.untrackServed = options.metrics.trackServed(() => dp.servedStats!())
      }
      owner.setState('mounted')
      owner.schedule()
      return owner
    } catch (err) {
      await segment?.close().catch(() => {})
      if (ownsDataPath) await dataPath?.close().catch(() => {})
      if (ownedMaster) await Promise.resolve(ownedMaster.close()).catch(() => {})
      throw toMooncakeError(err)
    }
  }

  get state(): SegmentOwnerState {
    return this._state
  }

  get name(): string {
    return this.descriptor.name
  }

  get size(): number {
    return this.descriptor.size
  }

  get endpoints(): string[] {
    return this.descriptor.endpoints
  }

  get grantKey(): string | undefined {
    return this.descriptor.grantKey
  }

  private setState(next: SegmentOwnerState): void {
    const prev = this._state
    if (prev === next) return
    this._state = next
    this.emit('state', next, prev)
    this.emit(next)
  }

  private schedule(): void {
    if (this._state === 'closed' || this._state === 'unmounted' || this.closing) return
    const delay = this.pingNow ? 0 : this.pingIntervalMs
    this.pingNow = false
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.pinging = this.pingOnce().finally(() => {
        this.pinging = undefined
        this.schedule()
      })
    }, delay)
  }

  /** One liveness round: Ping, then re-mount or stop as the master says. */
  private async pingOnce(): Promise<void> {
    let result: PingResult
    const diskResults = this.diskWriter.takeResults()
    const t0 = performance.now()
    try {
      result = await withDeadline(
        this.master.ping(diskResults.length > 0 ? {clientId: this.clientId, diskResults} : {clientId: this.clientId}),
        Date.now() + this.rpcTimeoutMs,
        'Ping',
      )
    } catch (err) {
      this.diskWriter.requeueResults(diskResults)
      const e = toMooncakeError(err)
      this.metrics?.recordPing(e.code, (performance.now() - t0) / 1000)
      this.consecutiveFailures++
      if (this.closing) return
      this.emit('warning', e)
      // A master that forgot us (restart without journal) may say so with an error: re-mount.
      if (e.code === 'CLIENT_NOT_FOUND' || e.code === 'SEGMENT_NOT_FOUND') await this.remount()
      return
    }
    this.metrics?.recordPing(result.status, (performance.now() - t0) / 1000)
    this.consecutiveFailures = 0
    if (this.closing) return
    switch (result.status) {
      case 'OK':
        if (this._state === 'remounting') this.setState('mounted')
        this.diskWriter.submit(result.diskTasks)
        return
      case 'NEED_REMOUNT':
        await this.remount()
        return
      case 'UNMOUNTED':
        await this.stopAfterOperatorUnmount()
        return
    }
  }

  private async remount(): Promise<void> {
    if (this.closing) return
    this.setState('remounting')
    try {
      await withDeadline(this.master.reMountSegment({clientId: this.clientId, segments: [this.descriptor]}), Date.now() + this.rpcTimeoutMs, 'ReMountSegment')
      this.metrics?.recordRemount()
      if (!this.closing) this.setState('mounted')
    } catch (err) {
      this.emit('warning', toMooncakeError(err))
    }
  }

  private async stopAfterOperatorUnmount(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    await this.diskWriter.close()
    this.stopServedTracking()
    await this.segment.close().catch(() => {})
    if (this.ownsDataPath) await this.dataPath.close().catch(() => {})
    if (this.ownedMaster) await Promise.resolve(this.ownedMaster.close()).catch(() => {})
    this.setState('unmounted')
  }

  /** Adds the served bytes counted so far while the data path still runs, then stops following it. */
  private stopServedTracking(): void {
    const stop = this.untrackServed
    this.untrackServed = undefined
    stop?.()
  }

  /** Unmounts the segment (unless an operator already did), frees its memory and stops. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    await this.pinging?.catch(() => {})
    await this.diskWriter.close()
    if (this._state !== 'unmounted') {
      try {
        await withDeadline(this.master.unmountSegment({name: this.name, clientId: this.clientId}), Date.now() + this.rpcTimeoutMs, 'UnmountSegment')
      } catch (err) {
        const e = toMooncakeError(err)
        if (e.code !== 'SEGMENT_NOT_FOUND') this.emit('warning', e)
      }
      this.stopServedTracking()
      await this.segment.close().catch(() => {})
      if (this.ownsDataPath) await this.dataPath.close().catch(() => {})
      if (this.ownedMaster) await Promise.resolve(this.ownedMaster.close()).catch(() => {})
    }
    this.setState('closed')
  }
}
