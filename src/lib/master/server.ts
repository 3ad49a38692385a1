/**
 * The master process: MasterService behind gRPC (control plane) and a small HTTP port (health,
 * later metrics), with the background tick loop. Everything that touches sockets and timers
 * lives here; the service stays a pure state machine.
 */
import {readFileSync} from 'node:fs'

import * as grpc from '@grpc/grpc-js'

import {type Clock, systemClock} from './api.js'
import {MooncakeError} from '../errors.js'
import {loadMooncakeProto} from '../proto/loader.js'
import {grantMinter} from './grant-minter.js'
import {CallVerifier} from './grpc-auth.js'
import {masterHandlers, strictMasterDefinition} from './grpc-handlers.js'
import {serverCredentials} from './grpc-tls.js'
import {formatHostPort, type HttpRoute, type RunningHttp, startHttpServer} from './http.js'
import {startTickLoop} from './loop-lag.js'
import {
  DEFAULT_MASTER_SERVER_OPTIONS,
  DEFAULT_MASTER_SERVICE_OPTIONS,
  type MasterServerOptions,
  type MasterServiceOptions,
} from './options.js'
import {attachReplication, healthRole} from './ha/index.js'
import {MasterService} from './service.js'
import {observeMaster} from '../metrics/http-routes.js'

/** Largest gRPC message either way: batches of thousands of keys, never object bytes. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** Period of MasterService.tick (eviction, zombie puts, liveness). */
export const TICK_INTERVAL_MS = 20
/** How long close() lets in-flight calls finish before cutting them off. */
const SHUTDOWN_GRACE_MS = 2_000

export interface StartMasterOptions extends Partial<MasterServerOptions> {
  /** Time source of the service (tests move a fake one). @default the system clock */
  clock?: Clock
  /** A service built by the caller (e.g. `mooncake up` shares it with a segment). @default a new MasterService */
  service?: MasterService
  /** Extra HTTP routes by exact path, e.g. `/metrics`. @default none */
  httpRoutes?: Record<string, HttpRoute>
  /** Receives errors of background work (a failing tick). @default a process warning, at most every 10 s */
  onError?: (err: unknown) => void
  /** Receives events an operator should see (segments dropped when their owner went silent). @default none */
  onNotice?: (message: string) => void
}

export interface RunningMaster {
  /** gRPC `host:port` actually bound. */
  address: string
  /** HTTP `host:port` actually bound; absent when metricsPort is negative (HTTP off). */
  httpAddress?: string
  service: MasterService
  /** Stops serving: in-flight calls get a short grace, timers stop, ports are released. Idempotent. */
  close(): Promise<void>
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1'
}

function validate(o: MasterServerOptions): void {
  if (typeof o.host !== 'string' || o.host === '') throw new MooncakeError('INVALID_PARAMS', 'host must not be empty')
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65_535) {
    throw new MooncakeError('INVALID_PARAMS', `port must be 0 to 65535 (got ${o.port})`)
  }
  if (!Number.isInteger(o.metricsPort) || o.metricsPort < -1 || o.metricsPort > 65_535) {
    throw new MooncakeError('INVALID_PARAMS', `metricsPort must be 0 to 65535, or -1 for no HTTP (got ${o.metricsPort})`)
  }
  if (o.token !== undefined && o.token.length === 0) {
    throw new MooncakeError('INVALID_PARAMS', 'the cluster token is empty: set MOONCAKE_TOKEN to a non-empty secret, or unset it')
  }
  if (!isLoopbackHost(o.host) && o.token === undefined && !o.insecure) {
    throw new MooncakeError(
      'INVALID_PARAMS',
      `refusing to serve on ${o.host} without a cluster token: set MOONCAKE_TOKEN (or MOONCAKE_TOKEN_FILE), or pass --insecure to accept unauthenticated calls from the network${o.tls === undefined ? '' : ' (TLS encrypts the calls but, without a token, authenticates nobody)'}`,
    )
  }
}

function serviceOptions(o: MasterServerOptions): Partial<MasterServiceOptions> {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(DEFAULT_MASTER_SERVICE_OPTIONS)) out[k] = (o as unknown as Record<string, unknown>)[k]
  return out as Partial<MasterServiceOptions>
}

/** The package version (src/lib/master and dist/lib/master are both three levels below the root). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {version: string}).version
  } catch {
    return '0.0.0'
  }
}

function rateLimitedWarning(): (err: unknown) => void {
  let last = 0
  return (err) => {
    const now = Date.now()
    if (now - last < 10_000) return
    last = now
    process.emitWarning(`mooncake master background work failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  }
}

function bindGrpc(server: grpc.Server, host: string, port: number, tls?: MasterServerOptions['tls']): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(formatHostPort(host, port), serverCredentials(tls), (err, bound) => {
      if (!err) return resolve(bound)
      const inUse = /EADDRINUSE|address already in use/i.test(err.message)
      reject(
        new MooncakeError(
          'INVALID_PARAMS',
          inUse
            ? `gRPC port ${port} on ${host} is in use: pick another with --port (0 = any free port)`
            : `cannot listen on ${host}:${port}: ${err.message}`,
          {cause: err},
        ),
      )
    })
  })
}

export async function startMasterServer(options: StartMasterOptions = {}): Promise<RunningMaster> {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  const o: MasterServerOptions = {...DEFAULT_MASTER_SERVER_OPTIONS, ...defined}
  validate(o)
  const service = options.service ?? new MasterService(serviceOptions(o), {clock: options.clock ?? systemClock, version: packageVersion(), mintGrant: grantMinter})
  const onError = options.onError ?? rateLimitedWarning()
  if (options.onNotice !== undefined) service.onNotice = options.onNotice
  // Disk tier: disk-only objects of an earlier run come back before anything is served (docs/disk-tier.md).
  if (service.disk !== undefined) await service.disk.restore(service)
  // HA election + replication log (--etcd) or journal (--data-dir): installed before metrics wrap the service.
  const replication = attachReplication(service, o, onError)
  const observed = observeMaster(service) // metrics: counted calls for gRPC, routes for HTTP
  const lifetime = new AbortController()

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // Find dead client connections (a peer that vanished without FIN) instead of holding them forever.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  })
  const proto = loadMooncakeProto()
  const definition = strictMasterDefinition(proto.master)
  server.addService(
    definition,
    masterHandlers(
      {
        service: observed.calls,
        verifier: o.token === undefined ? undefined : new CallVerifier(o.token),
        signal: lifetime.signal,
        around: replication?.around.bind(replication),
      },
      definition,
    ) as unknown as grpc.UntypedServiceImplementation,
  )

  let http: RunningHttp | undefined
  let ticks: {stop(): void} | undefined
  try {
    const port = await bindGrpc(server, o.host, o.port, o.tls)
    if (o.metricsPort >= 0) {
      const leader = o.advertise ?? formatHostPort(o.host, port)
      const routes = new Map<string, HttpRoute>(Object.entries({...observed.routes({version: service.serviceReady().version, leader, role: replication && (() => healthRole(replication))}), ...options.httpRoutes}))
      http = await startHttpServer(o.host, o.metricsPort, routes, o.tls)
    }
    await replication?.start(formatHostPort(o.host, port))
    ticks = startTickLoop((loopLagMs) => service.tick({loopLagMs}), TICK_INTERVAL_MS, onError)
    let closing: Promise<void> | undefined
    return {
      address: formatHostPort(o.host, port),
      httpAddress: http?.address,
      service,
      close: () => (closing ??= replication ? replication.close().then(() => shutdown(server, lifetime, ticks, http)) : shutdown(server, lifetime, ticks, http)),
    }
  } catch (err) {
    await replication?.close().catch(() => {})
    await shutdown(server, lifetime, ticks, http)
    throw err
  }
}

async function shutdown(
  server: grpc.Server,
  lifetime: AbortController,
  ticks: {stop(): void} | undefined,
  http: RunningHttp | undefined,
): Promise<void> {
  lifetime.abort()
  ticks?.stop()
  await Promise.all([
    new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, SHUTDOWN_GRACE_MS)
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    }),
    http?.close(),
  ])
}
