/**
 * Auto-batching of single-key calls (the idea of ioredis' auto-pipelining): calls issued in the
 * same tick are sent as one batch RPC. At most `maxInFlight` batches of single calls of one kind
 * are in flight; calls made meanwhile accumulate and leave together when a batch returns, so under
 * load the batches grow and the RPC rate stays far below grpc-js' ~5k unary calls/s. Groups
 * (callMany, the chunks of batch calls) take the queued single calls along but do not wait for
 * that limit: their callers bound their own depth.
 */
import type {ItemResult} from '../master/api.js'
import {MooncakeError, toMooncakeError} from '../errors.js'

export interface CoalescerOptions<I, R> {
  /** Sends a batch; one ItemResult per item, in order. A rejection fails every item of the batch. */
  batch: (items: I[]) => Promise<ItemResult<R>[]>
  /** Sends one item alone (used when a batch holds one item); may be omitted to always batch. */
  single?: (item: I) => Promise<R>
  maxInFlight: number
  maxBatchSize: number
  /** Observes every batch size sent (metrics, tests). */
  onBatch?: (size: number) => void
}

/** A queued call: one item (call) or a group of items answered together (callMany). */
interface Entry<I, R> {
  item?: I
  items?: I[]
  resolve?: (value: R) => void
  reject?: (err: unknown) => void
  settle?: (results: ItemResult<R>[]) => void
}

function size<I, R>(e: Entry<I, R>): number {
  return e.items ? e.items.length : 1
}

export class Coalescer<I, R> {
  private queue: Array<Entry<I, R>> = []
  private scheduled = false
  private inFlight = 0

  constructor(private readonly options: CoalescerOptions<I, R>) {}

  call(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => this.enqueue({item, resolve, reject}))
  }

  /**
   * Many items at once, answered with one ItemResult each (never rejects): the group travels in
   * one batch, merged with whatever else was queued (no per-item promise).
   */
  callMany(items: I[]): Promise<ItemResult<R>[]> {
    if (items.length === 0) return Promise.resolve([])
    return new Promise<ItemResult<R>[]>((settle) => this.enqueue({items, settle}))
  }

  private enqueue(e: Entry<I, R>): void {
    this.queue.push(e)
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(() => {
        this.scheduled = false
        this.flush()
      })
    }
  }

  private flush(): void {
    while (this.queue.length > 0) {
      // Groups (callMany: chunks of a batch call, whose caller bounds how many it has in flight)
      // never wait for the single calls' batches: at the limit they leave alone.
      const atLimit = this.inFlight >= this.options.maxInFlight
      if (atLimit && !this.queue.some((e) => e.items)) return
      const take: Array<Entry<I, R>> = []
      const keep: Array<Entry<I, R>> = []
      let n = 0
      for (const e of this.queue) {
        const c = size(e)
        // Whole entries, up to maxBatchSize items (an entry larger than that goes alone).
        if ((atLimit && !e.items) || (take.length > 0 && n + c > this.options.maxBatchSize)) keep.push(e)
        else {
          take.push(e)
          n += c
        }
      }
      this.queue = keep
      // Only batches of single calls count against maxInFlight.
      const counted = !take.some((e) => e.items)
      if (counted) this.inFlight++
      this.options.onBatch?.(n)
      void this.send(take, n).finally(() => {
        if (counted) this.inFlight--
        this.flush()
      })
    }
  }

  private async send(group: Array<Entry<I, R>>, n: number): Promise<void> {
    if (n === 1 && group[0].items === undefined && this.options.single) {
      const p = group[0]
      try {
        p.resolve!(await this.options.single(p.item as I))
      } catch (err) {
        p.reject!(toMooncakeError(err))
      }
      return
    }
    const items: I[] = []
    for (const e of group) {
      if (e.items) for (const x of e.items) items.push(x)
      else items.push(e.item as I)
    }
    let results: ItemResult<R>[]
    try {
      results = await this.options.batch(items)
    } catch (err) {
      const e = toMooncakeError(err)
      const failed: ItemResult<R> = {ok: false, code: e.code, message: e.message}
      for (const x of group) {
        if (x.settle) x.settle(new Array<ItemResult<R>>(x.items!.length).fill(failed))
        else x.reject!(e)
      }
      return
    }
    const missing: ItemResult<R> = {ok: false, code: 'INTERNAL_ERROR', message: 'the master answered a batch with too few results'}
    let at = 0
    for (const x of group) {
      if (x.settle) {
        const m = x.items!.length
        const mine = results.slice(at, at + m)
        for (let i = 0; i < m; i++) if (!mine[i]) mine[i] = missing
        at += m
        x.settle(mine)
        continue
      }
      const r = results[at++]
      if (!r) x.reject!(new MooncakeError('INTERNAL_ERROR', 'the master answered a batch with too few results'))
      else if (r.ok) x.resolve!(r.value)
      else x.reject!(new MooncakeError(r.code, r.message))
    }
  }
}
