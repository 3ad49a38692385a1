/**
 * A master's etcd session: one lease (TTL = --ha-lease-ttl, rounded up to whole seconds as etcd
 * wants), kept alive every TTL/4 over one keepalive stream (re-opened after errors), with the
 * deadline the lease is known to live until (LeaseDeadline). The leader key and the master's
 * registration live under it. 'lost' is emitted as soon as the deadline passes or etcd answers a
 * keepalive with TTL 0; the session is then dead (open a new one).
 */
import {EventEmitter} from 'node:events'

import type {Etcd3, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IDuplexStream} from 'etcd3'

import type {Clock} from '../api.js'
import {defaultMarginMs, LeaseDeadline} from './role.js'

export declare interface EtcdSession {
  on(event: 'lost', listener: (reason: string) => void): this
}

export class EtcdSession extends EventEmitter {
  readonly deadline: LeaseDeadline
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined
  private opening: Promise<void> | undefined
  private readonly sent: number[] = []
  private timer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private dead = false

  private constructor(
    private readonly etcd: Etcd3,
    readonly leaseId: string,
    readonly ttlMs: number,
    private readonly clock: Clock,
    grantedAt: number,
  ) {
    super()
    this.deadline = new LeaseDeadline(clock, ttlMs, defaultMarginMs(ttlMs))
    this.deadline.acked(grantedAt, ttlMs)
  }

  /** Grants a lease and starts keeping it alive. */
  static async open(etcd: Etcd3, ttlMs: number, clock: Clock = {now: () => Date.now()}): Promise<EtcdSession> {
    const sentAt = clock.now()
    const res = await etcd.leaseClient.leaseGrant({TTL: Math.max(1, Math.ceil(ttlMs / 1000))})
    const granted = Number(res.TTL) * 1000
    const s = new EtcdSession(etcd, res.ID, granted, clock, sentAt)
    s.schedule(0)
    s.armWatchdog()
    return s
  }

  get alive(): boolean {
    return !this.dead && this.deadline.valid()
  }

  /** Stops keeping the lease alive (it expires by itself after its TTL). */
  close(): void {
    this.dead = true
    if (this.timer) clearTimeout(this.timer)
    if (this.watchdog) clearTimeout(this.watchdog)
    try {
      this.stream?.end()
      this.stream?.cancel()
    } catch {}
    this.stream = undefined
  }

  /** Revokes the lease (keys under it go at once); best effort, bounded by the client's deadline. */
  async revoke(): Promise<void> {
    this.close()
    this.deadline.expire()
    await this.etcd.leaseClient.leaseRevoke({ID: this.leaseId}).catch(() => {})
  }

  private lose(reason: string): void {
    if (this.dead) return
    this.close()
    this.deadline.expire()
    this.emit('lost', reason)
  }

  private armWatchdog(): void {
    if (this.dead) return
    if (this.watchdog) clearTimeout(this.watchdog)
    const ms = this.deadline.remainingMs()
    this.watchdog = setTimeout(() => {
      if (!this.deadline.valid()) this.lose('no keepalive answered within the lease TTL')
      else this.armWatchdog()
    }, ms + 1)
  }

  private schedule(ms: number): void {
    if (this.dead) return
    this.timer = setTimeout(() => {
      void this.keepalive().finally(() => this.schedule(Math.max(50, Math.floor(this.ttlMs / 4))))
    }, ms)
  }

  private async keepalive(): Promise<void> {
    if (this.dead) return
    if (!this.deadline.valid()) return this.lose('no keepalive answered within the lease TTL')
    try {
      if (this.stream === undefined) {
        this.opening ??= this.openStream().finally(() => (this.opening = undefined))
        await this.opening
      }
      this.sent.push(this.clock.now())
      this.stream!.write({ID: this.leaseId})
    } catch {
      this.dropStream()
    }
  }

  private async openStream(): Promise<void> {
    const stream = await this.etcd.leaseClient.leaseKeepAlive()
    this.sent.length = 0
    stream.on('data', (res: ILeaseKeepAliveResponse) => {
      const sentAt = this.sent.shift()
      if (this.stream !== stream || sentAt === undefined) return
      const ttl = Number(res.TTL)
      if (!(ttl > 0)) return this.lose('etcd says the lease is gone (expired or revoked)')
      this.deadline.acked(sentAt, ttl * 1000)
      this.armWatchdog()
    })
    const drop = () => {
      if (this.stream === stream) this.dropStream()
    }
    stream.on('error', drop)
    stream.on('end', drop)
    this.stream = stream
  }

  private dropStream(): void {
    try {
      this.stream?.cancel()
    } catch {}
    this.stream = undefined
    this.sent.length = 0
  }
}
