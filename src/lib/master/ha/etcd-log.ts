/**
 * The replication log in etcd (issue 5, lossless failover).
 *
 * Leader side (`EtcdLog`): mutations are group-committed: while one entry is being written the
 * next ones accumulate, and the next entry takes them all (up to ~1 MiB). Each entry is written
 * by a transaction fenced by the leadership: `If(CreateRevision(master) == term) Then
 * Put(log/<seq>)`, so a deposed leader can never make an entry durable, and a reply waits until
 * its entry committed. An entry whose outcome is unknown (etcd error) is re-read and re-sent until
 * known. Every `snapshotEvery` entries the image is written in chunks and a fenced transaction
 * switches `snapshot-meta` to it and deletes the log entries (and older chunks) it covers.
 *
 * Follower side (`LogFollower`): reads entries after the last applied one (loading the snapshot
 * first when the entries it needs were compacted away) and applies them to its image.
 */
import type {Etcd3, IKeyValue} from 'etcd3'

import {MooncakeError} from '../../errors.js'
import type {Mutation} from '../mutations.js'
import type {MetadataImage} from '../restore.js'
import {
  decodeEntry,
  decodeSnapshotChunks,
  encodeEntry,
  encodeSnapshotChunksAsync,
  padSeq,
  type SnapshotMeta,
  snapshotCrc,
} from './codec.js'
import {type DurableLog, notLeader, Waiters} from './durable.js'
import {b, getKey, getRange, type HaKeys, prefixEnd} from './etcd.js'

export interface EtcdLogOptions {
  /** Entries between two snapshots. @default 2_000 */
  snapshotEvery?: number
  /** Bytes of one entry at most (etcd refuses requests above 1.5 MiB by default). @default 1 MiB */
  maxEntryBytes?: number
  /** Snapshot chunk size. @default 1 MiB */
  chunkBytes?: number
  /** Called once when a write finds that this master is no longer the leader. */
  onFenced?: () => void
  onError?: (err: unknown) => void
}

/** Where a follower is: last applied entry and mutation. */
export interface LogPosition {
  seq: number
  mseq: number
}

export class EtcdLog implements DurableLog {
  private buffer: Mutation[] = []
  private bufferBytes = 0
  private seqM: number
  private durableM: number
  private readonly waiters = new Waiters()
  private flushing: Promise<void> | undefined
  private stopped: MooncakeError | undefined
  private nextEntry: number
  private sinceSnapshot = 0
  private snapshotting: Promise<void> | undefined
  private readonly snapshotEvery: number
  private readonly maxEntryBytes: number
  private readonly chunkBytes: number
  readonly stats = {entries: 0, mutations: 0, snapshots: 0, commitMs: 0, retries: 0}

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: HaKeys,
    /** Create revision of this master's leader key: the fencing token. */
    readonly term: number,
    readonly image: MetadataImage,
    position: LogPosition,
    private readonly options: EtcdLogOptions = {},
  ) {
    this.nextEntry = position.seq + 1
    this.seqM = position.mseq
    this.durableM = position.mseq
    this.snapshotEvery = options.snapshotEvery ?? 2_000
    this.maxEntryBytes = options.maxEntryBytes ?? 1024 * 1024
    this.chunkBytes = options.chunkBytes ?? 1024 * 1024
  }

  get appendedSeq(): number {
    return this.seqM
  }

  get durableSeq(): number {
    return this.durableM
  }

  /** Last committed entry. */
  get position(): LogPosition {
    return {seq: this.nextEntry - 1, mseq: this.durableM}
  }

  append(m: Mutation): void {
    if (this.stopped !== undefined) return
    this.buffer.push(m)
    this.seqM++
    if (this.flushing === undefined) this.flushing = this.flushLoop()
  }

  waitDurable(seq: number): Promise<void> {
    if (seq <= this.durableM) return Promise.resolve()
    if (this.stopped !== undefined) return Promise.reject(this.stopped)
    return this.waiters.add(seq)
  }

  async close(reason?: MooncakeError): Promise<void> {
    this.stop(reason ?? new MooncakeError('UNAVAILABLE', 'the master is shutting down'))
    await this.flushing?.catch(() => {})
    await this.snapshotting?.catch(() => {})
  }

  private stop(reason: MooncakeError): void {
    if (this.stopped !== undefined) return
    this.stopped = reason
    this.buffer = []
    this.waiters.fail(reason)
  }

  private take(): Mutation[] {
    // Group commit: everything buffered, up to maxEntryBytes (estimated from JSON lengths).
    let bytes = 0
    let n = 0
    for (; n < this.buffer.length; n++) {
      const len = JSON.stringify(this.buffer[n]).length + 1
      if (n > 0 && bytes + len > this.maxEntryBytes) break
      bytes += len
    }
    const group = this.buffer.slice(0, n)
    this.buffer = this.buffer.slice(n)
    return group
  }

  private async flushLoop(): Promise<void> {
    await new Promise((r) => setImmediate(r))
    try {
      while (this.buffer.length > 0 && this.stopped === undefined) {
        const group = this.take()
        const last = this.seqM - this.buffer.length
        const seq = this.nextEntry
        const value = encodeEntry({v: 1, seq, term: this.term, m: group})
        const t0 = performance.now()
        const outcome = await this.commitEntry(seq, value)
        this.stats.commitMs += performance.now() - t0
        if (outcome === 'fenced') {
          this.stop(notLeader('this master lost the leadership before the change was replicated; retry on the new leader'))
          this.options.onFenced?.()
          return
        }
        if (outcome === 'stopped') return
        for (const m of group) this.image.apply(m)
        this.nextEntry = seq + 1
        this.durableM = last
        this.stats.entries++
        this.stats.mutations += group.length
        this.waiters.release(last)
        if (++this.sinceSnapshot >= this.snapshotEvery && this.snapshotting === undefined) {
          this.sinceSnapshot = 0
          this.snapshotting = this.snapshot().finally(() => (this.snapshotting = undefined))
        }
      }
    } catch (err) {
      this.options.onError?.(err)
      this.stop(new MooncakeError('UNAVAILABLE', `replication failed: ${(err as Error).message}`, {cause: err}))
    } finally {
      this.flushing = undefined
    }
    if (this.buffer.length > 0 && this.stopped === undefined) this.flushing = this.flushLoop()
  }

  /** Writes one entry under the fence; retries an unknown outcome until it is known or the log stops. */
  private async commitEntry(seq: number, value: Buffer): Promise<'ok' | 'fenced' | 'stopped'> {
    const key = b(this.keys.log + padSeq(seq))
    for (let attempt = 0; ; attempt++) {
      if (this.stopped !== undefined) return 'stopped'
      try {
        const res = await this.etcd.kv.txn({
          compare: [
            {key: b(this.keys.leader), target: 'Create', result: 'Equal', create_revision: String(this.term)},
            {key, target: 'Create', result: 'Equal', create_revision: '0'},
          ],
          success: [{request_put: {key, value}}],
          failure: [{request_range: {key: b(this.keys.leader)}}, {request_range: {key}}],
        })
        if (res.succeeded) return 'ok'
        const leader = res.responses[0]?.response_range?.kvs[0]
        const mine = leader !== undefined && Number(leader.create_revision) === this.term
        const existing = res.responses[1]?.response_range?.kvs[0]
        // An earlier attempt of ours did commit (its answer was lost).
        if (existing !== undefined && Buffer.compare(existing.value, value) === 0) return 'ok'
        if (!mine) return 'fenced'
        throw new Error(`log entry ${seq} exists with other content`)
      } catch (err) {
        if (err instanceof Error && /exists with other content/.test(err.message)) throw err
        // Unknown outcome (etcd unreachable, deadline): ask again after a pause.
        this.stats.retries++
        await new Promise((r) => setTimeout(r, Math.min(500, 25 * 2 ** Math.min(attempt, 5))))
      }
    }
  }

  /** Writes the image (at the last committed entry) as chunks, then switches snapshot-meta and compacts the log. */
  private async snapshot(): Promise<void> {
    const pos = this.position
    const chunks = await encodeSnapshotChunksAsync(this.image.snapshot(), this.chunkBytes)
    const dir = `${this.keys.snapshot}${padSeq(pos.seq)}/`
    try {
      for (let i = 0; i < chunks.length; i++) {
        if (this.stopped !== undefined) return
        await this.etcd.kv.put({key: b(`${dir}${String(i).padStart(6, '0')}`), value: chunks[i]})
      }
      const meta: SnapshotMeta = {
        v: 1,
        seq: pos.seq,
        mseq: pos.mseq,
        chunks: chunks.length,
        bytes: chunks.reduce((n, c) => n + c.length, 0),
        crc: snapshotCrc(chunks),
        term: this.term,
        at: Date.now(),
      }
      const res = await this.etcd.kv.txn({
        compare: [{key: b(this.keys.leader), target: 'Create', result: 'Equal', create_revision: String(this.term)}],
        success: [
          {request_put: {key: b(this.keys.snapshotMeta), value: b(JSON.stringify(meta))}},
          {request_delete_range: {key: b(this.keys.log), range_end: b(this.keys.log + padSeq(pos.seq + 1))}},
          {request_delete_range: {key: b(this.keys.snapshot), range_end: b(dir)}},
        ],
        failure: [],
      })
      if (!res.succeeded) return
      this.stats.snapshots++
      // Let etcd drop the history of the deleted keys (best effort; nobody reads old revisions).
      await this.etcd.kv.compact({revision: res.header.revision}).catch(() => {})
    } catch (err) {
      this.options.onError?.(err)
    }
  }
}

/** Reads the snapshot named by snapshot-meta. */
export async function readSnapshot(etcd: Etcd3, keys: HaKeys): Promise<{meta: SnapshotMeta; image: ReturnType<typeof decodeSnapshotChunks>} | undefined> {
  const kv = await getKey(etcd, keys.snapshotMeta)
  if (kv === undefined) return undefined
  const meta = JSON.parse(kv.value.toString('utf8')) as SnapshotMeta
  const dir = `${keys.snapshot}${padSeq(meta.seq)}/`
  const {kvs} = await getRange(etcd, dir, prefixEnd(dir))
  const chunks = kvs.map((k) => k.value)
  if (chunks.length !== meta.chunks || snapshotCrc(chunks) !== meta.crc) {
    throw new MooncakeError('INTERNAL_ERROR', `snapshot ${meta.seq} in etcd is incomplete or corrupt (${chunks.length}/${meta.chunks} chunks)`)
  }
  return {meta, image: decodeSnapshotChunks(chunks)}
}

/** Keeps an image in step with the log in etcd. */
export class LogFollower {
  position: LogPosition = {seq: 0, mseq: 0}
  readonly stats = {entries: 0, snapshotsLoaded: 0}

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: HaKeys,
    readonly image: MetadataImage,
  ) {}

  /** Applies every entry committed so far; returns the number applied. */
  async sync(pageSize = 500): Promise<number> {
    let applied = 0
    for (;;) {
      const from = this.keys.log + padSeq(this.position.seq + 1)
      const {kvs, more} = await getRange(this.etcd, from, prefixEnd(this.keys.log), pageSize)
      if (kvs.length === 0) {
        // Nothing after us: maybe a snapshot covers more than we have (the log was compacted).
        const meta = await getKey(this.etcd, this.keys.snapshotMeta)
        if (meta !== undefined && (JSON.parse(meta.value.toString('utf8')) as SnapshotMeta).seq > this.position.seq) {
          await this.loadSnapshot()
          continue
        }
        return applied
      }
      const first = decodeEntry(kvs[0].value)
      if (first.seq !== this.position.seq + 1) {
        // The entries we need were compacted away: start from the snapshot.
        await this.loadSnapshot()
        continue
      }
      applied += this.applyEntries(kvs)
      if (!more) return applied
    }
  }

  private applyEntries(kvs: IKeyValue[]): number {
    let n = 0
    for (const kv of kvs) {
      const e = decodeEntry(kv.value)
      if (e.seq !== this.position.seq + 1) break
      for (const m of e.m) this.image.apply(m)
      this.position = {seq: e.seq, mseq: this.position.mseq + e.m.length}
      this.stats.entries++
      n++
    }
    return n
  }

  private async loadSnapshot(): Promise<void> {
    const snap = await readSnapshot(this.etcd, this.keys)
    if (snap === undefined) throw new MooncakeError('INTERNAL_ERROR', 'the replication log has a gap and no snapshot covers it')
    if (snap.meta.seq <= this.position.seq) throw new MooncakeError('INTERNAL_ERROR', `the replication log has a gap after entry ${this.position.seq}`)
    this.image.load(snap.image)
    this.position = {seq: snap.meta.seq, mseq: snap.meta.mseq}
    this.stats.snapshotsLoaded++
  }
}
