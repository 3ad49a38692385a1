/**
 * Segment owner of the HA chaos run, in its own process: like
 * test/integration/fixtures/segment-owner.ts, but it finds the leader master through etcd.
 * argv[2] = JSON {etcd, clusterId, size, name, port, pingIntervalMs?}. Prints
 * {"ready":"segment", name, endpoints, pid}; unmounts and exits on SIGTERM.
 */
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import {connectHaMaster} from './ha-connect.js'

const o = JSON.parse(process.argv[2] ?? '{}') as {etcd: string[]; clusterId: string; size: number; name: string; port?: number; pingIntervalMs?: number}
const master = await connectHaMaster({etcd: o.etcd, clusterId: o.clusterId, timeoutMs: 3_000, attemptTimeoutMs: 1_000})
const owner = await SegmentOwner.start({master, size: o.size, name: o.name, port: o.port, pingIntervalMs: o.pingIntervalMs ?? 200, rpcTimeoutMs: 3_000})
owner.on('unmounted', () => process.exit(0))
process.stdout.write(`${JSON.stringify({ready: 'segment', name: owner.name, endpoints: owner.endpoints, pid: process.pid})}\n`)
const stop = async () => {
  await owner.close().catch(() => {})
  master.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
