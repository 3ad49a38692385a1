/**
 * Where `top` (and `doctor`) read the master: its HTTP port. `/health`, `/get_all_segments` and
 * `/metrics` are fetched in parallel; none of them grants a lease or changes state.
 */
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

async function get(base: string, path: string, timeoutMs: number, signal?: AbortSignal): Promise<Response> {
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])]
  try {
    const res = await fetch(`http://${base}${path}`, {signal: AbortSignal.any(signals)})
    if (!res.ok) throw new MooncakeError('UNAVAILABLE', `master HTTP ${base}${path} answered ${res.status}`)
    return res
  } catch (err) {
    if (err instanceof MooncakeError) throw err
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new MooncakeError('INTERRUPTED', 'interrupted')
    const cause = (err as {cause?: {code?: string; message?: string}}).cause
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message)
    throw new MooncakeError('UNAVAILABLE', `master HTTP port ${base} not reachable (${why}): check --http (default: the --master host, port ${DEFAULT_HTTP_PORT})`, {
      cause: err,
    })
  }
}

export async function fetchHealth(base: string, timeoutMs = 2_000, signal?: AbortSignal): Promise<{health: HealthDocument; date: string | null}> {
  const res = await get(base, '/health', timeoutMs, signal)
  return {health: (await res.json()) as HealthDocument, date: res.headers.get('date')}
}

/** One poll of the master's HTTP port. */
export async function fetchSample(base: string, timeoutMs = 2_000, signal?: AbortSignal): Promise<TopSample> {
  const [health, segments, metrics] = await Promise.all([
    get(base, '/health', timeoutMs, signal).then((r) => r.json() as Promise<HealthDocument>),
    get(base, '/get_all_segments', timeoutMs, signal).then((r) => r.json() as Promise<SegmentsDocument>),
    get(base, '/metrics', timeoutMs, signal).then((r) => r.text()),
  ])
  return {at: Date.now(), health, segments, metrics: parsePrometheusText(metrics)}
}
