/**
 * etcd access for HA: the key layout, a client with deadlines on every unary call and without
 * etcd3's circuit breaker (it would refuse calls for 5 s after an etcd restart), and small
 * wrappers over the raw KV API (create revisions and leases are needed, which the builders hide).
 *
 * Keys (all under `mooncake/<clusterId>/`):
 *   master                 leader address (HOST:PORT), under the leader's lease; its create
 *                          revision is the leadership's fencing token and the view version
 *   masters/<HOST:PORT>    every running master, under its own lease: {"address","role","since"}
 *   log/<16-digit seq>     replication log entries (batches of mutations)
 *   snapshot/<seq>/<i>     chunks of the metadata snapshot that includes log entries <= seq
 *   snapshot-meta          which snapshot is current (SnapshotMeta)
 */
import type {Etcd3, IKeyValue} from 'etcd3'

import {parseEndpoints} from '../../etcd-endpoints.js'
import {MooncakeError} from '../../errors.js'
import {etcdClientOptions, etcdTlsHint} from '../../etcd-options.js'

export interface HaKeys {
  prefix: string
  leader: string
  masters: string
  log: string
  snapshot: string
  snapshotMeta: string
}

export function haKeys(clusterId: string): HaKeys {
  const prefix = `mooncake/${clusterId}/`
  return {
    prefix,
    leader: `${prefix}master`,
    masters: `${prefix}masters/`,
    log: `${prefix}log/`,
    snapshot: `${prefix}snapshot/`,
    snapshotMeta: `${prefix}snapshot-meta`,
  }
}

/** An etcd client: unary calls time out after `callTimeoutMs`; no retry or circuit breaker (callers retry). */
export async function connectEtcd(endpoints: string[] | string, callTimeoutMs = 3_000): Promise<Etcd3> {
  const {Etcd3} = await import('etcd3')
  type Options = NonNullable<ConstructorParameters<typeof Etcd3>[0]>
  let faultHandling: Options['faultHandling']
  try {
    const {noop} = (await import('cockatiel')) as unknown as {noop: unknown}
    faultHandling = {host: () => noop, global: noop} as unknown as Options['faultHandling']
  } catch {
    faultHandling = undefined
  }
  return new Etcd3({
    ...etcdClientOptions(),
    hosts: parseEndpoints(endpoints),
    dialTimeout: callTimeoutMs,
    faultHandling,
    defaultCallOptions: (context) => (context.isStream ? {} : {deadline: Date.now() + callTimeoutMs}),
  })
}

export const b = (s: string): Buffer => Buffer.from(s, 'utf8')

/** The smallest key after every key starting with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  const buf = Buffer.from(prefix, 'utf8')
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i] < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1))
      end[i]++
      return end
    }
  }
  return Buffer.from([0])
}

export async function getKey(etcd: Etcd3, key: string): Promise<IKeyValue | undefined> {
  const res = await etcd.kv.range({key: b(key)})
  return res.kvs[0]
}

/** Keys in [from, end) in key order, at most `limit` (0 = all). */
export async function getRange(etcd: Etcd3, from: string | Buffer, end: Buffer, limit = 0): Promise<{kvs: IKeyValue[]; more: boolean; revision: string}> {
  const res = await etcd.kv.range({key: typeof from === 'string' ? b(from) : from, range_end: end, limit: String(limit)})
  return {kvs: res.kvs, more: res.more, revision: res.header.revision}
}

export function etcdError(what: string, err: unknown): MooncakeError {
  if (err instanceof MooncakeError) return err
  return new MooncakeError('UNAVAILABLE', `etcd ${what} failed: ${err instanceof Error ? err.message : String(err)}${etcdTlsHint(err)}`, {cause: err})
}
