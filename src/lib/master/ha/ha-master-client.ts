/**
 * A MasterClient that follows the leader (issue 5): it finds the leader through etcd
 * (LeaderResolver), and when a call fails because the master it reached is not the leader
 * (NOT_LEADER: nothing was done, any call may be retried) or is unreachable (UNAVAILABLE: only
 * idempotent calls are retried, as the outcome is unknown) it re-resolves and retries within the
 * call's deadline. A standby's NOT_LEADER names the leader; that hint is tried first.
 */
import {MooncakeError, toMooncakeError} from '../../errors.js'
import type {MasterApi, PutStartRequest} from '../api.js'
import type {GetAllKeysRequest, MasterClient, MasterClientOptions} from '../../client/master-client.js'
import {ERROR_CODE_METADATA, LEADER_METADATA} from '../grpc-errors.js'
import {LeaderResolver} from './leader-resolver.js'

type Connect = (options: MasterClientOptions) => Promise<MasterClient>
type Method = keyof MasterApi

/** Whether a call may be sent again after an unknown outcome (mirrors the single-master client). */
const IDEMPOTENT: Record<Method, boolean | ((args: unknown[]) => boolean)> = {
  putStart: (a) => (a[0] as PutStartRequest).requestId !== '',
  putEnd: true,
  putRevoke: false,
  batchPutStart: (a) => (a[0] as PutStartRequest[]).every((r) => r.requestId !== ''),
  batchPutEnd: true,
  batchPutRevoke: false,
  // A repeated reservation only holds space until it expires; the caller falls back to PutStart instead.
  reserveSpace: false,
  // The client retries commits itself: it must know which ones may have landed (see putReserved).
  batchPutCommit: false,
  releaseSpace: true,
  upsertStart: false,
  upsertEnd: false,
  upsertRevoke: false,
  getReplicaList: true,
  batchGetReplicaList: true,
  getReplicaListByRegex: true,
  existKey: true,
  batchExistKey: true,
  query: true,
  batchQuery: true,
  queryByRegex: true,
  remove: false,
  batchRemove: false,
  removeByRegex: false,
  removeAll: false,
  mountSegment: true,
  reMountSegment: true,
  unmountSegment: false,
  getAllSegments: true,
  querySegments: true,
  listKeys: true,
  ping: true,
  serviceReady: true,
  stats: true,
}

export const DEFAULT_HA_ATTEMPT_TIMEOUT_MS = 5_000

export interface HaMasterClientOptions extends MasterClientOptions {
  /** Deadline of one attempt on one master (a paused leader must not eat the whole call deadline). @default min(timeoutMs, 5_000) */
  attemptTimeoutMs?: number
}

function leaderHint(err: MooncakeError): string | undefined {
  const md = (err.cause as {metadata?: {get(k: string): unknown[]}} | undefined)?.metadata
  const v = md?.get(LEADER_METADATA)[0]
  return typeof v === 'string' ? v : undefined
}

/** A transport failure (the master's logic never answered): the call may or may not have run. */
function isTransport(err: MooncakeError): boolean {
  const md = (err.cause as {metadata?: {get(k: string): unknown[]}} | undefined)?.metadata
  return err.code === 'UNAVAILABLE' && (md === undefined || md.get(ERROR_CODE_METADATA).length === 0)
}

export async function connectHaMaster(options: HaMasterClientOptions, connect: Connect): Promise<MasterClient> {
  const resolver = await LeaderResolver.create({etcd: options.etcd!, clusterId: options.clusterId, callTimeoutMs: 2_000})
  const client = new HaMasterClient(resolver, options, connect)
  try {
    const deadline = Date.now() + (options.connectTimeoutMs ?? Math.min(options.timeoutMs ?? 30_000, 5_000))
    await client.invoke('serviceReady', [], deadline)
    // Calls added to the API later are forwarded too (as non-idempotent).
    return new Proxy(client, {
      get(target, prop, receiver) {
        if (prop in target || typeof prop !== 'string' || prop === 'then') return Reflect.get(target, prop, receiver)
        return (...args: unknown[]) => target.invoke(prop as Method, args, Date.now() + target.timeoutMs)
      },
    }) as unknown as MasterClient
  } catch (err) {
    client.close()
    throw err
  }
}

class HaMasterClient {
  private inner: MasterClient | undefined
  private innerAddress: string | undefined
  private connecting: Promise<MasterClient> | undefined
  private closed = false
  readonly timeoutMs: number
  private readonly attemptMs: number
  /** Leader changes seen (for tests and diagnostics). */
  switches = 0

  constructor(
    private readonly resolver: LeaderResolver,
    private readonly options: HaMasterClientOptions,
    private readonly connect: Connect,
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.attemptMs = options.attemptTimeoutMs ?? Math.min(this.timeoutMs, DEFAULT_HA_ATTEMPT_TIMEOUT_MS)
    for (const name of Object.keys(IDEMPOTENT) as Method[]) {
      if (name === 'serviceReady') continue
      ;(this as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => this.invoke(name, args, Date.now() + this.timeoutMs)
    }
  }

  get address(): string {
    return this.innerAddress ?? this.resolver.current?.address ?? ''
  }

  serviceReady(): Promise<unknown> {
    return this.invoke('serviceReady', [], Date.now() + this.timeoutMs)
  }

  private async clientFor(address: string): Promise<MasterClient> {
    if (this.inner !== undefined && this.innerAddress === address) return this.inner
    this.inner?.close()
    this.inner = undefined
    this.innerAddress = address
    this.switches++
    // No ServiceReady round trip here: the first real call tells whether it is the leader.
    const {etcd: _e, clusterId: _c, ...rest} = this.options
    this.connecting = this.connect({...rest, address, timeoutMs: this.attemptMs, retry: false})
    const c = await this.connecting
    if (this.innerAddress !== address || this.closed) {
      c.close()
      throw new MooncakeError('UNAVAILABLE', 'the leader changed while connecting')
    }
    this.inner = c
    return c
  }

  async invoke(name: Method, args: unknown[], deadline: number): Promise<unknown> {
    const idem = IDEMPOTENT[name] as (typeof IDEMPOTENT)[Method] | undefined
    const idempotent = typeof idem === 'function' ? idem(args) : idem === true
    let delay = 20
    let last: MooncakeError | undefined
    for (;;) {
      if (this.closed) throw new MooncakeError('UNAVAILABLE', 'the master client is closed')
      let address: string | undefined
      try {
        const leader = await this.resolver.resolve(deadline)
        address = leader.address
        const c = await this.clientFor(address)
        const fn = (c as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]
        return await fn.apply(c, args)
      } catch (err) {
        const e = toMooncakeError(err)
        last = e
        if (e.code === 'NOT_LEADER') {
          this.resolver.invalidate(address, leaderHint(e))
        } else if (e.code === 'UNAVAILABLE' || e.code === 'RPC_FAIL' || e.code === 'RPC_TIMEOUT') {
          if (address === undefined) throw e // etcd itself did not answer within the deadline
          // An unknown outcome: only an idempotent call may go again.
          const neverSent = isTransport(e) && /ECONNREFUSED|No connection established|Failed to connect/i.test(e.message)
          if (!idempotent && !neverSent) throw e
          this.resolver.invalidate(address)
        } else throw e
      }
      if (Date.now() + delay >= deadline) {
        throw new MooncakeError('UNAVAILABLE', `no leader master answered ${name} in time (last: ${last?.code}: ${last?.message})`, {cause: last})
      }
      await new Promise((r) => setTimeout(r, delay))
      delay = Math.min(250, delay * 2)
    }
  }

  async *getAllKeys(req: GetAllKeysRequest = {}): AsyncGenerator<string> {
    const deadline = Date.now() + this.timeoutMs
    let after = req.after
    let remaining = req.limit
    for (;;) {
      const leader = await this.resolver.resolve(deadline)
      let c: MasterClient
      try {
        c = await this.clientFor(leader.address)
      } catch (err) {
        this.resolver.invalidate(leader.address)
        if (Date.now() >= deadline) throw err
        continue
      }
      try {
        for await (const key of c.getAllKeys({...req, after, limit: remaining})) {
          after = key
          if (remaining !== undefined) remaining--
          yield key
        }
        return
      } catch (err) {
        const e = toMooncakeError(err)
        if ((e.code !== 'NOT_LEADER' && e.code !== 'UNAVAILABLE') || Date.now() >= deadline) throw e
        this.resolver.invalidate(leader.address, e.code === 'NOT_LEADER' ? leaderHint(e) : undefined)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }

  close(): void {
    this.closed = true
    this.inner?.close()
    this.inner = undefined
    this.resolver.close()
  }
}
