/**
 * One GET of an HTTP port read by doctor (the master's /health, each etcd member's /health) and by
 * top (/health, /get_all_segments, /metrics), over http or, with TLS material, https: a master
 * started with --tls-cert serves its HTTP port over TLS, and a master or etcd that verifies client
 * certificates answers only a client presenting one. node:http rather than fetch: fetch refuses
 * some ports (e.g. 6000) and keeps sockets alive; here each request has its own connection.
 */
import http from 'node:http'
import https from 'node:https'

import {splitHostPort} from '../config/parse.js'
import {MooncakeError} from '../errors.js'

/** PEM contents; `ca` replaces the system roots, `cert`/`key` are this client's identity (mTLS). */
export interface ProbeTls {
  ca?: string | Buffer
  cert?: string | Buffer
  key?: string | Buffer
}

export interface ProbeAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/**
 * GET `path` on `base` (HOST:PORT) within `timeoutMs`, the whole body as text: https when `tls` is
 * given, else http. `signal` aborts the request (top's Ctrl-C and --timeout).
 */
export function probeGet(base: string, path: string, timeoutMs: number, tls?: ProbeTls, signal?: AbortSignal): Promise<ProbeAnswer> {
  const address = splitHostPort(base)
  if (!address) return Promise.reject(new MooncakeError('INVALID_PARAMS', `not a HOST:PORT: ${base}`))
  const host = address.host.replace(/^\[|\]$/g, '')
  const common = {host, port: address.port, path, agent: false as const, timeout: timeoutMs, signal}
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      res.setEncoding('utf8')
      let body = ''
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
      res.on('error', reject)
    }
    const req =
      tls === undefined
        ? http.get(common, onResponse)
        : https.get({...common, ca: nonEmpty(tls.ca), cert: tls.cert, key: tls.key, servername: isIp(host) ? undefined : host}, onResponse)
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), {code: 'ETIMEDOUT'})))
    req.on('error', reject)
  })
}

/** An empty CA buffer (etcd3's "use the system roots") must not replace them with nothing. */
function nonEmpty(pem: string | Buffer | undefined): string | Buffer | undefined {
  return pem === undefined || pem.length === 0 ? undefined : pem
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':')
}
