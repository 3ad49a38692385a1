/**
 * The metadata journal of a single master (`--data-dir`, issue 5): every mutation is appended to
 * `journal-<first seq>.log` and fsync'ed in groups before any reply that depends on it; every
 * `compactEvery` mutations the image is written to `snapshot.json` (temporary file, fsync,
 * rename, directory fsync) and older journal files are deleted. Recovery = snapshot + the records
 * after it; a torn or corrupt tail record (a crash mid-write, never acknowledged) is cut off.
 */
import {closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {open as openAsync, type FileHandle} from 'node:fs/promises'
import path from 'node:path'

import {MooncakeError} from '../../errors.js'
import type {Mutation} from '../mutations.js'
import {MetadataImage, type ImageSnapshot} from '../restore.js'
import {decodeRecords, encodeRecord, snapshotJsonParts} from './codec.js'
import {type DurableLog, Waiters} from './durable.js'

export interface JournalOptions {
  /** Mutations between two snapshots. @default 100_000 */
  compactEvery?: number
  /** Largest group written by one write + fsync, in mutations. @default 10_000 */
  maxGroup?: number
  /** Receives background failures (a failed write or fsync). */
  onError?: (err: unknown) => void
}

export interface JournalFileSnapshot {
  v: 1
  /** Last mutation included. */
  seq: number
  image: ImageSnapshot
}

export interface RecoveryReport {
  /** Sequence number of the snapshot that was loaded (0: none). */
  snapshotSeq: number
  /** Records replayed after it. */
  records: number
  mutations: number
  /** Whether a torn tail was cut off. */
  tornTail: boolean
  lastSeq: number
}

const SNAPSHOT = 'snapshot.json'
const JOURNAL_RE = /^journal-(\d{16})\.log$/

function journalName(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(16, '0')}.log`
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export class Journal implements DurableLog {
  readonly image: MetadataImage
  private seq: number
  private durable: number
  private buffer: Mutation[] = []
  private readonly waiters = new Waiters()
  private fh: FileHandle | undefined
  private file = ''
  private sinceSnapshot = 0
  private flushing: Promise<void> | undefined
  private failed: MooncakeError | undefined
  private closed = false
  private readonly compactEvery: number
  private readonly maxGroup: number
  private readonly onError: (err: unknown) => void
  /** Statistics (for the benchmark). */
  readonly stats = {groups: 0, mutations: 0, snapshots: 0, fsyncMs: 0}

  private constructor(
    readonly dir: string,
    image: MetadataImage,
    seq: number,
    options: JournalOptions,
  ) {
    this.image = image
    this.seq = seq
    this.durable = seq
    this.compactEvery = options.compactEvery ?? 100_000
    this.maxGroup = options.maxGroup ?? 10_000
    this.onError = options.onError ?? (() => {})
  }

  /** Recovers the image from `dir` (created if missing), compacts, and opens a new journal file. */
  static async open(dir: string, options: JournalOptions = {}): Promise<{journal: Journal; recovery: RecoveryReport}> {
    mkdirSync(dir, {recursive: true})
    const {image, report} = Journal.recover(dir)
    const journal = new Journal(dir, image, report.lastSeq, options)
    // Start from a fresh snapshot: restart cost is one snapshot, the journal starts empty.
    journal.writeSnapshot()
    journal.deleteJournalsBefore(Infinity)
    await journal.openFile(report.lastSeq + 1)
    return {journal, recovery: report}
  }

  /** Reads snapshot + journal files; cuts off a torn tail. Does not write anything else. */
  static recover(dir: string): {image: MetadataImage; report: RecoveryReport} {
    const image = new MetadataImage()
    let snapshotSeq = 0
    try {
      const snap = JSON.parse(readFileSync(path.join(dir, SNAPSHOT), 'utf8')) as JournalFileSnapshot
      if (snap.v !== 1) throw new Error(`unknown snapshot version ${String(snap.v)}`)
      image.load(snap.image)
      snapshotSeq = snap.seq
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new MooncakeError('INTERNAL_ERROR', `cannot read the metadata snapshot in ${dir}: ${(err as Error).message}`, {cause: err})
      }
    }
    let last = snapshotSeq
    let records = 0
    let mutations = 0
    let torn = false
    const files = readdirSync(dir)
      .filter((f) => JOURNAL_RE.test(f))
      .sort()
    for (let i = 0; i < files.length; i++) {
      const file = path.join(dir, files[i])
      const buf = readFileSync(file)
      const decoded = decodeRecords(buf)
      for (const rec of decoded.records) {
        if (rec.s <= last) continue
        const first = rec.s - rec.m.length + 1
        for (let j = 0; j < rec.m.length; j++) {
          if (first + j <= last) continue
          image.apply(rec.m[j])
          mutations++
        }
        last = rec.s
        records++
      }
      if (decoded.tornTail) {
        torn = true
        // Cut the tail off; anything in later files cannot be trusted to follow it.
        writeFileSync(file, buf.subarray(0, decoded.validBytes))
        for (const later of files.slice(i + 1)) rmSync(path.join(dir, later), {force: true})
        break
      }
    }
    return {image, report: {snapshotSeq, records, mutations, tornTail: torn, lastSeq: last}}
  }

  get appendedSeq(): number {
    return this.seq
  }

  get durableSeq(): number {
    return this.durable
  }

  append(m: Mutation): void {
    if (this.closed) return
    this.buffer.push(m)
    this.seq++
    if (this.flushing === undefined) this.flushing = this.flushLoop()
  }

  waitDurable(seq: number): Promise<void> {
    if (seq <= this.durable) return Promise.resolve()
    if (this.failed !== undefined) return Promise.reject(this.failed)
    return this.waiters.add(seq)
  }

  async close(reason?: MooncakeError): Promise<void> {
    if (this.closed) return
    await this.flushing?.catch(() => {})
    this.closed = true
    this.waiters.fail(reason ?? new MooncakeError('UNAVAILABLE', 'the master is shutting down'))
    await this.fh?.close().catch(() => {})
    this.fh = undefined
  }

  private async flushLoop(): Promise<void> {
    // Let the current call (and others in the same turn of the event loop) add to the group.
    await new Promise((r) => setImmediate(r))
    try {
      while (this.buffer.length > 0 && this.failed === undefined) {
        const group = this.buffer.length <= this.maxGroup ? this.buffer : this.buffer.slice(0, this.maxGroup)
        this.buffer = group === this.buffer ? [] : this.buffer.slice(group.length)
        const last = this.seq - this.buffer.length
        for (const m of group) this.image.apply(m)
        const rec = encodeRecord({s: last, m: group})
        const t0 = performance.now()
        await this.fh!.write(rec, 0, rec.length)
        await this.fh!.datasync()
        this.stats.fsyncMs += performance.now() - t0
        this.stats.groups++
        this.stats.mutations += group.length
        this.durable = last
        this.sinceSnapshot += group.length
        if (this.sinceSnapshot >= this.compactEvery) await this.compact()
        this.waiters.release(this.durable)
      }
    } catch (err) {
      this.failed = new MooncakeError('INTERNAL_ERROR', `the metadata journal in ${this.dir} failed: ${(err as Error).message}; the master stops accepting writes`, {cause: err})
      this.waiters.fail(this.failed)
      this.onError(err)
    } finally {
      this.flushing = undefined
    }
    if (this.buffer.length > 0 && this.failed === undefined && !this.closed) this.flushing = this.flushLoop()
  }

  /** Snapshot at the current durable point, then a new journal file; older files go. */
  private async compact(): Promise<void> {
    const next = this.durable + 1
    await this.fh?.close()
    await this.writeSnapshotIncrementally()
    this.deleteJournalsBefore(next)
    await this.openFile(next)
    this.sinceSnapshot = 0
    this.stats.snapshots++
  }

  private writeSnapshot(): void {
    const snap: JournalFileSnapshot = {v: 1, seq: this.durable, image: this.image.snapshot()}
    const tmp = path.join(this.dir, `${SNAPSHOT}.tmp`)
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeFileSync(fd, JSON.stringify(snap))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path.join(this.dir, SNAPSHOT))
    fsyncDir(this.dir)
  }

  /** writeSnapshot without stalling the event loop on a large image (see snapshotJsonParts). */
  private async writeSnapshotIncrementally(): Promise<void> {
    const seq = this.durable
    const parts = await snapshotJsonParts(this.image.snapshot())
    const tmp = path.join(this.dir, `${SNAPSHOT}.tmp`)
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeFileSync(fd, `{"v":1,"seq":${seq},"image":`)
      for (const part of parts) writeFileSync(fd, part)
      writeFileSync(fd, '}')
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path.join(this.dir, SNAPSHOT))
    fsyncDir(this.dir)
  }

  private deleteJournalsBefore(firstSeq: number): void {
    for (const f of readdirSync(this.dir)) {
      const m = JOURNAL_RE.exec(f)
      if (m !== null && Number(m[1]) < firstSeq) rmSync(path.join(this.dir, f), {force: true})
    }
  }

  private async openFile(firstSeq: number): Promise<void> {
    this.file = path.join(this.dir, journalName(firstSeq))
    this.fh = await openAsync(this.file, 'a', 0o600)
    fsyncDir(this.dir)
  }
}
