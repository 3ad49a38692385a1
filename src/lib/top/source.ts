/**
 * Where `top` (and `doctor`) read the master: its HTTP port. `/health`, `/get_all_segments` and
 * `/metrics` are fetched in parallel; none of them grants a lease or changes state.
 */
import {probeGet, type ProbeAnswer, type ProbeTls} from '../doctor/http-probe.js'
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

/** How top reads the master's HTTP port. */
export interface FetchOptions {
  /** Per request. Default 2 s. */
  timeoutMs?: number
  /** Aborts every request (Ctrl-C, --timeout). */
  signal?: AbortSignal
  /**
   * https with these (clientTls: --tls-ca, --tls-cert / --tls-key), as the master serves its HTTP
   * port over TLS when started with --tls-cert; plain http when undefined.
   */
  tls?: ProbeTls
}

/** Node's codes for a server certificate that did not verify (wrong or missing --tls-ca, wrong name). */
const CERT_ERRORS = /CERT|SIGNATURE|ALTNAME|SELF_SIGNED|ISSUER/

async function get(base: string, path: string, o: FetchOptions): Promise<ProbeAnswer> {
  const timeoutMs = o.timeoutMs ?? 2_000
  const scheme = o.tls === undefined ? 'http' : 'https'
  let res: ProbeAnswer
  try {
    res = await probeGet(base, path, timeoutMs, o.tls, o.signal)
  } catch (err) {
    if (err instanceof MooncakeError) throw err
    if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new MooncakeError('INTERRUPTED', 'interrupted')
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ETIMEDOUT' ? e.message : `${e.code ?? ''} ${e.message}`.trim()
    // The hint names the likely mismatch: plain http to a TLS port is cut off without an answer,
    // https to a plain port fails the handshake, and a certificate the CA did not sign fails it too.
    const hint =
      o.tls === undefined
        ? `check --http (default: the --master host, port ${DEFAULT_HTTP_PORT}); if the master was started with --tls-cert, pass --tls-ca (and --tls-cert / --tls-key if it requires client certificates)`
        : CERT_ERRORS.test(e.code ?? '')
          ? "the master's certificate did not verify: pass the CA that signed it with --tls-ca"
          : `check --http (default: the --master host, port ${DEFAULT_HTTP_PORT}) and that the master serves TLS (--tls-cert)`
    throw new MooncakeError('UNAVAILABLE', `master HTTP port ${scheme}://${base} not reachable (${why}): ${hint}`, {cause: err})
  }
  if (res.status === 401) {
    // A master with --tls-ca answers 401 and says why (no client certificate, or a bad one).
    let message = `master HTTP ${scheme}://${base}${path} requires a client certificate: pass --tls-cert / --tls-key`
    try {
      message = (JSON.parse(res.body) as {error: {message: string}}).error.message
    } catch {}
    throw new MooncakeError('UNAUTHENTICATED', message)
  }
  if (res.status !== 200) throw new MooncakeError('UNAVAILABLE', `master HTTP ${scheme}://${base}${path} answered ${res.status}`)
  return res
}

/** One poll of the master's HTTP port. */
export async function fetchSample(base: string, options: FetchOptions = {}): Promise<TopSample> {
  const [health, segments, metrics] = await Promise.all([
    get(base, '/health', options).then((r) => JSON.parse(r.body) as HealthDocument),
    get(base, '/get_all_segments', options).then((r) => JSON.parse(r.body) as SegmentsDocument),
    get(base, '/metrics', options).then((r) => r.body),
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
