/**
 * The etcd endpoint list of every etcd3 client the project creates (HA, P2P, doctor, cluster
 * status), as `--etcd` / MOONCAKE_ETCD give it: "HOST:PORT", "http://HOST:PORT" or
 * "https://HOST:PORT", comma-separated in one string or spread over an array.
 */
import {MooncakeError} from './errors.js'

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i

/**
 * The endpoints as etcd3's `hosts` option wants them: trimmed, every one with a lowercase
 * `http://` or `https://` scheme (a bare HOST:PORT gets `http://`). Blank items between commas
 * are skipped. INVALID_PARAMS when nothing is left, for another scheme, or for an entry whose
 * address is empty or holds whitespace.
 */
export function parseEndpoints(etcd: string[] | string): string[] {
  const list = (Array.isArray(etcd) ? etcd : [etcd])
    .flatMap((e) => e.split(','))
    .map((e) => e.trim())
    .filter((e) => e.length > 0)
  if (list.length === 0) throw new MooncakeError('INVALID_PARAMS', 'no etcd endpoint given (--etcd or MOONCAKE_ETCD)')
  return list.map(normalize)
}

function normalize(entry: string): string {
  const scheme = SCHEME.exec(entry)?.[1].toLowerCase()
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw invalid(entry, `scheme ${scheme}:// is not supported`)
  }
  const address = scheme === undefined ? entry : entry.slice(scheme.length + 3)
  if (address === '') throw invalid(entry, 'no address')
  if (/\s/.test(address)) throw invalid(entry, 'whitespace in the address')
  // etcd3 recognises (and strips) only a lowercase scheme: "HTTPS://h" would reach gRPC as is.
  return `${scheme ?? 'http'}://${address}`
}

function invalid(entry: string, why: string): MooncakeError {
  return new MooncakeError(
    'INVALID_PARAMS',
    `bad etcd endpoint "${entry}" (${why}): expected HOST:PORT, http://HOST:PORT or https://HOST:PORT`,
  )
}
