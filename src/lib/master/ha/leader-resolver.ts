/**
 * Finds the leader master through etcd (clients and segment owners with --etcd, issue 5): reads
 * `mooncake/<clusterId>/master` and caches it; `resolve()` waits (within a deadline) while no
 * leader is elected; `invalidate()` forgets an address that failed (NOT_LEADER, unreachable) so
 * the next resolve asks etcd again. No watch: a leader change shows as a failed call anyway, and
 * etcd3's watch reconnect loop would keep a process with an unreachable etcd alive.
 */
import type {Etcd3} from 'etcd3'

import {MooncakeError} from '../../errors.js'
import {connectEtcd, getKey, haKeys} from './etcd.js'

export interface LeaderResolverOptions {
  etcd: string[] | string
  clusterId?: string
  /** Deadline of each etcd call, ms. @default 2_000 */
  callTimeoutMs?: number
}

export interface LeaderInfo {
  address: string
  /** Create revision of the leader key (the leader's view version). */
  viewVersion: number
}

export class LeaderResolver {
  private cached: LeaderInfo | undefined
  private closed = false
  private readonly key: string

  private constructor(
    private readonly etcd: Etcd3,
    clusterId: string,
  ) {
    this.key = haKeys(clusterId).leader
  }

  static async create(options: LeaderResolverOptions): Promise<LeaderResolver> {
    const etcd = await connectEtcd(options.etcd, options.callTimeoutMs ?? 2_000)
    return new LeaderResolver(etcd, options.clusterId ?? 'mooncake_cluster')
  }

  /** The last known leader, without asking etcd. */
  get current(): LeaderInfo | undefined {
    return this.cached
  }

  /** The leader's address; waits (polling and watching) until one is elected or `deadline` (Unix ms) passes. */
  async resolve(deadline: number): Promise<LeaderInfo> {
    if (this.cached !== undefined) return this.cached
    let delay = 25
    let lastError: unknown
    for (;;) {
      if (this.closed) throw new MooncakeError('UNAVAILABLE', 'the leader resolver is closed')
      try {
        const kv = await getKey(this.etcd, this.key)
        if (kv !== undefined) {
          this.cached = {address: kv.value.toString('utf8'), viewVersion: Number(kv.create_revision)}
          return this.cached
        }
        lastError = undefined
      } catch (err) {
        lastError = err
      }
      if (this.cached !== undefined) return this.cached
      if (Date.now() + delay >= deadline) {
        throw new MooncakeError(
          'UNAVAILABLE',
          lastError === undefined
            ? `no leader master is elected under ${this.key} (is a \`mooncake master --etcd\` running with this --cluster-id?)`
            : `cannot read the leader from etcd: ${(lastError as Error).message}: check --etcd`,
          {cause: lastError},
        )
      }
      await new Promise((r) => setTimeout(r, delay))
      delay = Math.min(200, delay * 2)
    }
  }

  /** Forgets `address` (it failed or said NOT_LEADER); a hint from a NOT_LEADER answer is taken as the new leader. */
  invalidate(address?: string, hint?: string): void {
    if (address === undefined || this.cached?.address === address) this.cached = undefined
    if (hint !== undefined && hint !== address && hint !== '') this.cached = {address: hint, viewVersion: 0}
  }

  close(): void {
    this.closed = true
    this.etcd.close()
  }
}
