/**
 * The HA role of a master and the leader's own view of its lease (issue 5).
 *
 *   candidate ──won──▶ leader ──lost/deadline/fenced──▶ stepping-down ──▶ candidate
 *       │  ▲                                                   
 *       ▼  │ leader key gone
 *     standby
 *   any ──close()──▶ stopped
 *
 * A candidate that won the election stays 'candidate' while it catches up with the log; it is
 * 'leader' (and serves) only once its metadata is complete.
 */
import {EventEmitter} from 'node:events'

import type {Clock} from '../api.js'

export type Role = 'candidate' | 'standby' | 'leader' | 'stepping-down' | 'stopped'

const ALLOWED: Readonly<Record<Role, readonly Role[]>> = {
  candidate: ['standby', 'leader', 'stepping-down', 'stopped'],
  standby: ['candidate', 'stopped'],
  leader: ['stepping-down', 'stopped'],
  'stepping-down': ['candidate', 'stopped'],
  stopped: [],
}

export declare interface RoleMachine {
  on(event: 'change', listener: (to: Role, from: Role, reason: string) => void): this
}

export class RoleMachine extends EventEmitter {
  private current: Role = 'candidate'
  /** Transitions so far (for tests and /health), newest last, at most 50. */
  readonly history: Array<{from: Role; to: Role; reason: string; at: number}> = []

  constructor(private readonly clock: Clock = {now: () => Date.now()}) {
    super()
  }

  get role(): Role {
    return this.current
  }

  can(to: Role): boolean {
    return ALLOWED[this.current].includes(to)
  }

  /** Moves to `to`; throws on a transition the diagram does not allow. A move to the current role is a no-op. */
  to(to: Role, reason: string): void {
    const from = this.current
    if (from === to) return
    if (!this.can(to)) throw new Error(`illegal HA role transition ${from} -> ${to} (${reason})`)
    this.current = to
    this.history.push({from, to, reason, at: this.clock.now()})
    if (this.history.length > 50) this.history.shift()
    this.emit('change', to, from, reason)
  }
}

/**
 * The leader's own deadline: a keepalive sent at `t` and answered proves the lease lives until at
 * least `t + ttl` on etcd's side (etcd restarts the TTL when it receives it, after `t`). The leader
 * stops serving `margin` before that, so it has stopped before the lease can expire and another
 * master can win (etcd3's `lost` event comes more than 2x TTL late: never wait for it).
 */
export class LeaseDeadline {
  private until = -Infinity

  constructor(
    private readonly clock: Clock,
    readonly ttlMs: number,
    readonly marginMs: number,
  ) {
    if (!(marginMs >= 0 && marginMs < ttlMs)) throw new RangeError(`margin ${marginMs} must be in [0, ttl ${ttlMs})`)
  }

  /** A keepalive sent at `sentAt` was answered with a TTL (ms; the granted one may differ from the asked one). */
  acked(sentAt: number, ttlMs = this.ttlMs): void {
    const d = sentAt + Math.min(ttlMs, this.ttlMs) - this.marginMs
    if (d > this.until) this.until = d
  }

  /** The lease is gone (TTL 0 in a keepalive answer, revoked, fenced). */
  expire(): void {
    this.until = -Infinity
  }

  /** Time (clock ms) after which the leader must not serve. */
  get deadline(): number {
    return this.until
  }

  valid(now = this.clock.now()): boolean {
    return now < this.until
  }

  remainingMs(now = this.clock.now()): number {
    return Math.max(0, this.until - now)
  }
}

/** The margin a leader keeps below its lease: a tenth of the TTL, at least 100 ms, at most 1 s. */
export function defaultMarginMs(ttlMs: number): number {
  return Math.min(1_000, Math.max(100, Math.floor(ttlMs / 10)), Math.floor(ttlMs / 2))
}
