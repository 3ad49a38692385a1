/**
 * The master's HTTP port (S16): a route table over node:http. /health is here; /metrics and admin
 * endpoints are added as routes by their own modules.
 */
import http from 'node:http'
import https from 'node:https'
import type {AddressInfo} from 'node:net'
import type {TLSSocket} from 'node:tls'

import {type ErrorCodeName, MooncakeError} from '../errors.js'

export interface HttpResponse {
  status?: number
  contentType?: string
  body: string
}

/** A route answers GET (and HEAD) on one exact path. */
export type HttpRoute = (req: http.IncomingMessage) => HttpResponse | Promise<HttpResponse>

export function json(value: unknown, status = 200): HttpResponse {
  return {status, contentType: 'application/json', body: JSON.stringify(value) + '\n'}
}

/** The body of an error answer; typed so that only ErrorCode names can be sent. */
export function httpError(code: ErrorCodeName, message: string): {error: {code: ErrorCodeName; message: string}} {
  return {error: {code, message}}
}

export interface RunningHttp {
  /** host:port actually bound. */
  address: string
  close(): Promise<void>
}

/**
 * With `tls` (PEM certificate and key) the port speaks HTTPS; with `tls.ca` too, every request
 * must come with a client certificate signed by that CA (as the gRPC port, like etcd's
 * --client-cert-auth), else it is answered 401 UNAUTHENTICATED.
 */
export async function startHttpServer(
  host: string,
  port: number,
  routes: Map<string, HttpRoute>,
  tls?: {cert: string | Buffer; key: string | Buffer; ca?: string | Buffer},
): Promise<RunningHttp> {
  const handler: http.RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    const route = routes.get(path)
    const send = (r: HttpResponse) => {
      res.writeHead(r.status ?? 200, {'content-type': r.contentType ?? 'text/plain; charset=utf-8'})
      res.end(req.method === 'HEAD' ? undefined : r.body)
    }
    const socket = req.socket as TLSSocket
    if (tls?.ca !== undefined && !socket.authorized) {
      // The handshake lets a client without a good certificate through (rejectUnauthorized: false)
      // so that it gets this answer rather than a bare connection reset.
      const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0
      const why = presented ? `its certificate did not verify: ${String(socket.authorizationError)}` : 'none presented'
      send(json(httpError('UNAUTHENTICATED', `this port requires a client certificate signed by the master's --tls-ca (${why}): pass --tls-cert / --tls-key`), 401))
      return
    }
    // Unknown paths and methods are NOT_SUPPORTED, as the gRPC port answers an unknown method
    // (UNIMPLEMENTED); the HTTP status tells the two apart.
    if (!route) {
      send(json(httpError('NOT_SUPPORTED', `no route ${req.method} ${path}`), 404))
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      send(json(httpError('NOT_SUPPORTED', `${path} answers GET only`), 405))
      return
    }
    Promise.resolve()
      .then(() => route(req))
      .then(send, (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err)
        send(json(httpError('INTERNAL_ERROR', message), 500))
      })
  }
  const server =
    tls === undefined
      ? http.createServer(handler)
      : https.createServer(tls.ca === undefined ? {cert: tls.cert, key: tls.key} : {cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false}, handler)
  // Keep-alive sockets of scrapers must not hold close() up.
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new MooncakeError(
          'INVALID_PARAMS',
          err.code === 'EADDRINUSE'
            ? `HTTP port ${port} on ${host} is in use: pick another with --metrics-port (0 = any free port)`
            : `cannot listen on ${host}:${port} for HTTP: ${err.message}`,
        ),
      )
    })
    server.listen(port, host, () => resolve())
  })
  const bound = server.address() as AddressInfo
  return {
    address: formatHostPort(host, bound.port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`
}
