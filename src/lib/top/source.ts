/**
 * Where `top` (and `doctor`) read the master: its HTTP port. `/health`, `/get_all_segments` and
 * `/metrics` are fetched in parallel; none of them grants a lease or changes state.
 */
import http from 'node:http'

import {MooncakeError} from '../errors.js'
import type {HealthDocument, SegmentsDocument} from '../metrics/http-routes.js'
import {parsePrometheusText} from '../metrics/parse.js'
import type {TopSample} from './model.js'

/** Default HTTP (metrics/admin) port of a master. */
export const DEFAULT_HTTP_PORT = 9003

/** The master's HTTP `HOST:PORT`: `--http` when given, else the host of `--master` with port 9003. */
export function httpAddressFor(master: string, http?: string): string {
  if (http !== undefined && http !== '') return /:\d+$/.test(http) ? http : `${http}:${DEFAULT_HTTP_PORT}`
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(master.trim())
  const host = m ? m[1]! : '127.0.0.1'
  return `${host}:${DEFAULT_HTTP_PORT}`
}

export interface HttpAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/**
 * GET http://base/path with node:http (fetch refuses some ports, e.g. 6000, and keeps sockets
 * alive): one connection per request, the whole body as text, within `timeoutMs`.
 */
export function httpGet(base: string, path: string, timeoutMs: number, signal?: AbortSignal): Promise<HttpAnswer> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(base)
  if (!m) return Promise.reject(new MooncakeError('INVALID_PARAMS', `not a HOST:PORT: ${base}`))
  const host = m[1]!.replace(/^\[|\]$/g, '')
  return new Promise((resolve, reject) => {
    const req = http.get({host, port: Number(m[2]), path, agent: false, timeout: timeoutMs, signal}, (res) => {
      res.setEncoding('utf8')
      let body = ''
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), {code: 'ETIMEDOUT'})))
    req.on('error', reject)
  })
}

async function get(base: string, path: string, timeoutMs: number, signal?: AbortSignal): Promise<HttpAnswer> {
  let res: HttpAnswer
  try {
    res = await httpGet(base, path, timeoutMs, signal)
  } catch (err) {
    if (err instanceof MooncakeError) throw err
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new MooncakeError('INTERRUPTED', 'interrupted')
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ETIMEDOUT' ? e.message : (e.code ?? e.message)
    throw new MooncakeError('UNAVAILABLE', `master HTTP port ${base} not reachable (${why}): check --http (default: the --master host, port ${DEFAULT_HTTP_PORT})`, {
      cause: err,
    })
  }
  if (res.status !== 200) throw new MooncakeError('UNAVAILABLE', `master HTTP ${base}${path} answered ${res.status}`)
  return res
}

export async function fetchHealth(base: string, timeoutMs = 2_000, signal?: AbortSignal): Promise<{health: HealthDocument; date: string | null}> {
  const res = await get(base, '/health', timeoutMs, signal)
  return {health: JSON.parse(res.body) as HealthDocument, date: res.headers.date ?? null}
}

/** One poll of the master's HTTP port. */
export async function fetchSample(base: string, timeoutMs = 2_000, signal?: AbortSignal): Promise<TopSample> {
  const [health, segments, metrics] = await Promise.all([
    get(base, '/health', timeoutMs, signal).then((r) => JSON.parse(r.body) as HealthDocument),
    get(base, '/get_all_segments', timeoutMs, signal).then((r) => JSON.parse(r.body) as SegmentsDocument),
    get(base, '/metrics', timeoutMs, signal).then((r) => r.body),
  ])
  return {at: Date.now(), health, segments, metrics: parsePrometheusText(metrics)}
}

/** The leader's gRPC address published in etcd (`mooncake/<clusterId>/master`), or undefined when none leads. */
export async function leaderFromEtcd(endpoints: string[], clusterId: string, timeoutMs = 3_000): Promise<string | undefined> {
  const {connectEtcd, getKey, haKeys} = await import('../master/ha/etcd.js')
  const etcd = await connectEtcd(endpoints, timeoutMs)
  try {
    const kv = await getKey(etcd, haKeys(clusterId).leader)
    return kv?.value.toString('utf8')
  } catch (err) {
    throw new MooncakeError('UNAVAILABLE', `cannot read the leader from etcd ${endpoints.join(',')}: ${(err as Error).message}`, {cause: err})
  } finally {
    etcd.close()
  }
}
