/**
 * Local replicas: what this peer serves. A replica owns one data segment holding the whole
 * payload and advertises the shards it holds with one holder entry in etcd (under the peer's
 * lease). Advertising is coalesced: at most one put in flight per replica, the latest state wins.
 */
import type {Lease} from 'etcd3'

import type {DataSegment} from './engine.js'
import type {P2PMetadata} from './metadata.js'
import type {HolderEntry, PayloadRecord} from './types.js'

export class ShardBitmap {
  readonly bits: Uint8Array
  private held = 0

  constructor(readonly size: number) {
    this.bits = new Uint8Array(Math.ceil(size / 8))
  }

  static decode(shards: 'all' | string, size: number): ShardBitmap {
    const map = new ShardBitmap(size)
    if (shards === 'all') {
      for (let i = 0; i < size; i++) map.set(i)
      return map
    }
    const raw = Buffer.from(shards, 'base64')
    map.bits.set(raw.subarray(0, map.bits.length))
    // Clear bits past the end (malformed input) and count.
    for (let i = size; i < map.bits.length * 8; i++) map.bits[i >> 3] &= ~(1 << (i & 7))
    for (let i = 0; i < size; i++) if (map.has(i)) map.held++
    return map
  }

  has(index: number): boolean {
    return index >= 0 && index < this.size && (this.bits[index >> 3] & (1 << (index & 7))) !== 0
  }

  set(index: number): boolean {
    if (this.has(index)) return false
    this.bits[index >> 3] |= 1 << (index & 7)
    this.held++
    return true
  }

  get count(): number {
    return this.held
  }

  get complete(): boolean {
    return this.held === this.size
  }

  encode(): 'all' | string {
    return this.complete ? 'all' : Buffer.from(this.bits).toString('base64')
  }
}

export type ReplicaKind = 'seed' | 'replica'

export class LocalReplica {
  readonly shards: ShardBitmap
  /** Shards being downloaded right now (published as claims). */
  readonly pending = new Set<number>()
  /** Reads in flight by holder peer (published so others can see each holder's load). */
  readonly reading = new Map<string, number>()
  private putting: Promise<void> | undefined
  private dirty = false
  private released = false
  private advertised = false
  private silent = false

  constructor(
    readonly record: PayloadRecord,
    readonly kind: ReplicaKind,
    readonly segment: DataSegment,
    private readonly meta: P2PMetadata,
    private readonly self: () => {peer: string; endpoints: string[]; lease: Lease},
    private readonly onError: (err: unknown) => void,
  ) {
    this.shards = new ShardBitmap(record.shardCount)
  }

  get name(): string {
    return this.record.name
  }

  /** Records the start (true) or end (false) of a read of shard `index` from `holder`. */
  track(index: number, holder: string, started: boolean): void {
    if (started) {
      this.pending.add(index)
      this.reading.set(holder, (this.reading.get(holder) ?? 0) + 1)
    } else {
      this.pending.delete(index)
      const left = (this.reading.get(holder) ?? 1) - 1
      if (left > 0) this.reading.set(holder, left)
      else this.reading.delete(holder)
    }
  }

  private encodePending(): string {
    const map = new ShardBitmap(this.record.shardCount)
    for (const index of this.pending) map.set(index)
    return Buffer.from(map.bits).toString('base64')
  }

  /** The holder entry was published by the create transaction (register). */
  markAdvertised(): void {
    this.advertised = true
  }

  get isReleased(): boolean {
    return this.released
  }

  entry(): HolderEntry {
    const {peer, endpoints} = this.self()
    return {
      peer,
      endpoints,
      segment: this.segment.name,
      base: 0,
      shards: this.shards.encode(),
      count: this.shards.count,
      ...(this.pending.size > 0 ? {pending: this.encodePending()} : {}),
      ...(this.reading.size > 0 ? {reading: Object.fromEntries(this.reading)} : {}),
      payloadId: this.record.id,
    }
  }

  /** Never advertise this replica (a download that does not serve others). */
  silence(): void {
    this.silent = true
  }

  /** Publishes the current shard set (coalesced); resolves when a put covering it is done. */
  advertise(): Promise<void> {
    if (this.released || this.silent) return Promise.resolve()
    this.dirty = true
    if (!this.putting) this.putting = this.pump()
    return this.putting
  }

  private async pump(): Promise<void> {
    try {
      while (this.dirty && !this.released) {
        this.dirty = false
        const {lease} = this.self()
        try {
          await this.meta.putHolder(lease, this.name, this.entry())
          this.advertised = true
        } catch (err) {
          this.onError(err)
        }
      }
    } finally {
      this.putting = undefined
    }
  }

  /**
   * Stops serving: the holder entry goes first (no new reader picks this peer), then after
   * `drainMs` (readers that chose it just before finish) the segment closes. Reads in flight
   * on the segment finish; later ones fail with a clean error and the reader tries elsewhere.
   */
  async release(drainMs: number): Promise<void> {
    if (this.released) return
    this.released = true
    await this.putting?.catch(() => {})
    if (this.advertised) {
      await this.meta.deleteHolder(this.name, this.self().peer).catch((err) => this.onError(err))
      if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs))
    }
    await this.segment.close().catch((err) => this.onError(err))
  }
}
