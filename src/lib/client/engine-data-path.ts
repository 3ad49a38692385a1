/**
 * The one file of the client that knows the native transfer engine's API (src/lib/transfer):
 * DataPath over a TransferEngine, and the grant minter the master needs for segments that
 * require grants.
 */
import {toMooncakeError} from '../errors.js'
import type {ItemResult} from '../master/api.js'
import {crc32c as nativeCrc32c} from '../transfer/crc32c.js'
import {TransferEngine} from '../transfer/engine.js'
import type {TransferRequest as EngineRequest, TransferResult} from '../transfer/types.js'
import type {DataPath, LocalSegment, ServedStats, TransferItemResult, TransferOptions, TransferRequest} from './data-path.js'
import type {TransportMode} from './options.js'

export interface EngineDataPathOptions {
  token?: string
  /** Address the data server binds; absent for a client-only engine (no server). */
  host?: string
  port?: number
  hostId: string
  /** Segments created here require master-minted grants. @default true */
  grants?: boolean
}

export {grantMinter} from '../master/grant-minter.js'

/** One transfer() call waiting for the tick's batch: where its requests sit in the batch. */
interface Call {
  /** Index of its first request in the batch (its requests follow in order). */
  first: number
  count: number
  resolve: (r: TransferItemResult[]) => void
}

interface Pending {
  requests: EngineRequest[]
  calls: Call[]
  timeoutMs: number
}

/** Transfers of at least this many bytes get their own native batch (see transfer). */
const SEPARATE_BATCH_BYTES = 256 * 1024

/** Shared, frozen success result (no allocation per transferred item). */
const OK: TransferItemResult = Object.freeze({ok: true, value: undefined, via: 'tcp'}) as TransferItemResult
const OK_MEMCPY: TransferItemResult = Object.freeze({ok: true, value: undefined, via: 'memcpy'}) as TransferItemResult

function itemResult(r: TransferResult | undefined): TransferItemResult {
  if (!r) return {ok: false, code: 'INTERNAL_ERROR', message: 'the engine returned too few results'}
  if (r.ok) return r.crc !== undefined ? {ok: true, value: undefined, via: r.via, crc: r.crc} : r.via === 'memcpy' ? OK_MEMCPY : OK
  return {ok: false, code: r.code === 'INTERNAL_ERROR' ? 'TRANSFER_FAIL' : r.code, message: r.message}
}

/** Transfers requested in the same tick leave in one native batch per transport. */
export class EngineDataPath implements DataPath {
  readonly engine: TransferEngine
  private readonly registered = new Map<ArrayBufferLike, Array<{start: number; end: number}>>()
  private readonly pending = new Map<TransportMode, Pending>()
  private flushScheduled = false
  private readonly grants: boolean

  constructor(options: EngineDataPathOptions) {
    this.grants = options.grants ?? true
    this.engine = new TransferEngine({
      listenHosts: options.host === undefined ? [] : [options.host],
      port: options.port ?? 0,
      token: options.token,
    })
  }

  get endpoints(): string[] {
    return this.engine.endpoints
  }

  async start(): Promise<string[]> {
    if (this.engine.state === 'created') await this.engine.start()
    return this.engine.endpoints
  }

  transfer(requests: TransferRequest[], options: TransferOptions): Promise<TransferItemResult[]> {
    let bytes = 0
    for (const r of requests) bytes += r.local.length
    // Large transfers go alone: a native batch completes as a whole, so merged with other
    // callers' copies each caller would wait for the slowest, and all would then resume together.
    const alone = bytes >= SEPARATE_BATCH_BYTES
    let group = alone ? undefined : this.pending.get(options.transport)
    if (!group) {
      group = {requests: [], calls: [], timeoutMs: 0}
      if (!alone) this.pending.set(options.transport, group)
    }
    group.timeoutMs = Math.max(group.timeoutMs, Math.ceil(options.timeoutMs))
    if (requests.length === 0) return Promise.resolve([])
    const call: Call = {first: group.requests.length, count: requests.length, resolve: () => {}}
    for (const r of requests) {
      group.requests.push({
        op: r.op,
        local: r.local,
        peer: r.remote.endpoints,
        segment: r.remote.segment,
        offset: r.remote.offset,
        length: r.local.length,
        // The master's wire bytes go to the engine as they are (it refuses a malformed one per request).
        grantWire: r.remote.grant,
        crc: r.crc,
      })
    }
    const done = new Promise<TransferItemResult[]>((resolve) => (call.resolve = resolve))
    group.calls.push(call)
    if (alone) void this.submit(options.transport, group)
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(() => this.flush())
    }
    return done
  }

  private flush(): void {
    this.flushScheduled = false
    for (const [transport, group] of this.pending) {
      this.pending.delete(transport)
      if (group.requests.length === 0) continue
      void this.submit(transport, group)
    }
  }

  private async submit(transport: TransportMode, group: Pending): Promise<void> {
    let results: TransferResult[] | undefined
    let failure: ItemResult<void> | undefined
    try {
      results = await this.engine.submit(group.requests, {transport, timeoutMs: Math.max(1, group.timeoutMs)})
    } catch (err) {
      const e = toMooncakeError(err, 'TRANSFER_FAIL')
      failure = {ok: false, code: e.code, message: e.message}
    }
    for (const call of group.calls) {
      const out: TransferItemResult[] = new Array(call.count)
      for (let k = 0; k < call.count; k++) out[k] = failure ?? itemResult(results?.[call.first + k])
      call.resolve(out)
    }
  }

  registerMemory(buffer: Uint8Array): void {
    this.engine.registerLocalMemory(buffer)
    const list = this.registered.get(buffer.buffer) ?? []
    list.push({start: buffer.byteOffset, end: buffer.byteOffset + buffer.byteLength})
    this.registered.set(buffer.buffer, list)
  }

  async unregisterMemory(buffer: Uint8Array): Promise<void> {
    await this.engine.unregisterLocalMemory(buffer)
    const list = this.registered.get(buffer.buffer)
    if (!list) return
    const i = list.findIndex((r) => r.start === buffer.byteOffset && r.end === buffer.byteOffset + buffer.byteLength)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.registered.delete(buffer.buffer)
  }

  isRegistered(view: Uint8Array): boolean {
    const list = this.registered.get(view.buffer)
    if (!list) return false
    const start = view.byteOffset
    const end = start + view.byteLength
    return list.some((r) => start >= r.start && end <= r.end)
  }

  crc32c(data: Uint8Array, seed = 0): number {
    return nativeCrc32c(data, seed)
  }

  async createSegment(name: string, size: number): Promise<LocalSegment> {
    await this.start()
    const segment = this.engine.createSegment(name, size, {grants: this.grants})
    return {
      name: segment.name,
      size: segment.size,
      grantKey: segment.grantKey?.toString('hex'),
      window: (offset: number, length: number) => segment.window(offset, length),
      close: async () => segment.close(),
    }
  }

  stats(): {transferredBytes: number; memcpyBytes: number} {
    if (this.engine.state !== 'running') return {transferredBytes: 0, memcpyBytes: 0}
    const s = this.engine.stats()
    return {transferredBytes: s.transferredBytes, memcpyBytes: s.memcpyBytes}
  }

  servedStats(): ServedStats {
    const out: ServedStats = {bytesRead: 0, bytesWritten: 0, requests: 0}
    if (this.engine.state !== 'running') return out
    // The listener counts socket bytes: what it wrote is what peers read, and the reverse.
    for (const l of this.engine.stats().server?.listeners ?? []) {
      out.bytesRead += l.bytesWritten
      out.bytesWritten += l.bytesRead
      out.requests += l.requests
    }
    return out
  }

  async close(): Promise<void> {
    try {
      await this.engine.close()
    } catch (err) {
      throw toMooncakeError(err)
    }
  }
}
