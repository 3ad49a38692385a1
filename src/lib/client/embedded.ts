/**
 * `mooncake up`: a master and one segment in one process, no etcd. The segment owner talks to
 * the in-process MasterService directly (no gRPC hop); other clients use the gRPC address.
 */
import type {MasterServerOptions} from '../master/options.js'
import {ClientMetrics} from '../metrics/client.js'
import {startMasterServer, type RunningMaster} from '../master/server.js'
import {MasterService} from '../master/service.js'
import {grantMinter} from './engine-data-path.js'
import {asyncMaster} from './master-calls.js'
import {SegmentOwner} from './segment-owner.js'

export interface EmbeddedOptions extends Partial<MasterServerOptions> {
  /** Bytes of the segment. @default 1 GiB */
  size?: number
  /** Segment name. @default `HOST:PORT` of its data endpoint */
  segmentName?: string
  /** Port of the segment's data server; 0 picks a free one. @default 0 */
  dataPort?: number
  /** Interval of the segment owner's pings. @default 1000 */
  pingIntervalMs?: number
  /**
   * Record the segment owner's metrics (pings, re-mounts, served bytes) and serve them at
   * `/metrics/segment` on the master's HTTP port (next to the master's `/metrics`).
   * @default true when the HTTP port is on (metricsPort >= 0)
   */
  segmentMetrics?: boolean
  /** Receives the master's notices (segments of other owners dropped when they went silent). @default none */
  onNotice?: (message: string) => void
}

export interface EmbeddedStore {
  master: RunningMaster
  owner: SegmentOwner
  /** gRPC address of the master. */
  address: string
  /** HTTP address (metrics, health), when enabled. */
  httpAddress?: string
  /** The segment owner's metrics (served at `/metrics/segment`), when recorded. */
  segmentMetrics?: ClientMetrics
  /** Unmounts the segment, frees its memory and stops the master. Idempotent. */
  close(): Promise<void>
}

/** Starts a master (gRPC + HTTP) and one segment owner in this process. */
export async function startEmbedded(options: EmbeddedOptions = {}): Promise<EmbeddedStore> {
  const {size = 2 ** 30, segmentName, dataPort = 0, pingIntervalMs, segmentMetrics: withMetrics, onNotice, ...serverOptions} = options
  const defined = Object.fromEntries(Object.entries(serverOptions).filter(([, v]) => v !== undefined)) as Partial<MasterServerOptions>
  const service = new MasterService(defined, {mintGrant: grantMinter})
  // A second path rather than one /metrics: the master's registry lives in the server.
  const segmentMetrics = (withMetrics ?? (defined.metricsPort ?? 0) >= 0) ? new ClientMetrics({labels: {role: 'segment'}}) : undefined
  const httpRoutes = segmentMetrics && {
    '/metrics/segment': async () => ({status: 200, contentType: segmentMetrics.contentType, body: await segmentMetrics.text()}),
  }
  const master = await startMasterServer({...defined, service, ...(httpRoutes ? {httpRoutes} : {}), ...(onNotice ? {onNotice} : {})})
  let owner: SegmentOwner
  try {
    owner = await SegmentOwner.start({
      master: asyncMaster(service),
      size,
      name: segmentName,
      host: defined.host ?? '127.0.0.1',
      port: dataPort,
      token: defined.token,
      pingIntervalMs,
      metrics: segmentMetrics,
    })
  } catch (err) {
    await master.close()
    throw err
  }
  let closing: Promise<void> | undefined
  return {
    master,
    owner,
    address: master.address,
    httpAddress: master.httpAddress,
    segmentMetrics,
    close: () =>
      (closing ??= (async () => {
        await owner.close()
        await master.close()
      })()),
  }
}
