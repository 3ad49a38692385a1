/**
 * An in-process stand-in for the native data path, for UNIT tests only: segments are plain
 * Buffers in a registry shared by every FakeDataPath of the process; faults can be injected.
 */
import type {ItemResult} from '../../src/lib/master/api.js'
import type {DataPath, LocalSegment, TransferOptions, TransferRequest} from '../../src/lib/client/data-path.js'
import {crc32cJs} from '../../src/lib/client/crc32c.js'

export class FakeNetwork {
  readonly segments = new Map<string, Buffer>()
  /** Segments whose transfers fail. */
  readonly failing = new Set<string>()
  /** Delay added to every transfer (ms). */
  delayMs = 0
  transfers = 0
  submits = 0
  private port = 40000

  nextEndpoint(): string {
    return `127.0.0.1:${this.port++}`
  }
}

export class FakeDataPath implements DataPath {
  endpoints: string[] = []
  private readonly registered: Uint8Array[] = []
  private readonly owned = new Set<string>()

  constructor(readonly net: FakeNetwork) {}

  async start(): Promise<string[]> {
    if (this.endpoints.length === 0) this.endpoints = [this.net.nextEndpoint()]
    return this.endpoints
  }

  async transfer(requests: TransferRequest[], options: TransferOptions): Promise<ItemResult<void>[]> {
    this.net.submits++
    if (this.net.delayMs > 0) await new Promise((r) => setTimeout(r, this.net.delayMs))
    return requests.map((req): ItemResult<void> => {
      this.net.transfers++
      if (!this.isRegistered(req.local)) return {ok: false, code: 'INVALID_PARAMS', message: 'local memory is not registered'}
      const seg = this.net.segments.get(req.remote.segment)
      if (!seg || this.net.failing.has(req.remote.segment)) return {ok: false, code: 'TRANSFER_FAIL', message: `segment ${req.remote.segment} unreachable`}
      const {offset} = req.remote
      const len = req.local.length
      if (offset < 0 || offset + len > seg.length) return {ok: false, code: 'INVALID_PARAMS', message: 'out of bounds'}
      if (req.op === 'write') seg.set(req.local, offset)
      else req.local.set(seg.subarray(offset, offset + len))
      return {ok: true, value: undefined}
    })
  }

  registerMemory(buffer: Uint8Array): void {
    this.registered.push(buffer)
  }

  async unregisterMemory(buffer: Uint8Array): Promise<void> {
    const i = this.registered.indexOf(buffer)
    if (i >= 0) this.registered.splice(i, 1)
  }

  isRegistered(view: Uint8Array): boolean {
    return this.registered.some(
      (r) => r.buffer === view.buffer && view.byteOffset >= r.byteOffset && view.byteOffset + view.byteLength <= r.byteOffset + r.byteLength,
    )
  }

  crc32c(data: Uint8Array, seed = 0): number {
    return crc32cJs(data, seed)
  }

  async createSegment(name: string, size: number): Promise<LocalSegment> {
    const mem = Buffer.alloc(size)
    this.net.segments.set(name, mem)
    this.owned.add(name)
    const net = this.net
    return {
      name,
      size,
      window: (offset: number, length: number) => mem.subarray(offset, offset + length),
      close: async () => {
        net.segments.delete(name)
      },
    }
  }

  async close(): Promise<void> {
    for (const name of this.owned) this.net.segments.delete(name)
  }
}
