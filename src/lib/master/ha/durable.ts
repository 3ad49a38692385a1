/**
 * What the journal (single master, --data-dir) and the replication log (etcd) share: mutations
 * are appended synchronously (numbered from 1), written in groups, and a reply that depends on
 * mutation N waits for `waitDurable(N)` before the client sees success.
 */
import {MooncakeError} from '../../errors.js'
import type {Mutation} from '../mutations.js'

export interface DurableLog {
  /** Buffers a mutation; it is written with the next group. */
  append(m: Mutation): void
  /** Sequence number of the last appended mutation. */
  readonly appendedSeq: number
  /** Every mutation up to this one is durable. */
  readonly durableSeq: number
  /** Resolves once mutation `seq` is durable; rejects when it never will be (NOT_LEADER, UNAVAILABLE, INTERNAL_ERROR). */
  waitDurable(seq: number): Promise<void>
  /** Stops writing; waiters still pending are rejected with `reason`. */
  close(reason?: MooncakeError): Promise<void>
}

interface Waiter {
  seq: number
  resolve(): void
  reject(err: MooncakeError): void
}

/** Waiters ordered by sequence number (replies arrive in increasing order almost always). */
export class Waiters {
  private list: Waiter[] = []

  add(seq: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w = {seq, resolve, reject}
      const list = this.list
      if (list.length === 0 || list[list.length - 1].seq <= seq) list.push(w)
      else {
        let i = list.length - 1
        while (i > 0 && list[i - 1].seq > seq) i--
        list.splice(i, 0, w)
      }
    })
  }

  get size(): number {
    return this.list.length
  }

  /** Resolves every waiter up to `seq`. */
  release(seq: number): void {
    let n = 0
    while (n < this.list.length && this.list[n].seq <= seq) this.list[n++].resolve()
    if (n > 0) this.list = this.list.slice(n)
  }

  /** Rejects every waiter above `seq` (all when omitted). */
  fail(err: MooncakeError, aboveSeq = -Infinity): void {
    const keep: Waiter[] = []
    for (const w of this.list) {
      if (w.seq > aboveSeq) w.reject(err)
      else keep.push(w)
    }
    this.list = keep
  }
}

export function notLeader(message: string, leader?: string): MooncakeError {
  return new MooncakeError('NOT_LEADER', message, leader === undefined ? {} : {details: {leader}})
}
