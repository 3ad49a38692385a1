/**
 * The download scheduler of getReplica:
 * - a bounded number of shard reads in flight (no task per shard);
 * - rarest shard first, random among equals, so peers that start together fetch different
 *   shards and can trade them instead of all pulling the same ones from the seeder;
 * - for each read, the least-loaded holder (reads this peer has in flight to it), preferring a
 *   holder that is not a complete copy on ties (complete copies are the scarce uplinks early on);
 * - the holder set follows an etcd watch (shards appear as other peers land them) and is
 *   re-read from etcd after a failure;
 * - a failed holder cools down with exponential backoff (jittered) while the shard goes back
 *   to the queue; nothing loops forever: a stall timeout (no shard landed) and an optional
 *   overall deadline end the download;
 * - no polling: workers sleep on a notifier woken by holder changes, completions and timers.
 */
import {MooncakeError, toMooncakeError} from '../errors.js'
import type {DataPlane, DataSegment} from './engine.js'
import type {HolderView, P2PMetadata} from './metadata.js'
import {ShardBitmap} from './serve.js'
import type {HolderEntry, P2PEvent, PayloadRecord, ShardLayout} from './types.js'

export interface DownloadPlan {
  meta: P2PMetadata
  plane: DataPlane
  self: string
  record: PayloadRecord
  shards: ShardLayout[]
  segment: DataSegment
  concurrency: number
  readTimeoutMs: number
  stallTimeoutMs: number
  deadline?: number
  signal?: AbortSignal
  verify: boolean
  /** Called once per shard after it landed and was verified (write it out, advertise it). */
  landed(shard: ShardLayout): Promise<void>
  /** A read of the shard from `holder` starts (true) or failed (false): published as a claim. */
  claim?(index: number, holder: string, claimed: boolean): void
  /**
   * Most reads in flight towards one holder, counting the ones other downloaders publish: a
   * holder's uplink is shared, and fewer, faster reads let shards land (and be re-served)
   * sooner. @default 4
   */
  maxReadsPerHolder?: number
  onEvent?: (event: P2PEvent) => void
}

export interface DownloadStats {
  retries: number
  bytesByHolder: Record<string, number>
}

interface Holder {
  entry: HolderEntry
  shards: ShardBitmap
  pending: ShardBitmap | undefined
}

const BACKOFF_MIN_MS = 100
const BACKOFF_MAX_MS = 2_000
const REFRESH_MIN_INTERVAL_MS = 200

/** Wakes sleepers when something they may be waiting for changed. */
class Notifier {
  private waiters: Array<() => void> = []
  notify(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(1, timeoutMs))
      const wake = (): void => {
        clearTimeout(timer)
        resolve()
      }
      function done(): void {
        resolve()
      }
      this.waiters.push(wake)
    })
  }
}

export class Downloader {
  private readonly holders = new Map<string, Holder>()
  private readonly pending = new Set<number>()
  private readonly inFlightShards = new Set<number>()
  private readonly inFlightByHolder = new Map<string, number>()
  private readonly failures = new Map<string, {count: number; until: number}>()
  private readonly notifier = new Notifier()
  private readonly stats: DownloadStats = {retries: 0, bytesByHolder: {}}
  private lastLanded = Date.now()
  private lastError: string | undefined
  private refreshing: Promise<void> | undefined
  private lastRefresh = 0
  private fatal: MooncakeError | undefined

  constructor(private readonly plan: DownloadPlan) {
    for (const shard of plan.shards) this.pending.add(shard.index)
  }

  async run(): Promise<DownloadStats> {
    const {plan} = this
    const view = await plan.meta.listHolders(plan.record.name)
    this.apply(view)
    this.lastRefresh = Date.now()
    let watcher
    try {
      watcher = await plan.meta.watchHolders(
        plan.record.name,
        view.revision,
        (entry) => {
          this.upsert(entry)
          this.notifier.notify()
        },
        (peer) => {
          this.holders.delete(peer)
          this.notifier.notify()
        },
      )
    } catch (err) {
      throw toMooncakeError(err, 'UNAVAILABLE')
    }
    const onAbort = (): void => {
      this.fatal ??= new MooncakeError('INTERRUPTED', `download of "${plan.record.name}" was interrupted`)
      this.notifier.notify()
    }
    plan.signal?.addEventListener('abort', onAbort)
    if (plan.signal?.aborted) onAbort()
    try {
      const workers = Array.from({length: Math.max(1, Math.min(plan.concurrency, plan.shards.length))}, () => this.worker())
      await Promise.all(workers)
      if (this.fatal) throw this.fatal
      return this.stats
    } finally {
      plan.signal?.removeEventListener('abort', onAbort)
      await watcher.cancel().catch(() => {})
    }
  }

  private apply(view: HolderView): void {
    this.holders.clear()
    for (const entry of view.holders.values()) this.upsert(entry)
  }

  private upsert(entry: HolderEntry): void {
    if (entry.peer === this.plan.self) return
    if (entry.payloadId !== this.plan.record.id) return
    const size = this.plan.record.shardCount
    this.holders.set(entry.peer, {
      entry,
      shards: ShardBitmap.decode(entry.shards, size),
      pending: entry.pending ? ShardBitmap.decode(entry.pending, size) : undefined,
    })
  }

  /** Re-reads the holder set from etcd (coalesced, rate-limited). */
  private refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing
    const wait = Math.max(0, this.lastRefresh + REFRESH_MIN_INTERVAL_MS - Date.now())
    this.refreshing = (async () => {
      try {
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        this.apply(await this.plan.meta.listHolders(this.plan.record.name))
      } catch (err) {
        this.lastError = `holder refresh: ${(err as Error).message}`
      } finally {
        this.lastRefresh = Date.now()
        this.refreshing = undefined
        this.notifier.notify()
      }
    })()
    return this.refreshing
  }

  private usable(peer: string, now: number): boolean {
    const failure = this.failures.get(peer)
    return !failure || failure.until <= now
  }

  /**
   * The shard to read next: rarest first, counting holders and other peers' claims, and among
   * equals one that a partial copy (not only a complete one) can serve; random among ties.
   * So peers starting together spread over different shards, the seeder's uplink carries
   * bytes nobody has yet, and peers fetch what others already have from each other.
   */
  private pick(now: number): {shard: ShardLayout; holder: Holder} | {waitMs: number} {
    const cap = this.plan.maxReadsPerHolder ?? 4
    // Reads in flight towards each holder: ours, plus what other downloaders publish.
    const load = new Map<string, number>(this.inFlightByHolder)
    for (const [peer, holder] of this.holders) {
      if (peer === this.plan.self || !holder.entry.reading) continue
      for (const [target, n] of Object.entries(holder.entry.reading)) load.set(target, (load.get(target) ?? 0) + n)
    }
    const open = (peer: string): boolean => this.usable(peer, now) && (load.get(peer) ?? 0) < cap
    let best: ShardLayout | undefined
    let bestKey = Infinity
    let ties = 0
    let soonest = Infinity
    let busy = false
    for (const index of this.pending) {
      if (this.inFlightShards.has(index)) continue
      let count = 0
      let claims = 0
      let available = 0
      let partial = false
      for (const [peer, holder] of this.holders) {
        if (holder.pending?.has(index)) claims++
        if (!holder.shards.has(index)) continue
        count++
        if (!this.usable(peer, now)) soonest = Math.min(soonest, this.failures.get(peer)!.until - now)
        else if (!open(peer)) busy = true
        else {
          available++
          if (!holder.shards.complete) partial = true
        }
      }
      if (available === 0) continue
      const key = (count + claims) * 2 + (partial ? 0 : 1)
      if (key < bestKey) {
        best = this.plan.shards[index]
        bestKey = key
        ties = 1
      } else if (key === bestKey && Math.random() * ++ties < 1) {
        best = this.plan.shards[index]
      }
    }
    if (!best) {
      // Holders at their cap publish when a read ends (watch); re-check soon in case of lag.
      const wait = busy ? 200 : 1_000
      return {waitMs: Math.min(wait, Number.isFinite(soonest) ? soonest : wait)}
    }
    let chosen: Holder | undefined
    let chosenScore = Infinity
    let chosenTies = 0
    for (const [peer, holder] of this.holders) {
      if (!holder.shards.has(best.index) || !open(peer)) continue
      const score = (load.get(peer) ?? 0) * 2 + (holder.shards.complete ? 1 : 0)
      if (score < chosenScore) {
        chosen = holder
        chosenScore = score
        chosenTies = 1
      } else if (score === chosenScore && Math.random() * ++chosenTies < 1) {
        chosen = holder
      }
    }
    return {shard: best, holder: chosen!}
  }

  private checkDeadlines(now: number): void {
    if (this.fatal) return
    const {plan} = this
    if (plan.deadline !== undefined && now >= plan.deadline) {
      this.fatal = new MooncakeError(
        'DEADLINE_EXCEEDED',
        `download of "${plan.record.name}" did not finish in time: ${plan.shards.length - this.pending.size}/${plan.shards.length} shards landed${this.lastError ? ` (last error: ${this.lastError})` : ''}`,
      )
    } else if (now - this.lastLanded >= plan.stallTimeoutMs) {
      const holders = [...this.holders.keys()]
      this.fatal = new MooncakeError(
        'TRANSFER_FAIL',
        `download of "${plan.record.name}" made no progress for ${plan.stallTimeoutMs} ms with ${this.pending.size} shard(s) left; ` +
          (holders.length ? `holders: ${holders.join(', ')}` : 'no live peer holds the missing shards') +
          (this.lastError ? `; last error: ${this.lastError}` : ''),
      )
    }
  }

  private async worker(): Promise<void> {
    const {plan} = this
    for (;;) {
      const now = Date.now()
      this.checkDeadlines(now)
      if (this.fatal) {
        this.notifier.notify()
        return
      }
      if (this.pending.size === 0) return
      if (this.pending.size === this.inFlightShards.size) {
        // Everything left is being read by other workers: wait for one of them.
        await this.notifier.wait(this.sleepBound(now, 1_000))
        continue
      }
      const choice = this.pick(now)
      if ('waitMs' in choice) {
        void this.refresh()
        await this.notifier.wait(this.sleepBound(now, choice.waitMs))
        continue
      }
      await this.fetch(choice.shard, choice.holder)
    }
  }

  /** Sleeps at most until the next deadline that could end the download. */
  private sleepBound(now: number, wantMs: number): number {
    let bound = Math.min(wantMs, this.lastLanded + this.plan.stallTimeoutMs - now)
    if (this.plan.deadline !== undefined) bound = Math.min(bound, this.plan.deadline - now)
    return Math.max(1, bound)
  }

  private async fetch(shard: ShardLayout, holder: Holder): Promise<void> {
    const {plan} = this
    const peer = holder.entry.peer
    this.inFlightShards.add(shard.index)
    this.inFlightByHolder.set(peer, (this.inFlightByHolder.get(peer) ?? 0) + 1)
    plan.claim?.(shard.index, peer, true)
    try {
      const readTimeout = plan.deadline === undefined ? plan.readTimeoutMs : Math.max(1, Math.min(plan.readTimeoutMs, plan.deadline - Date.now()))
      await plan.plane.read(
        {
          endpoints: holder.entry.endpoints,
          segment: holder.entry.segment,
          offset: holder.entry.base + shard.offset,
          length: shard.length,
          grant: holder.entry.grant,
          local: plan.segment,
          localOffset: shard.offset,
        },
        readTimeout,
      )
      if (plan.verify && plan.record.shardCrcs) {
        const crc = plan.plane.crc32c(plan.segment.window(shard.offset, shard.length))
        const want = plan.record.shardCrcs[shard.index]
        if (crc !== want) {
          throw new MooncakeError('CHECKSUM_MISMATCH', `shard ${shard.index} from "${peer}" has CRC32C ${crc}, expected ${want}`)
        }
      }
      if (this.fatal) return
      await plan.landed(shard)
      this.pending.delete(shard.index)
      this.failures.delete(peer)
      this.lastLanded = Date.now()
      this.stats.bytesByHolder[peer] = (this.stats.bytesByHolder[peer] ?? 0) + shard.length
    } catch (err) {
      const error = toMooncakeError(err, 'TRANSFER_FAIL')
      if (error.code === 'INTERRUPTED' || error.code === 'FILE_WRITE_FAIL' || error.code === 'FILE_OPEN_FAIL') {
        this.fatal ??= error
        return
      }
      this.stats.retries++
      this.lastError = `${peer}: ${error.code}: ${error.message}`
      const previous = this.failures.get(peer)?.count ?? 0
      const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** previous)
      this.failures.set(peer, {count: previous + 1, until: Date.now() + backoff * (0.5 + Math.random() / 2)})
      plan.onEvent?.({type: 'retry', name: plan.record.name, shard: shard.index, holder: peer, error: `${error.code}: ${error.message}`, attempt: previous + 1})
      void this.refresh()
    } finally {
      plan.claim?.(shard.index, peer, false)
      this.inFlightShards.delete(shard.index)
      const left = (this.inFlightByHolder.get(peer) ?? 1) - 1
      if (left > 0) this.inFlightByHolder.set(peer, left)
      else this.inFlightByHolder.delete(peer)
      this.notifier.notify()
    }
  }
}
