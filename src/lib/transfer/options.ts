import {MooncakeError} from '../errors.js'

/** Options of a {@link TransferEngine}. Every field is optional; the defaults are listed. */
export interface TransferEngineOptions {
  /**
   * Addresses the transfer server listens on, one per NIC; all share one port. An empty list
   * makes a client-only engine (it can read and write other peers' segments but serves none).
   * @default ['127.0.0.1']
   */
  listenHosts?: string[]
  /**
   * TCP port of the transfer server; 0 lets the kernel pick a free one (see `start()`'s endpoints).
   * @default 0
   */
  port?: number
  /**
   * Cluster token. When set, every data connection runs a challenge-response handshake
   * (HMAC-SHA256, both directions; the token never crosses the wire), and peers without the
   * token are refused with UNAUTHENTICATED. Both sides must use the same token.
   * @default undefined (no authentication)
   */
  token?: string
  /**
   * Connections ("lanes") used in parallel towards one peer, spread over its addresses.
   * @default 4
   */
  lanesPerPeer?: number
  /**
   * Native threads that move client slices (TCP lanes and same-host memcpy), shared by all
   * peers. Keep it above lanesPerPeer: a frozen peer can hold up to lanesPerPeer of them until
   * its requests' deadline.
   * @default 8
   */
  clientThreads?: number
  /**
   * Native threads that serve incoming requests.
   * @default 4
   */
  serverThreads?: number
  /**
   * Requests are cut into slices of this many bytes, spread over lanes and addresses
   * (64 KiB to 16 MiB).
   * @default 1048576 (1 MiB)
   */
  sliceSize?: number
  /**
   * Deadline of a batch, from submission to its last byte, unless `submit()` overrides it.
   * @default 30000
   */
  requestTimeoutMs?: number
  /**
   * Most connections the server keeps; more are refused (UNAVAILABLE) until some close.
   * @default 1024
   */
  maxConnections?: number
  /**
   * The server closes a connection silent for this long; the client drops pooled connections
   * after half of it.
   * @default 60000
   */
  idleTimeoutMs?: number
  /**
   * Longest the server waits for one frame's bytes from a client (stalled or hostile peers).
   * @default 30000
   */
  ioTimeoutMs?: number
  /**
   * Deadline for opening one connection (TCP connect plus handshake start).
   * @default 5000
   */
  connectTimeoutMs?: number
  /**
   * After a connection to one of a peer's addresses fails, that address is avoided for this long.
   * @default 1000
   */
  cooldownMs?: number
  /**
   * Remove shared-memory files of dead processes when the engine starts.
   * @default true
   */
  sweepOnStart?: boolean
  /**
   * Run the client threads (clientThreads) under SCHED_BATCH, so that when woken they do not
   * preempt the application's threads (the event loop that submits) but take an idle CPU or
   * wait their turn. Turn off only if the engine's latency matters more than the application's.
   * @default true
   */
  batchScheduling?: boolean
}

export type ResolvedTransferEngineOptions = Required<Omit<TransferEngineOptions, 'token'>> & {token: string}

export const TRANSFER_DEFAULTS: ResolvedTransferEngineOptions = {
  listenHosts: ['127.0.0.1'],
  port: 0,
  token: '',
  lanesPerPeer: 4,
  clientThreads: 8,
  serverThreads: 4,
  sliceSize: 1 << 20,
  requestTimeoutMs: 30_000,
  maxConnections: 1024,
  idleTimeoutMs: 60_000,
  ioTimeoutMs: 30_000,
  connectTimeoutMs: 5000,
  cooldownMs: 1000,
  sweepOnStart: true,
  batchScheduling: true,
}

export const MIN_SLICE_SIZE = 64 * 1024
export const MAX_SLICE_SIZE = 16 * 1024 * 1024

function intIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new MooncakeError('INVALID_PARAMS', `transfer option ${name} must be an integer from ${min} to ${max} (got ${String(value)})`)
  }
  return value
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

/** Fills defaults and checks every field, so the native layer only ever sees sane values. */
export function resolveTransferOptions(options: TransferEngineOptions = {}): ResolvedTransferEngineOptions {
  const o = {...TRANSFER_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))}
  if (!Array.isArray(o.listenHosts) || o.listenHosts.length > 16) {
    throw new MooncakeError('INVALID_PARAMS', 'transfer option listenHosts must be a list of at most 16 IP addresses')
  }
  for (const host of o.listenHosts) {
    if (typeof host !== 'string' || !(IPV4.test(host) || (host.includes(':') && /^[0-9a-fA-F:.]+$/.test(host)))) {
      throw new MooncakeError('INVALID_PARAMS', `transfer option listenHosts: ${String(host)} is not a numeric IP address`)
    }
  }
  if (typeof o.token !== 'string' || o.token.length > 4096) {
    throw new MooncakeError('INVALID_PARAMS', 'transfer option token must be a string of at most 4096 characters')
  }
  intIn('port', o.port, 0, 65535)
  intIn('lanesPerPeer', o.lanesPerPeer, 1, 64)
  intIn('clientThreads', o.clientThreads, 1, 64)
  intIn('serverThreads', o.serverThreads, 1, 64)
  intIn('sliceSize', o.sliceSize, MIN_SLICE_SIZE, MAX_SLICE_SIZE)
  intIn('requestTimeoutMs', o.requestTimeoutMs, 1, 3_600_000)
  intIn('maxConnections', o.maxConnections, 1, 65536)
  intIn('idleTimeoutMs', o.idleTimeoutMs, 100, 86_400_000)
  intIn('ioTimeoutMs', o.ioTimeoutMs, 100, 3_600_000)
  intIn('connectTimeoutMs', o.connectTimeoutMs, 10, 600_000)
  intIn('cooldownMs', o.cooldownMs, 0, 600_000)
  for (const name of ['sweepOnStart', 'batchScheduling'] as const) {
    if (typeof o[name] !== 'boolean') throw new MooncakeError('INVALID_PARAMS', `transfer option ${name} must be true or false (got ${String(o[name])})`)
  }
  return {...o, listenHosts: [...o.listenHosts]}
}
