/**
 * Disk quota accounting (docs/disk-tier.md "Quota"): bytes of COMPLETE files, oldest first (by
 * mtime: files enter in the order they were completed, or sorted by mtime after a restart scan),
 * plus bytes reserved by writes in progress. A reservation that does not fit evicts the oldest
 * complete files first; one that cannot fit at all (larger than the quota, or everything left is
 * being written) is refused and the disk replica is revoked.
 */

export interface QuotaEntry {
  key: string
  version: number
  bytes: number
}

export class DiskQuota {
  /** Bytes of complete files. */
  used = 0
  /** Bytes reserved by writes in progress. */
  reserved = 0
  /** Files evicted to make room. */
  evicted = 0
  private readonly complete = new Map<string, QuotaEntry>()
  private readonly reservations = new Map<string, number>()

  constructor(readonly limit: number | undefined) {}

  static id(key: string, version: number): string {
    return `${version}\0${key}`
  }

  get files(): number {
    return this.complete.size
  }

  /** Reserves room for a file; evicts the oldest complete files (through `evict`) as needed. */
  reserve(key: string, version: number, bytes: number, evict: (e: QuotaEntry) => void): boolean {
    const id = DiskQuota.id(key, version)
    if (this.reservations.has(id)) return true
    if (this.limit !== undefined) {
      // Refuse without evicting anything when even an empty disk (but for writes in flight) could not hold it.
      if (this.reserved + bytes > this.limit) return false
      this.makeRoom(bytes, evict)
      if (this.used + this.reserved + bytes > this.limit) return false
    }
    this.reservations.set(id, bytes)
    this.reserved += bytes
    return true
  }

  /** A reserved write completed: the file is now the newest. */
  commit(key: string, version: number, bytes: number): void {
    const id = DiskQuota.id(key, version)
    const r = this.reservations.get(id)
    if (r !== undefined) {
      this.reservations.delete(id)
      this.reserved -= r
    }
    this.add(key, version, bytes)
  }

  /** A complete file known at start (add in mtime order). */
  add(key: string, version: number, bytes: number): void {
    const id = DiskQuota.id(key, version)
    const old = this.complete.get(id)
    if (old !== undefined) this.used -= old.bytes
    this.complete.delete(id)
    this.complete.set(id, {key, version, bytes})
    this.used += bytes
  }

  /** The file is gone (removed, revoked, evicted). */
  release(key: string, version: number): void {
    const id = DiskQuota.id(key, version)
    const r = this.reservations.get(id)
    if (r !== undefined) {
      this.reservations.delete(id)
      this.reserved -= r
    }
    const e = this.complete.get(id)
    if (e !== undefined) {
      this.complete.delete(id)
      this.used -= e.bytes
    }
  }

  /** Evicts the oldest complete files until `extra` more bytes fit (or nothing complete is left). */
  makeRoom(extra: number, evict: (e: QuotaEntry) => void): void {
    if (this.limit === undefined) return
    while (this.used + this.reserved + extra > this.limit && this.complete.size > 0) {
      const [id, e] = this.complete.entries().next().value as [string, QuotaEntry]
      this.complete.delete(id)
      this.used -= e.bytes
      this.evicted++
      evict(e)
    }
  }
}
