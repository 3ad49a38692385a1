/**
 * Entry point of the master's durability layer (issue 5) for the server: one call when the
 * options ask for --etcd or --data-dir, nothing otherwise.
 */
import type {MasterServerOptions} from '../options.js'
import type {MasterService} from '../service.js'
import {createReplication, type Replication, replicationWanted} from './replication.js'

export type {Replication, ReplicationInfo} from './replication.js'
export type {Role} from './role.js'

/**
 * Installs the journal or the HA election + replication log on `service` (before anything else
 * wraps its methods), or returns undefined when neither --etcd nor --data-dir is set. Call
 * `start(boundAddress)` once the gRPC port is bound, and `close()` before the server stops.
 */
export function attachReplication(
  service: MasterService,
  o: Pick<MasterServerOptions, 'etcd' | 'dataDir' | 'clusterId' | 'haLeaseTtlMs' | 'advertise' | 'clientTtlMs'>,
  onError?: (err: unknown) => void,
): Replication | undefined {
  if (!replicationWanted(o)) return undefined
  return createReplication(service, {
    etcd: o.etcd,
    dataDir: o.etcd !== undefined && o.etcd.length > 0 ? undefined : o.dataDir,
    clusterId: o.clusterId,
    haLeaseTtlMs: o.haLeaseTtlMs,
    advertise: o.advertise,
    clientTtlMs: o.clientTtlMs,
    onError,
    onInfo: process.env.MOONCAKE_HA_DEBUG ? (m) => process.stderr.write(`[ha] ${m}\n`) : undefined,
  })
}

/** The /health role of a replicated master. */
export function healthRole(r: Replication): {role: 'leader' | 'standby'; leader?: string; ready: boolean} {
  const info = r.info()
  return {role: info.serving ? 'leader' : 'standby', leader: info.leader, ready: info.serving}
}
