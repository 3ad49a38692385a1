/**
 * Auto-batching of single-key calls (the idea of ioredis' auto-pipelining): calls issued in the
 * same tick are sent as one batch RPC. At most `maxInFlight` batches of one kind are in flight;
 * calls made meanwhile accumulate and leave together when a batch returns, so under load the
 * batches grow and the RPC rate stays far below grpc-js' ~5k unary calls/s.
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

interface Pending<I, R> {
  item: I
  resolve: (value: R) => void
  reject: (err: unknown) => void
}

export class Coalescer<I, R> {
  private queue: Array<Pending<I, R>> = []
  private scheduled = false
  private inFlight = 0

  constructor(private readonly options: CoalescerOptions<I, R>) {}

  call(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({item, resolve, reject})
      if (!this.scheduled) {
        this.scheduled = true
        process.nextTick(() => {
          this.scheduled = false
          this.flush()
        })
      }
    })
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const group = this.queue.length <= this.options.maxBatchSize ? this.queue : this.queue.slice(0, this.options.maxBatchSize)
      this.queue = group === this.queue ? [] : this.queue.slice(group.length)
      this.inFlight++
      this.options.onBatch?.(group.length)
      void this.send(group).finally(() => {
        this.inFlight--
        this.flush()
      })
    }
  }

  private async send(group: Array<Pending<I, R>>): Promise<void> {
    if (group.length === 1 && this.options.single) {
      const p = group[0]
      try {
        p.resolve(await this.options.single(p.item))
      } catch (err) {
        p.reject(toMooncakeError(err))
      }
      return
    }
    let results: ItemResult<R>[]
    try {
      results = await this.options.batch(group.map((p) => p.item))
    } catch (err) {
      const e = toMooncakeError(err)
      for (const p of group) p.reject(e)
      return
    }
    for (let i = 0; i < group.length; i++) {
      const r = results[i]
      if (!r) group[i].reject(new MooncakeError('INTERNAL_ERROR', 'the master answered a batch with too few results'))
      else if (r.ok) group[i].resolve(r.value)
      else group[i].reject(new MooncakeError(r.code, r.message))
    }
  }
}
