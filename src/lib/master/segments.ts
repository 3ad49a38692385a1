/**
 * Mounted segments and the clients that own them (S4, S12). A segment keeps its index for life
 * (indexes are never reused), so an object's replica can reference it by a small number and a
 * replica on an unmounted segment is recognised by `allocator === null`.
 */
import type {SegmentDescriptor, SegmentStatus} from './api.js'
import {RangeAllocator} from './allocator.js'

export class Segment {
  readonly idx: number
  readonly name: string
  readonly id: string
  readonly clientId: string
  readonly endpoints: string[]
  readonly hostId: string
  readonly grantKey: string | undefined
  readonly capacity: number
  /** null once unmounted: replicas on it are gone. */
  allocator: RangeAllocator | null
  status: SegmentStatus = 'OK'
  /** Drain: unmount at this time at the latest (absolute ms). */
  drainDeadline = 0
  /** Drain started by an operator (the owner is told UNMOUNTED afterwards). */
  drainByOperator = false
  /** Latest lease deadline granted on any object with a replica here (absolute ms). */
  maxLease = 0
  /** Allocated bytes of replicas here whose object is in the plain / soft-pinned eviction heap (evictable once leases expire). */
  plainHeapBytes = 0
  pinnedHeapBytes = 0
  readonly mountedAt: number

  constructor(idx: number, clientId: string, d: SegmentDescriptor, now: number, alignment: number) {
    this.idx = idx
    this.name = d.name
    this.id = d.id
    this.clientId = clientId
    this.endpoints = [...d.endpoints]
    this.hostId = d.hostId
    this.grantKey = d.grantKey
    this.capacity = d.size
    this.allocator = new RangeAllocator(d.size, alignment, Math.min(65_536, Math.max(1024, Math.floor(d.size / 65_536))))
    this.mountedAt = now
  }

  get live(): boolean {
    return this.allocator !== null
  }

  /** Same identity as a descriptor (for ReMountSegment). */
  sameIdentity(clientId: string, d: SegmentDescriptor): boolean {
    return (
      this.clientId === clientId &&
      this.id === d.id &&
      this.name === d.name &&
      this.capacity === d.size &&
      this.hostId === d.hostId &&
      (this.grantKey ?? '') === (d.grantKey ?? '') &&
      this.endpoints.length === d.endpoints.length &&
      this.endpoints.every((e, i) => e === d.endpoints[i])
    )
  }
}

/** A segment owner (or any process that pings). */
export class ClientRecord {
  readonly id: string
  /** Absolute ms after which the client is dead. */
  deadline: number
  lastPingAt: number
  /** Set by ReMountSegment only (the original's ok_client_). */
  ok = false
  readonly segments = new Set<Segment>()

  constructor(id: string, now: number, ttl: number) {
    this.id = id
    this.deadline = now + ttl
    this.lastPingAt = now
  }
}

/** What remains of a segment an operator unmounted, so its owner is told to stop. */
export interface Tombstone {
  clientId: string
  name: string
  at: number
}
