/**
 * `mooncake cluster status` through etcd (issue 5): the leader (value of the leader key), the
 * standbys (registered masters other than the leader), the view version (the leader key's
 * create revision, as the leader reports it) and etcd's own health.
 */
import {MooncakeError} from '../../errors.js'
import {parseEndpoints} from '../../etcd-endpoints.js'
import {connectEtcd, getRange, haKeys, prefixEnd} from './etcd.js'

export interface EtcdHealth {
  endpoints: string[]
  healthy: boolean
  version?: string
  dbSize?: number
  revision?: number
  raftLeader?: string
  error?: string
}

export interface ClusterStatus {
  leader: string | null
  standbys: string[]
  viewVersion: number
  etcd: EtcdHealth
}

export async function clusterStatus(options: {etcd: string[] | string; clusterId: string; timeoutMs?: number}): Promise<ClusterStatus> {
  const endpoints = parseEndpoints(options.etcd)
  const etcd = await connectEtcd(endpoints, Math.max(200, Math.min(options.timeoutMs ?? 5_000, 5_000)))
  const keys = haKeys(options.clusterId)
  try {
    const health: EtcdHealth = {endpoints, healthy: false}
    try {
      const s = await etcd.maintenance.status({})
      Object.assign(health, {healthy: true, version: s.version, dbSize: Number(s.dbSize), revision: Number(s.header.revision), raftLeader: s.leader})
    } catch (err) {
      health.error = err instanceof Error ? err.message : String(err)
      throw new MooncakeError('UNAVAILABLE', `etcd at ${endpoints.join(',')} does not answer: ${health.error}`, {cause: err})
    }
    const leaderKv = (await etcd.kv.range({key: Buffer.from(keys.leader)})).kvs[0]
    const leader = leaderKv?.value.toString('utf8') ?? null
    const {kvs} = await getRange(etcd, keys.masters, prefixEnd(keys.masters))
    const standbys = kvs
      .map((kv) => kv.key.toString('utf8').slice(keys.masters.length))
      .filter((a) => a !== leader)
      .sort()
    return {leader, standbys, viewVersion: leaderKv === undefined ? 0 : Number(leaderKv.create_revision), etcd: health}
  } finally {
    etcd.close()
  }
}
