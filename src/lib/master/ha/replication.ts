/**
 * What makes a master's acknowledged writes survive (issue 5): the journal of a single master
 * (`--data-dir`) or, with `--etcd`, the leader election and the replication log in etcd.
 *
 * The gRPC layer serves `calls` and runs every call through `around()`: a master that is not the
 * serving leader answers NOT_LEADER (with the leader's address when known) before touching any
 * state; a leader past its own keepalive deadline steps down first; and a reply waits until every
 * mutation made so far is durable (journal fsync'ed / log entry committed under the fence), so a
 * client sees success only for what a restarted or new master will know.
 */
import type {Etcd3} from 'etcd3'

import {MooncakeError} from '../../errors.js'
import type {Mutation} from '../mutations.js'
import {MetadataImage, PendingRestore} from '../restore.js'
import type {MasterService} from '../service.js'
import {type DurableLog, notLeader} from './durable.js'
import {isEtcdTlsFailure} from '../../etcd-options.js'
import {b, connectEtcd, etcdError, getKey, haKeys, type HaKeys} from './etcd.js'
import {EtcdLog, type EtcdLogOptions, LogFollower} from './etcd-log.js'
import {attachPending, expirePending, installGate, type GateHost} from './gate.js'
import {Journal, type JournalOptions, type RecoveryReport} from './journal.js'
import {type Role, RoleMachine} from './role.js'
import {EtcdSession} from './session.js'

/** How often restored segments whose owners have not re-mounted are checked for expiry. */
const EXPIRY_PERIOD_MS = 250

export interface ReplicationOptions {
  /** etcd endpoints: HA mode. */
  etcd?: string[]
  clusterId: string
  /** Lease TTL of the leader key. @default 5_000 */
  haLeaseTtlMs?: number
  /** Address published when leader; default: the bound gRPC address. */
  advertise?: string
  /** Journal directory (single master without etcd). */
  dataDir?: string
  /** Restored segments whose owner has not re-mounted after this long are dropped. */
  clientTtlMs: number
  journal?: JournalOptions
  etcdLog?: EtcdLogOptions
  onError?: (err: unknown) => void
  /** Informational messages (role changes, recovery). */
  onInfo?: (message: string) => void
}

export interface ReplicationInfo {
  mode: 'journal' | 'etcd'
  role: Role
  serving: boolean
  leader?: string
  viewVersion: number
  advertise?: string
  recovery?: RecoveryReport
  pendingSegments: number
}

export interface Replication {
  /** Wraps every call: leadership check before, durability wait after. */
  around<T>(rpc: string, run: () => T | Promise<T>): T | Promise<T>
  readonly role: Role
  info(): ReplicationInfo
  /** Recovers (journal) or joins the election (etcd); `boundAddress` is the gRPC address actually bound. */
  start(boundAddress: string): Promise<void>
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Whether the options ask for replication at all. */
export function replicationWanted(o: {etcd?: string[]; dataDir?: string}): boolean {
  return (o.etcd !== undefined && o.etcd.length > 0) || (o.dataDir !== undefined && o.dataDir !== '')
}

export function createReplication(service: MasterService, options: ReplicationOptions): Replication {
  return options.etcd !== undefined && options.etcd.length > 0 ? new EtcdReplication(service, options) : new JournalReplication(service, options)
}

abstract class Base implements Replication, GateHost {
  readonly roles = new RoleMachine()
  pending: PendingRestore | undefined
  protected log: DurableLog | undefined
  protected serving = false
  protected closed = false
  private expiry: NodeJS.Timeout | undefined

  constructor(
    readonly service: MasterService,
    protected readonly options: ReplicationOptions,
  ) {
    installGate(this)
    const previous = service.onMutation
    service.onMutation = (m: Mutation) => {
      previous?.(m)
      this.log?.append(m)
    }
    this.roles.on('change', (to, from, reason) => this.options.onInfo?.(`HA role ${from} -> ${to}: ${reason}`))
  }

  get role(): Role {
    return this.roles.role
  }

  emit(m: Mutation): void {
    this.service.onMutation?.(m)
  }

  abstract start(boundAddress: string): Promise<void>
  abstract info(): ReplicationInfo
  protected abstract refuse(): MooncakeError | undefined

  around<T>(rpc: string, run: () => T | Promise<T>): T | Promise<T> {
    const refused = this.refuse()
    if (refused !== undefined) throw refused
    const log = this.log
    let out: T | Promise<T>
    try {
      out = run()
    } catch (err) {
      if (log === undefined || log.durableSeq >= log.appendedSeq) throw err
      return log.waitDurable(log.appendedSeq).then(() => Promise.reject(err))
    }
    if (out instanceof Promise) return out.then((v) => this.settle(log, v))
    return this.settle(log, out)
  }

  private settle<T>(log: DurableLog | undefined, v: T): T | Promise<T> {
    if (log === undefined || log.durableSeq >= log.appendedSeq) return v
    return log.waitDurable(log.appendedSeq).then(() => v)
  }

  /** Loads an image into the (empty) service: disk-only objects now, memory replicas as owners re-mount. */
  protected restore(image: MetadataImage): void {
    const {pending, diskOnly} = PendingRestore.fromImage(image, Date.now() + this.options.clientTtlMs)
    this.pending = pending
    const ids = image.maxIds()
    this.service.raiseIdFloors(ids.version + 1, ids.replicaId + 1)
    this.service.restoreObjects(undefined, diskOnly)
    let last = Date.now()
    this.expiry ??= setInterval(() => {
      const now = Date.now()
      // A timer much later than its period means this process stalled (load, GC).
      const late = now - last - EXPIRY_PERIOD_MS
      last = now
      try {
        expirePending(this, now, late > EXPIRY_PERIOD_MS ? late : 0)
      } catch (err) {
        this.options.onError?.(err)
      }
    }, EXPIRY_PERIOD_MS).unref()
  }

  protected stopExpiry(): void {
    if (this.expiry) clearInterval(this.expiry)
    this.expiry = undefined
  }

  /** For tests: attach a pending segment as if its owner re-mounted. */
  attach(name: string): void {
    attachPending(this, name)
  }

  abstract close(): Promise<void>
}

class JournalReplication extends Base {
  private journal: Journal | undefined
  private recovery: RecoveryReport | undefined

  async start(): Promise<void> {
    const {journal, recovery} = await Journal.open(this.options.dataDir!, {...this.options.journal, onError: this.options.onError})
    this.journal = journal
    this.recovery = recovery
    this.service.resetState()
    this.log = journal
    this.restore(journal.image)
    this.serving = true
    this.roles.to('leader', `journal in ${this.options.dataDir} recovered (${recovery.mutations} mutations after snapshot ${recovery.snapshotSeq}${recovery.tornTail ? ', torn tail cut off' : ''})`)
  }

  protected refuse(): MooncakeError | undefined {
    if (this.serving) return undefined
    return new MooncakeError('UNAVAILABLE', this.closed ? 'the master is shutting down' : 'the master is recovering its journal')
  }

  info(): ReplicationInfo {
    return {mode: 'journal', role: this.role, serving: this.serving, viewVersion: this.service.viewVersion, recovery: this.recovery, pendingSegments: this.pending?.size ?? 0}
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.serving = false
    this.stopExpiry()
    await this.journal?.close()
    this.log = undefined
    this.roles.to('stopped', 'closed')
  }
}

class EtcdReplication extends Base {
  private etcd: Etcd3 | undefined
  private readonly keys: HaKeys
  private readonly ttlMs: number
  private advertise = ''
  private session: EtcdSession | undefined
  private follower: LogFollower | undefined
  private leaderAddress: string | undefined
  private term = 0
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private stepDownReason: string | undefined

  constructor(service: MasterService, options: ReplicationOptions) {
    super(service, options)
    this.keys = haKeys(options.clusterId)
    this.ttlMs = options.haLeaseTtlMs ?? 5_000
  }

  async start(boundAddress: string): Promise<void> {
    this.advertise = this.options.advertise ?? boundAddress
    this.etcd = await connectEtcd(this.options.etcd!, Math.max(500, Math.min(3_000, this.ttlMs / 2)))
    // A TLS failure (wrong --etcd-ca, no client certificate) never heals by retrying: refuse to
    // start, saying which flags to fix, instead of serving as a master that can never lead. Other
    // failures (etcd not up yet) are left to the election loop's retries, as before.
    try {
      await getKey(this.etcd, this.keys.leader)
    } catch (err) {
      if (isEtcdTlsFailure(err)) {
        this.etcd.close()
        throw etcdError(`at ${this.options.etcd!.join(',')}`, err)
      }
    }
    this.loop = this.run()
  }

  protected refuse(): MooncakeError | undefined {
    if (!this.serving) {
      const l = this.leaderAddress
      return notLeader(
        l !== undefined && l !== this.advertise
          ? `this master (${this.advertise}) is a standby; the leader is ${l}`
          : `this master (${this.advertise}) is not the leader (role ${this.role}); no leader is known yet`,
        l !== this.advertise ? l : undefined,
      )
    }
    if (this.session === undefined || !this.session.deadline.valid()) {
      this.requestStepDown('the keepalive deadline passed')
      return notLeader(`this master (${this.advertise}) lost its lease and steps down`)
    }
    return undefined
  }

  info(): ReplicationInfo {
    return {
      mode: 'etcd',
      role: this.role,
      serving: this.serving,
      leader: this.serving ? this.advertise : this.leaderAddress,
      viewVersion: this.service.viewVersion,
      advertise: this.advertise,
      pendingSegments: this.pending?.size ?? 0,
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.requestStepDown('closed')
    this.wake?.()
    await this.loop?.catch(() => {})
    this.stopExpiry()
    if (this.role !== 'stopped') this.roles.to('stopped', 'closed')
    this.etcd?.close()
  }

  private requestStepDown(reason: string): void {
    if (this.serving) this.serving = false
    this.stepDownReason ??= reason
    this.wake?.()
  }

  /** Sleeps up to `ms`, or until something wakes the loop. */
  private nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms)
      function done() {
        clearTimeout(t)
        resolve()
      }
      this.wake = done
    })
  }

  private async register(role: Role): Promise<void> {
    const s = this.session
    if (s === undefined || this.etcd === undefined) return
    const value = JSON.stringify({address: this.advertise, role, since: Date.now(), pid: process.pid})
    await this.etcd.kv.put({key: b(this.keys.masters + this.advertise), value: b(value), lease: s.leaseId}).catch(() => {})
  }

  private async run(): Promise<void> {
    let backoff = 100
    while (!this.closed) {
      try {
        await this.session?.revoke()
        this.session = await EtcdSession.open(this.etcd!, this.ttlMs)
        this.session.on('lost', (why) => this.requestStepDown(why))
        this.stepDownReason = undefined
        if (this.role !== 'candidate') this.roles.to('candidate', 'new etcd session')
        await this.register('candidate')
        this.follower ??= new LogFollower(this.etcd!, this.keys, new MetadataImage())
        backoff = 100
        while (!this.closed && this.session.alive) {
          await this.follower.sync()
          const term = await this.campaign()
          if (term !== undefined) {
            await this.lead(term)
            break
          }
          if (this.role !== 'standby') this.roles.to('standby', `the leader is ${this.leaderAddress}`)
          await this.register('standby')
          await this.follow()
          if (this.closed) break
          if (this.role === 'standby') this.roles.to('candidate', 'the leader key is gone')
        }
      } catch (err) {
        this.options.onError?.(err)
        if (this.role === 'leader') this.roles.to('stepping-down', 'error')
        if (this.role === 'stepping-down' || this.role === 'standby') this.roles.to('candidate', 'retrying after an error')
        await this.nap(backoff)
        backoff = Math.min(backoff * 2, Math.max(1_000, this.ttlMs / 2))
      }
    }
    await this.session?.revoke()
    this.session = undefined
  }

  /** Create-if-absent of the leader key under our lease; the term (create revision) when won. */
  private async campaign(): Promise<number | undefined> {
    const etcd = this.etcd!
    const s = this.session!
    const res = await etcd.kv.txn({
      compare: [{key: b(this.keys.leader), target: 'Create', result: 'Equal', create_revision: '0'}],
      success: [{request_put: {key: b(this.keys.leader), value: b(this.advertise), lease: s.leaseId}}],
      failure: [{request_range: {key: b(this.keys.leader)}}],
    })
    if (res.succeeded) return Number(res.header.revision)
    const kv = res.responses[0]?.response_range?.kvs[0]
    if (kv === undefined) return undefined
    this.leaderAddress = kv.value.toString('utf8')
    if (this.leaderAddress === this.advertise && kv.lease !== s.leaseId) {
      // A previous incarnation of this master (killed) still holds the key: we own this address, so it is dead.
      await etcd.kv.txn({
        compare: [{key: b(this.keys.leader), target: 'Create', result: 'Equal', create_revision: kv.create_revision}],
        success: [{request_delete_range: {key: b(this.keys.leader)}}],
        failure: [],
      })
      return this.campaign()
    }
    return undefined
  }

  /** Standby: keeps the image in step and returns when the leader key is gone (or the session is lost). */
  private async follow(): Promise<void> {
    const etcd = this.etcd!
    const poll = Math.max(20, Math.min(200, Math.floor(this.ttlMs / 10)))
    const watcher = await etcd
      .watch()
      .key(this.keys.leader)
      .create()
      .catch(() => undefined)
    watcher?.on('delete', () => this.wake?.())
    watcher?.on('error', () => {})
    try {
      let lastSync = 0
      while (!this.closed && this.session?.alive === true) {
        const kv = await getKey(etcd, this.keys.leader)
        if (kv === undefined) return
        this.leaderAddress = kv.value.toString('utf8')
        if (Date.now() - lastSync >= 4 * poll) {
          await this.follower!.sync()
          lastSync = Date.now()
        }
        await this.nap(poll)
      }
    } finally {
      await watcher?.cancel().catch(() => {})
    }
  }

  /** Won the election: catch up, restore, serve until the leadership ends, then step down. */
  private async lead(term: number): Promise<void> {
    const etcd = this.etcd!
    const follower = this.follower!
    const t0 = Date.now()
    // Nobody else can append any more (every append is fenced by the leader key's create
    // revision, which is now ours): reading to the end is the whole catch-up.
    await follower.sync()
    this.term = term
    this.service.resetState()
    const log = new EtcdLog(etcd, this.keys, term, follower.image, follower.position, {
      ...this.options.etcdLog,
      onFenced: () => this.requestStepDown('a log write was fenced: another master is the leader'),
      onError: this.options.onError,
    })
    this.log = log
    try {
      await this.serve(log, term, follower, t0)
    } finally {
      await this.stepDown(log, term)
    }
  }

  private async serve(log: EtcdLog, term: number, follower: LogFollower, t0: number): Promise<void> {
    const etcd = this.etcd!
    this.restore(follower.image)
    this.service.setViewVersion(term)
    this.leaderAddress = this.advertise
    if (this.stepDownReason !== undefined || !this.session!.alive) return
    this.serving = true
    this.roles.to('leader', `elected (term ${term}); caught up to entry ${follower.position.seq} in ${Date.now() - t0} ms`)
    void this.register('leader')
    const check = Math.max(50, Math.floor(this.ttlMs / 4))
    while (!this.closed && this.stepDownReason === undefined) {
      await this.nap(check)
      if (this.stepDownReason !== undefined || this.closed) break
      if (!this.session!.deadline.valid()) {
        this.requestStepDown('the keepalive deadline passed')
        break
      }
      const kv = await getKey(etcd, this.keys.leader).catch(() => null)
      if (kv === undefined || (kv !== null && Number(kv.create_revision) !== term)) this.requestStepDown('the leader key changed')
    }
  }

  private async stepDown(log: EtcdLog, term: number): Promise<void> {
    this.serving = false
    if (this.role === 'leader' || this.role === 'candidate') this.roles.to('stepping-down', this.stepDownReason ?? 'closed')
    await log.close(new MooncakeError('UNAVAILABLE', 'this master stopped being the leader; the outcome of the call is unknown, retry on the new leader'))
    this.log = undefined
    this.pending = undefined
    this.service.resetState()
    this.stopExpiry()
    // The image holds exactly the committed entries: follow on from there.
    this.follower!.position = log.position
    if (this.leaderAddress === this.advertise) this.leaderAddress = undefined
    // Hand over at once instead of letting the lease run out.
    await this.etcd!.kv
      .txn({
        compare: [{key: b(this.keys.leader), target: 'Create', result: 'Equal', create_revision: String(term)}],
        success: [{request_delete_range: {key: b(this.keys.leader)}}],
        failure: [],
      })
      .catch(() => {})
    await this.session?.revoke()
    this.session = undefined
    if (!this.closed) this.roles.to('candidate', 'stepped down')
  }
}
