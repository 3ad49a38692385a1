/**
 * The P2P store's etcd schema (docs/p2p.md, "etcd schema"). Everything lives under
 * `mooncake/<clusterId>/p2p/`:
 *
 *   payloads/<name>                 PayloadRecord JSON; no lease (outlives its owner while replicas serve it)
 *   holders/<enc name>/<enc peer>   HolderEntry JSON (which shards the peer serves, where); peer's lease
 *   peers/<peer>                    PeerRecord JSON; peer's lease (name uniqueness, liveness)
 *   control/<peer>/<id>             ControlRequest JSON; the requester's lease
 *   acks/<id>                       ControlAck JSON; the requester's lease
 *
 * `<enc x>` is encodeURIComponent(x), so names holding "/" cannot collide in prefix ranges.
 * Creation is always an etcd transaction on the key's create revision (create-if-absent).
 */
import {randomBytes} from 'node:crypto'

import type {Etcd3, IKeyValue, Lease, Watcher} from 'etcd3'

type IOperationLike = ReturnType<Etcd3['put']>

import {parseEndpoints} from '../etcd-endpoints.js'
import {MooncakeError, toMooncakeError} from '../errors.js'
import {etcdClientOptions, etcdTlsHint} from '../etcd-options.js'
import type {HolderEntry, PayloadRecord, PeerRecord} from './types.js'

export interface ControlRequest {
  id: string
  op: 'unregister' | 'delete-replica'
  name: string
  from: string
  /** The requester's lease id (decimal string): the server puts the ack under it. */
  lease: string
}

export interface ControlAck {
  id: string
  ok: boolean
  code?: string
  message?: string
}

export interface HolderView {
  /** Revision of the read (watch from revision + 1). */
  revision: string
  holders: Map<string, HolderEntry>
}

const enc = encodeURIComponent
const dec = decodeURIComponent

function unavailable(what: string, err: unknown): MooncakeError {
  if (err instanceof MooncakeError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new MooncakeError('UNAVAILABLE', `etcd ${what} failed: ${message}${etcdTlsHint(err)}`, {cause: err})
}

export class P2PMetadata {
  readonly prefix: string

  private constructor(
    readonly client: Etcd3,
    readonly clusterId: string,
  ) {
    this.prefix = `mooncake/${clusterId}/p2p/`
  }

  /** Connects lazily (etcd3 dials on first use); `check` does one read so a dead etcd fails fast. */
  static async connect(etcd: string[] | string, clusterId: string, callTimeoutMs = 5_000): Promise<P2PMetadata> {
    const {Etcd3} = await import('etcd3')
    const client = new Etcd3({
      ...etcdClientOptions(),
      hosts: parseEndpoints(etcd),
      dialTimeout: callTimeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : {deadline: Date.now() + callTimeoutMs}),
    })
    const meta = new P2PMetadata(client, clusterId)
    try {
      await client.get(`${meta.prefix}peers/`).exec()
    } catch (err) {
      client.close()
      throw unavailable(`at ${Array.isArray(etcd) ? etcd.join(',') : etcd}`, err)
    }
    return meta
  }

  close(): void {
    this.client.close()
  }

  // ---- keys --------------------------------------------------------------------------------

  payloadKey(name: string): string {
    return `${this.prefix}payloads/${name}`
  }
  holdersPrefix(name: string): string {
    return `${this.prefix}holders/${enc(name)}/`
  }
  holderKey(name: string, peer: string): string {
    return `${this.holdersPrefix(name)}${enc(peer)}`
  }
  peerKey(peer: string): string {
    return `${this.prefix}peers/${peer}`
  }
  controlPrefix(peer: string): string {
    return `${this.prefix}control/${enc(peer)}/`
  }
  ackKey(id: string): string {
    return `${this.prefix}acks/${id}`
  }

  // ---- leases and peers ----------------------------------------------------------------------

  /** Grants a lease (TTL rounded up to whole seconds, at least 1) and waits for the grant. */
  async grantLease(ttlMs: number): Promise<Lease> {
    const lease = this.client.lease(Math.max(1, Math.ceil(ttlMs / 1000)))
    try {
      await lease.grant()
    } catch (err) {
      throw unavailable('lease grant', err)
    }
    return lease
  }

  /** Claims the peer name under the lease; refused while another live peer holds it. */
  async claimPeer(lease: Lease, record: PeerRecord): Promise<void> {
    const key = this.peerKey(record.peer)
    const leaseId = await lease.grant()
    let res
    try {
      res = await this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(JSON.stringify(record)).lease(leaseId))
        .else(this.client.get(key))
        .commit()
    } catch (err) {
      throw unavailable('peer claim', err)
    }
    if (!res.succeeded) {
      const held = res.responses[0]?.response_range?.kvs?.[0]
      let detail = ''
      try {
        const other = JSON.parse(held?.value?.toString() ?? '{}') as Partial<PeerRecord>
        detail = other.host ? ` (pid ${other.pid} on ${other.host}, serving ${other.endpoints?.join(',')})` : ''
      } catch {}
      throw new MooncakeError('PEER_ALREADY_EXISTS', `peer name "${record.peer}" is held by a live peer${detail}; choose another --peer`)
    }
  }

  async getPeer(peer: string): Promise<PeerRecord | undefined> {
    try {
      const value = await this.client.get(this.peerKey(peer)).string()
      return value === null ? undefined : (JSON.parse(value) as PeerRecord)
    } catch (err) {
      throw unavailable('peer read', err)
    }
  }

  // ---- payloads ------------------------------------------------------------------------------

  /**
   * Creates the payload record and the owner's holder entry in one transaction, if the name is
   * free. So a registered payload always has a holder until its owner leaves, and "no holder
   * left" means nobody serves it. A record nobody serves any more (its owner crashed) is taken
   * over; anything else is PAYLOAD_ALREADY_EXISTS.
   */
  async createPayload(record: PayloadRecord, holder: HolderEntry, lease: Lease): Promise<void> {
    const key = this.payloadKey(record.name)
    const value = JSON.stringify(stripRevision(record))
    const leaseId = await lease.grant()
    const holderPut = (): IOperationLike => this.client.put(this.holderKey(record.name, holder.peer)).value(JSON.stringify(holder)).lease(leaseId)
    for (let attempt = 0; attempt < 5; attempt++) {
      let res
      try {
        res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value), holderPut()).else(this.client.get(key)).commit()
      } catch (err) {
        throw unavailable('payload create', err)
      }
      if (res.succeeded) return
      const kv = res.responses[0]?.response_range?.kvs?.[0]
      if (!kv) continue
      const existing = decodePayload(kv)
      if (existing && !(await this.isStale(existing))) {
        throw new MooncakeError('PAYLOAD_ALREADY_EXISTS', `payload "${record.name}" is already registered by peer "${existing.owner}"`)
      }
      // Take over a stale record, guarded on its mod revision; its dead holders' keys are gone already.
      try {
        const take = await this.client.if(key, 'Mod', '==', String(kv.mod_revision)).then(this.client.put(key).value(value), holderPut()).commit()
        if (take.succeeded) return
      } catch (err) {
        throw unavailable('payload take-over', err)
      }
    }
    throw new MooncakeError('ETCD_TRANSACTION_FAIL', `payload "${record.name}": too many concurrent changes, try again`)
  }

  /** A record is stale when no live peer serves any shard of it. */
  async isStale(record: PayloadRecord): Promise<boolean> {
    return (await this.countHolders(record.name)) === 0
  }

  async getPayload(name: string): Promise<PayloadRecord | undefined> {
    let res
    try {
      res = await this.client.get(this.payloadKey(name)).exec()
    } catch (err) {
      throw unavailable('payload read', err)
    }
    const kv = res.kvs[0]
    return kv ? decodePayload(kv) : undefined
  }

  async listPayloads(prefix = ''): Promise<PayloadRecord[]> {
    let res
    try {
      res = await this.client.getAll().prefix(this.payloadKey(prefix)).sort('Key', 'Ascend').exec()
    } catch (err) {
      throw unavailable('payload list', err)
    }
    return res.kvs.map(decodePayload).filter((p): p is PayloadRecord => p !== undefined)
  }

  /** Deletes the payload record only when it is still the one created at `revision`. */
  async deletePayload(name: string, revision?: string): Promise<boolean> {
    const key = this.payloadKey(name)
    try {
      if (revision === undefined) {
        const res = await this.client.delete().key(key).exec()
        return Number(res.deleted) > 0
      }
      const res = await this.client.if(key, 'Create', '==', revision).then(this.client.delete().key(key)).commit()
      return res.succeeded
    } catch (err) {
      throw unavailable('payload delete', err)
    }
  }

  // ---- holders -------------------------------------------------------------------------------

  async putHolder(lease: Lease, name: string, entry: HolderEntry): Promise<void> {
    try {
      await lease.put(this.holderKey(name, entry.peer)).value(JSON.stringify(entry))
    } catch (err) {
      throw unavailable('holder put', err)
    }
  }

  async deleteHolder(name: string, peer: string): Promise<void> {
    try {
      await this.client.delete().key(this.holderKey(name, peer)).exec()
    } catch (err) {
      throw unavailable('holder delete', err)
    }
  }

  async countHolders(name: string): Promise<number> {
    try {
      return await this.client.getAll().prefix(this.holdersPrefix(name)).count()
    } catch (err) {
      throw unavailable('holder count', err)
    }
  }

  async listHolders(name: string): Promise<HolderView> {
    let res
    try {
      res = await this.client.getAll().prefix(this.holdersPrefix(name)).exec()
    } catch (err) {
      throw unavailable('holder list', err)
    }
    const holders = new Map<string, HolderEntry>()
    for (const kv of res.kvs) {
      const entry = decodeHolder(kv.value)
      if (entry) holders.set(entry.peer, entry)
    }
    return {revision: String(res.header.revision), holders}
  }

  /** Peer name of a holder key of `name`. */
  holderPeerOf(name: string, key: Buffer | string): string | undefined {
    const text = key.toString()
    const prefix = this.holdersPrefix(name)
    return text.startsWith(prefix) ? dec(text.slice(prefix.length)) : undefined
  }

  async watchHolders(
    name: string,
    fromRevision: string,
    onPut: (entry: HolderEntry) => void,
    onDelete: (peer: string) => void,
  ): Promise<Watcher> {
    const watcher = await this.client
      .watch()
      .prefix(this.holdersPrefix(name))
      .startRevision(String(BigInt(fromRevision) + 1n))
      .create()
    watcher.on('put', (kv) => {
      const entry = decodeHolder(kv.value)
      if (entry) onPut(entry)
    })
    watcher.on('delete', (kv) => {
      const peer = this.holderPeerOf(name, kv.key)
      if (peer !== undefined) onDelete(peer)
    })
    watcher.on('error', () => {})
    return watcher
  }

  // ---- control requests ----------------------------------------------------------------------

  async watchControl(peer: string, onRequest: (req: ControlRequest, key: string) => void): Promise<Watcher> {
    const prefix = this.controlPrefix(peer)
    // Requests written before the watch started are picked up by the initial read.
    const existing = await this.client.getAll().prefix(prefix).exec()
    const watcher = await this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(BigInt(existing.header.revision) + 1n))
      .create()
    watcher.on('put', (kv) => {
      const req = decodeJson<ControlRequest>(kv.value)
      if (req) onRequest(req, kv.key.toString())
    })
    watcher.on('error', () => {})
    for (const kv of existing.kvs) {
      const req = decodeJson<ControlRequest>(kv.value)
      if (req) onRequest(req, kv.key.toString())
    }
    return watcher
  }

  async ack(req: ControlRequest, requestKey: string, ack: Omit<ControlAck, 'id'>): Promise<void> {
    try {
      await this.client
        .put(this.ackKey(req.id))
        .value(JSON.stringify({id: req.id, ...ack}))
        .lease(req.lease)
        .exec()
    } catch {
      // The requester's lease is gone (it gave up): nobody waits for this ack.
    }
    try {
      await this.client.delete().key(requestKey).exec()
    } catch {}
  }

  /**
   * Sends a control request to `peer` and waits for its acknowledgement (or the deadline). The
   * request and the ack live under a short lease of the requester, so a requester that dies
   * leaves nothing behind.
   */
  async request(peer: string, op: ControlRequest['op'], name: string, from: string, timeoutMs: number): Promise<ControlAck> {
    const lease = await this.grantLease(Math.max(5_000, Math.min(timeoutMs + 5_000, 60_000)))
    const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
    const leaseId = await lease.grant()
    let watcher: Watcher | undefined
    let timer: NodeJS.Timeout | undefined
    try {
      const ackKey = this.ackKey(id)
      watcher = await this.client.watch().key(ackKey).create()
      const acked = new Promise<ControlAck>((resolve, reject) => {
        watcher!.on('put', (kv) => {
          const ack = decodeJson<ControlAck>(kv.value)
          if (ack) resolve(ack)
        })
        timer = setTimeout(
          () => reject(new MooncakeError('DEADLINE_EXCEEDED', `peer "${peer}" did not acknowledge ${op} of "${name}" within ${timeoutMs} ms`)),
          timeoutMs,
        )
      })
      const req: ControlRequest = {id, op, name, from, lease: String(leaseId)}
      await lease.put(`${this.controlPrefix(peer)}${id}`).value(JSON.stringify(req))
      return await acked
    } catch (err) {
      throw toMooncakeError(err, 'UNAVAILABLE')
    } finally {
      if (timer) clearTimeout(timer)
      await watcher?.cancel().catch(() => {})
      await lease.revoke().catch(() => {})
    }
  }
}

function stripRevision(record: PayloadRecord): Omit<PayloadRecord, 'revision'> {
  const {revision: _r, ...rest} = record
  return rest
}

function decodeJson<T>(value: Buffer | Uint8Array | null | undefined): T | undefined {
  if (!value) return undefined
  try {
    return JSON.parse(Buffer.from(value).toString()) as T
  } catch {
    return undefined
  }
}

function decodePayload(kv: IKeyValue): PayloadRecord | undefined {
  const record = decodeJson<PayloadRecord>(kv.value)
  if (!record || typeof record.name !== 'string' || !Array.isArray(record.sizeList)) return undefined
  return {...record, revision: String(kv.create_revision)}
}

function decodeHolder(value: Buffer | Uint8Array | null | undefined): HolderEntry | undefined {
  const entry = decodeJson<HolderEntry>(value)
  if (!entry || typeof entry.peer !== 'string' || !Array.isArray(entry.endpoints)) return undefined
  return entry
}
