/**
 * The master's side of the disk tier (issue 6, docs/disk-tier.md): paths, the queues of disk
 * tasks per segment owner (delivered in Ping replies, resent when unanswered), the quota, the
 * deletion of files (the master runs on the same file system as rootFsDir: S10) and the restart
 * scan. MasterService keeps the per-object state (disk replica PROCESSING/COMPLETE) and calls in.
 */
import {unlink} from 'node:fs/promises'

import {crc32cJs} from '../client/crc32c.js'
import {clusterDir, diskFileBytes, diskPath} from '../disk/format.js'
import {DiskQuota, type QuotaEntry} from '../disk/quota.js'
import {scanDiskDir, type ScanResult} from '../disk/scanner.js'
import {TombstoneLog} from '../disk/tombstones.js'
import type {DiskTask} from './api.js'
import type {RestoredItem} from './restore.js'

/** A task sent and not answered for this long is sent again (the owner ignores duplicates). */
export const DISK_TASK_RESEND_MS = 30_000
/** Tasks per Ping reply at most. */
export const DISK_TASKS_PER_PING = 512
/** Deletions in flight at once. */
const UNLINK_CONCURRENCY = 8

export interface MasterDiskTierOptions {
  rootFsDir: string
  clusterId: string
  /** Bytes the files may take (headers included), a positive integer (checked by MasterService); undefined = no quota. */
  quotaBytes?: number
}

interface Pending {
  key: string
  version: number
  /** Absolute ms of the last send; 0 = never sent. */
  sentAt: number
}

/** What the service answers when a queued task is about to be sent. */
export type TaskResolution = DiskTask | {reassign: string} | undefined

export interface DiskTierCounters {
  tasksQueued: number
  tasksSent: number
  written: number
  failed: number
  revokedByQuota: number
  evictedByQuota: number
  deleted: number
  deleteErrors: number
  /** Files a restart deleted because the tombstone log named them (the crash came before their deletion). */
  tombstoneDeletes: number
}

/** The calls a MasterService offers the disk tier (restart scan, quota). */
export interface DiskTierService {
  restoreObjects(segmentName: string | undefined, items: readonly RestoredItem[]): number
  diskReplicaLive(key: string, version: number): boolean
  /** Drops a COMPLETE disk replica and deletes its file (through deleteFile). */
  evictDiskReplica(key: string, version: number): void
}

export class MasterDiskTier {
  readonly dir: string
  readonly quota: DiskQuota
  readonly counters: DiskTierCounters = {tasksQueued: 0, tasksSent: 0, written: 0, failed: 0, revokedByQuota: 0, evictedByQuota: 0, deleted: 0, deleteErrors: 0, tombstoneDeletes: 0}
  /** Names of files whose deletion is pending, so that a crash cannot bring their objects back. */
  readonly tombstones: TombstoneLog
  private readonly queues = new Map<string, Map<string, Pending>>()
  /** Task id -> owner's client id. */
  private readonly owners = new Map<string, string>()
  private readonly unlinkQueue: string[] = []
  private unlinking = 0
  /** A deletion failed since the tombstone log was last emptied: keep the log for the next restart. */
  private deleteFailed = false
  private readonly idleWaiters: Array<() => void> = []

  constructor(readonly options: MasterDiskTierOptions) {
    this.dir = clusterDir(options.rootFsDir, options.clusterId)
    this.quota = new DiskQuota(options.quotaBytes)
    this.tombstones = new TombstoneLog(this.dir)
  }

  pathOf(key: string, version: number): string {
    return diskPath(this.options.rootFsDir, this.options.clusterId, key, version)
  }

  /** Tasks waiting (sent or not). */
  get pendingTasks(): number {
    return this.owners.size
  }

  /**
   * Queues the write of (key, version) for the owner `clientId`, reserving quota room (evicting
   * the oldest files through `evict`). False when the quota cannot hold it: revoke the replica.
   */
  enqueue(clientId: string, key: string, version: number, size: number, evict: (e: QuotaEntry) => void): boolean {
    if (!this.quota.reserve(key, version, diskFileBytes(key, size), (e) => {
      this.counters.evictedByQuota++
      evict(e)
    })) {
      this.counters.revokedByQuota++
      return false
    }
    this.counters.tasksQueued++
    this.queueFor(clientId, key, version, 0)
    return true
  }

  private queueFor(clientId: string, key: string, version: number, sentAt: number): void {
    const id = `${version}\0${key}`
    const prev = this.owners.get(id)
    if (prev !== undefined && prev !== clientId) this.queues.get(prev)?.delete(id)
    let q = this.queues.get(clientId)
    if (q === undefined) this.queues.set(clientId, (q = new Map()))
    q.set(id, {key, version, sentAt})
    this.owners.set(id, clientId)
  }

  /** Drops the task of (key, version) if queued. */
  forget(key: string, version: number): void {
    const id = `${version}\0${key}`
    const owner = this.owners.get(id)
    if (owner === undefined) return
    this.owners.delete(id)
    const q = this.queues.get(owner)
    q?.delete(id)
    if (q !== undefined && q.size === 0) this.queues.delete(owner)
  }

  /** Removes and returns every task queued for `clientId` (its owner died or unmounted). */
  takeQueue(clientId: string): Array<{key: string; version: number}> {
    const q = this.queues.get(clientId)
    if (q === undefined) return []
    this.queues.delete(clientId)
    const out: Array<{key: string; version: number}> = []
    for (const [id, p] of q) {
      this.owners.delete(id)
      out.push({key: p.key, version: p.version})
    }
    return out
  }

  /** Re-queues a task for another owner (the first memory replica moved). */
  requeue(clientId: string, key: string, version: number): void {
    this.queueFor(clientId, key, version, 0)
  }

  /** The tasks to send to `clientId` now: never sent, or sent longer than DISK_TASK_RESEND_MS ago. */
  takeTasks(clientId: string, now: number, resolve: (key: string, version: number) => TaskResolution): DiskTask[] {
    const q = this.queues.get(clientId)
    if (q === undefined) return []
    const out: DiskTask[] = []
    for (const p of [...q.values()]) {
      if (out.length >= DISK_TASKS_PER_PING) break
      if (p.sentAt !== 0 && now - p.sentAt < DISK_TASK_RESEND_MS) continue
      const r = resolve(p.key, p.version)
      if (r === undefined) {
        this.forget(p.key, p.version)
      } else if ('reassign' in r) {
        this.queueFor(r.reassign, p.key, p.version, 0)
      } else {
        p.sentAt = now
        out.push(r)
        this.counters.tasksSent++
      }
    }
    if (q.size === 0) this.queues.delete(clientId)
    return out
  }

  /** A write finished: the file counts against the quota as the newest. */
  written(key: string, version: number, size: number): void {
    this.counters.written++
    this.forget(key, version)
    this.quota.commit(key, version, diskFileBytes(key, size))
  }

  /**
   * The disk replica (key, version) is gone or failed: forget it and delete its file. The delete
   * is asynchronous, so its name goes to the tombstone log first (synchronously, before the
   * caller acknowledges anything): a restart after a crash deletes it instead of restoring it.
   */
  deleteFile(key: string, version: number): void {
    this.forget(key, version)
    this.quota.release(key, version)
    const file = this.pathOf(key, version)
    this.tombstones.record(file)
    this.unlinkQueue.push(file)
    this.pumpUnlinks()
  }

  private pumpUnlinks(): void {
    while (this.unlinking < UNLINK_CONCURRENCY && this.unlinkQueue.length > 0) {
      const p = this.unlinkQueue.shift()!
      this.unlinking++
      unlink(p)
        .then(
          () => void this.counters.deleted++,
          (err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') {
              this.counters.deleteErrors++
              this.deleteFailed = true
            }
          },
        )
        .finally(() => {
          this.unlinking--
          this.pumpUnlinks()
          if (this.unlinking === 0 && this.unlinkQueue.length === 0) {
            // Every file named in the log is gone: it can be emptied (unless one delete failed).
            if (!this.deleteFailed) this.tombstones.clear()
            for (const w of this.idleWaiters.splice(0)) w()
          }
        })
    }
  }

  /** Resolves when no deletion is pending (tests, shutdown). */
  async idle(): Promise<void> {
    if (this.unlinking === 0 && this.unlinkQueue.length === 0) return
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Restart scan [ours]: registers every disk file under dir as a disk-only object (unless the
   * service already knows the key, e.g. from a journal), deletes files of versions the service
   * holds no disk replica for, then applies the quota.
   */
  async restore(service: DiskTierService): Promise<ScanResult & {restored: number; tombstoneDeletes: number}> {
    // First the deletions a crash interrupted: those objects were removed.
    const tombstoneDeletes = await this.tombstones.replay()
    this.counters.tombstoneDeletes += tombstoneDeletes
    const scan = await scanDiskDir(this.dir, {crc32c: crc32cJs})
    const items: RestoredItem[] = scan.files.map((f, i) => ({
      key: f.key,
      size: f.size,
      version: f.version,
      checksum: f.checksum,
      softPinExpiresAt: null,
      diskReplicaId: i + 1,
    }))
    const restored = items.length > 0 ? service.restoreObjects(undefined, items) : 0
    for (const f of scan.files) {
      if (service.diskReplicaLive(f.key, f.version)) this.quota.add(f.key, f.version, f.bytes)
      else this.deleteFile(f.key, f.version)
    }
    // evictDiskReplica deletes the file (dropDisk -> deleteFile), as for enqueue's evictions.
    this.quota.makeRoom(0, (e) => {
      this.counters.evictedByQuota++
      service.evictDiskReplica(e.key, e.version)
    })
    return {...scan, restored, tombstoneDeletes}
  }
}
