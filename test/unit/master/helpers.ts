import * as assert from 'uvu/assert'

import {isMooncakeError, type ErrorCodeName} from '../../../src/lib/errors.js'
import type {PutStartResult, ReplicateConfig, SegmentDescriptor} from '../../../src/lib/master/api.js'
import type {MasterServiceOptions} from '../../../src/lib/master/options.js'
import {MasterService, type MasterServiceDeps} from '../../../src/lib/master/service.js'
import {prng} from '../../../bench/chaos/values.js'

export const KiB = 1024
export const MiB = 1024 * 1024

export class FakeClock {
  t = 1_700_000_000_000
  now(): number {
    return this.t
  }
  advance(ms: number): void {
    this.t += ms
  }
}

/** Deterministic PRNG (mulberry32, the one the chaos workload uses). */
export function seeded(seed = 1): () => number {
  return prng(seed)
}

export function setup(options: Partial<MasterServiceOptions> = {}, deps: MasterServiceDeps = {}) {
  const clock = new FakeClock()
  const svc = new MasterService(options, {clock, random: seeded(7), ...deps})
  return {svc, clock}
}

export function descriptor(name: string, size: number, hostId = 'host-a', extra: Partial<SegmentDescriptor> = {}): SegmentDescriptor {
  return {id: `id-${name}`, name, endpoints: [`${name}:1`], size, hostId, ...extra}
}

/** Mounts a segment owned by `owner-<name>` (or `clientId`) and makes the client OK. */
export function mount(svc: MasterService, name: string, size: number, opts: {clientId?: string; hostId?: string; grantKey?: string} = {}): SegmentDescriptor {
  const d = descriptor(name, size, opts.hostId ?? 'host-a', opts.grantKey === undefined ? {} : {grantKey: opts.grantKey})
  const clientId = opts.clientId ?? `owner-${name}`
  svc.mountSegment({clientId, segment: d})
  svc.reMountSegment({clientId, segments: [d]})
  return d
}

let reqSeq = 0

export function start(svc: MasterService, key: string, size: number, config?: ReplicateConfig, clientId = 'writer', hostId?: string): PutStartResult {
  return svc.putStart({clientId, requestId: `r${++reqSeq}`, key, size, config, hostId})
}

export function put(svc: MasterService, key: string, size: number, config?: ReplicateConfig, clientId = 'writer'): PutStartResult {
  const r = start(svc, key, size, config, clientId)
  svc.putEnd({clientId, key, checksum: 1234})
  return r
}

export function throwsCode(fn: () => unknown, code: ErrorCodeName): void {
  try {
    fn()
  } catch (err) {
    if (isMooncakeError(err)) {
      assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
      return
    }
    throw err
  }
  assert.unreachable(`expected ${code}, nothing was thrown`)
}

export function segmentsOf(r: PutStartResult): string[] {
  return r.replicas.filter((x) => x.type === 'memory').map((x) => x.memory!.segment)
}

/**
 * A master (leases of 1 s) with `n` objects `k0`... of 1 KiB on one segment 's' of `segmentBytes`,
 * read once each in an order shuffled by `seed`, 1 ms apart, then every lease expired: `order` is
 * that order, oldest lease first (the order eviction takes them in).
 */
export function leasedInShuffledOrder(n: number, segmentBytes: number, seed: number, deps: MasterServiceDeps = {}) {
  const ctx = setup({leaseTtlMs: 1000}, deps)
  mount(ctx.svc, 's', segmentBytes)
  const keys = Array.from({length: n}, (_, i) => `k${i}`)
  for (const k of keys) put(ctx.svc, k, KiB)
  const order = [...keys]
  const rnd = seeded(seed)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  for (const k of order) {
    ctx.clock.advance(1)
    ctx.svc.getReplicaList(k)
  }
  ctx.clock.advance(1000) // every lease expired
  return {...ctx, order}
}
