/** A master client that follows the leader through etcd, as the HA chaos run's processes use it. */
import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'

export interface HaConnectOptions {
  etcd?: string[]
  clusterId?: string
  /** Deadline of a whole call (retries across masters included). */
  timeoutMs: number
  /** Deadline of one attempt on one master: a paused leader must not eat the whole call. @default 1_500 */
  attemptTimeoutMs?: number
  /** How long to wait for a leader at connect time. @default 20_000 */
  connectTimeoutMs?: number
}

export function connectHaMaster(o: HaConnectOptions): Promise<MasterClient> {
  return connectMaster({
    address: '',
    etcd: o.etcd,
    clusterId: o.clusterId,
    timeoutMs: o.timeoutMs,
    connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
    attemptTimeoutMs: o.attemptTimeoutMs ?? 1_500,
  } as Parameters<typeof connectMaster>[0])
}
