/**
 * Space the master reserved for this client (ReserveSpace), from which small puts take their
 * ranges without a PutStart each [ours]: the client bumps a cursor through the range, writes
 * with the range's grant, and BatchPutCommit makes the objects readable. One reservation is open
 * for new placements at a time; a full or ageing one is retired and released once every
 * placement taken from it is committed or abandoned.
 */
import type {MemoryLocation, ReserveSpaceRequest, ReserveSpaceResult} from '../master/api.js'

export interface ReservationPoolOptions {
  reserve(req: ReserveSpaceRequest): Promise<ReserveSpaceResult>
  release(reservationId: number): Promise<void>
  clientId: string
  hostId: string
  /**
   * Most bytes asked for per reservation: the first asks for FIRST_RESERVATION, each one used up
   * asks for twice as much as the one before, up to this (a larger value gets its own size).
   */
  reserveBytes: number
  /** After a failed ReserveSpace, placements are refused (callers use PutStart) for this long. */
  retryAfterMs?: number
  now?: () => number
}

/** A range taken from a reservation: write `length` bytes at `location`, then commit or abandon. */
export interface ReservedPlacement {
  reservationId: number
  location: MemoryLocation
}

interface Reservation {
  result: ReserveSpaceResult
  /** Next free offset (segment offsets, aligned). */
  cursor: number
  end: number
  /** Local clock time after which no new placement is taken from it. */
  useUntil: number
  /** Placements taken and not yet settled. */
  open: number
  /** Placements settled without a commit: their ranges are still the master's to free. */
  abandoned: number
  retired: boolean
}

/** What a client asks for first: a one-off put should not hold (or make the master evict) much. */
const FIRST_RESERVATION = 256 * 1024

/** Longest a reservation takes new placements: well inside the master's grant lifetime. */
const MAX_USE_MS = 10_000

export class ReservationPool {
  readonly #o: ReservationPoolOptions
  readonly #now: () => number
  #current: Reservation | undefined
  #reserving: Promise<void> | undefined
  #refusedUntil = 0
  #nextBytes: number
  readonly #byId = new Map<number, Reservation>()

  constructor(options: ReservationPoolOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#nextBytes = Math.min(FIRST_RESERVATION, options.reserveBytes)
  }

  /**
   * A range of `size` bytes, or undefined when the master cannot reserve space now (the caller
   * falls back to PutStart). Every placement must later be passed to settle().
   */
  async place(size: number, preferSameNode: boolean): Promise<ReservedPlacement | undefined> {
    // Other callers may use up a new reservation before this one gets its turn: try a few.
    for (let attempt = 0; attempt < 4; attempt++) {
      if (this.#now() < this.#refusedUntil) return undefined
      const r = this.#current
      if (r !== undefined && !r.retired) {
        const taken = this.#take(r, size)
        if (taken !== undefined) return taken
        // Used up while in use: the next one may be larger.
        if (this.#now() <= r.useUntil) this.#nextBytes = Math.min(this.#o.reserveBytes, this.#nextBytes * 2)
        this.#retire(r)
      }
      if (this.#reserving === undefined) this.#reserving = this.#reserve(size, preferSameNode).finally(() => (this.#reserving = undefined))
      await this.#reserving
    }
    return undefined
  }

  /** place() without waiting: undefined when the open reservation has no room (call place() then). */
  tryPlace(size: number): ReservedPlacement | undefined {
    const r = this.#current
    return r === undefined || this.#now() < this.#refusedUntil ? undefined : this.#take(r, size)
  }

  /**
   * The placement was committed (`committed`), or will never be: its range goes back to the
   * master with the rest.
   */
  settle(p: ReservedPlacement, committed: boolean): void {
    const r = this.#byId.get(p.reservationId)
    if (r === undefined) return
    r.open--
    if (!committed) r.abandoned++
    if (r.retired && r.open === 0) this.#release(r)
  }

  /** Stops placing in a reservation the master no longer honours (e.g. its segment went away). */
  forget(reservationId: number): void {
    const r = this.#byId.get(reservationId)
    if (r !== undefined) this.#retire(r)
  }

  /** Releases every reservation now (client close); placements still open lose their range. */
  async close(): Promise<void> {
    const all = [...this.#byId.values()]
    for (const r of all) r.retired = true
    this.#current = undefined
    this.#refusedUntil = Infinity
    this.#byId.clear()
    await Promise.all(all.map((r) => this.#o.release(r.result.reservationId).catch(() => {})))
  }

  #take(r: Reservation, size: number): ReservedPlacement | undefined {
    const a = r.result.alignment
    const need = Math.ceil(size / a) * a
    if (this.#now() > r.useUntil || r.cursor + need > r.end) return undefined
    const offset = r.cursor
    r.cursor += need
    r.open++
    const m = r.result.memory
    return {reservationId: r.result.reservationId, location: {segment: m.segment, endpoints: m.endpoints, hostId: m.hostId, offset, length: size, grant: m.grant}}
  }

  async #reserve(size: number, preferSameNode: boolean): Promise<void> {
    const asked = this.#now()
    let result: ReserveSpaceResult
    try {
      result = await this.#o.reserve({
        clientId: this.#o.clientId,
        size: Math.max(size, this.#nextBytes),
        minSize: size,
        hostId: this.#o.hostId,
        preferAllocInSameNode: preferSameNode,
      })
    } catch {
      this.#refusedUntil = this.#now() + (this.#o.retryAfterMs ?? 5_000)
      return
    }
    // Half the grant's remaining life (by the master's clock, as seen when asked), at most MAX_USE_MS.
    const life = Math.min(MAX_USE_MS, (result.expiresAt - asked) / 2)
    const r: Reservation = {result, cursor: result.memory.offset, end: result.memory.offset + result.memory.length, useUntil: asked + life, open: 0, abandoned: 0, retired: false}
    this.#byId.set(result.reservationId, r)
    if (this.#current !== undefined) this.#retire(this.#current)
    this.#current = r
    // An idle client gives its space back when the reservation stops taking placements, and
    // starts small again.
    setTimeout(() => {
      if (r.retired) return
      this.#retire(r)
      this.#nextBytes = Math.min(FIRST_RESERVATION, this.#o.reserveBytes)
    }, Math.max(0, life)).unref()
  }

  #retire(r: Reservation): void {
    if (r.retired) return
    r.retired = true
    if (this.#current === r) this.#current = undefined
    if (r.open === 0) this.#release(r)
  }

  #release(r: Reservation): void {
    this.#byId.delete(r.result.reservationId)
    // Every byte committed: the master dropped it with the last commit, and a release would only
    // come back OBJECT_NOT_FOUND (one RPC and one counted error per reservation used up).
    if (r.cursor === r.end && r.abandoned === 0) return
    // Best effort: the master frees it by itself after put_start_release_timeout otherwise.
    this.#o.release(r.result.reservationId).catch(() => {})
  }
}
