/**
 * `mooncake doctor`: independent checks of the cluster and of this machine, each saying what it
 * saw and, when it failed, what to fix. Nothing here changes state or grants a lease: the master
 * is asked ServiceReady and GetAllSegments, its HTTP port /health, segment owners only get a TCP
 * connect (closed at once), etcd its /health and one key read.
 */
import {randomBytes} from 'node:crypto'
import {statfs, unlink, writeFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'

import {splitHostPort} from '../config/parse.js'
import {toMooncakeError} from '../errors.js'
import {etcdClientOptions} from '../etcd-options.js'
import {PROTOCOL_VERSION, type SegmentInfo, type ServiceReadyResult} from '../master/api.js'
import type {HealthDocument} from '../metrics/http-routes.js'
import {httpAddressFor} from '../top/source.js'
import {probeGet, type ProbeTls} from './http-probe.js'
import {formatBytes, formatDuration} from '../units.js'

export interface Check {
  name: string
  ok: boolean
  detail: string
  /** What to do about it; empty when ok. */
  fix: string
}

export interface DoctorOptions {
  /** Master gRPC address (HOST:PORT); with `etcd`, the leader found there wins. */
  master: string
  /** Master HTTP address; @default the master host, port 9003 */
  http?: string
  etcd?: string[]
  clusterId: string
  token?: string
  /**
   * TLS towards a master started with --tls-cert (PEM contents, as connectMaster takes them): its
   * gRPC and HTTP ports are probed over TLS, verified with `ca`, presenting `cert`/`key` when it
   * requires client certificates. @default undefined (plaintext)
   */
  tls?: ProbeTls
  /** This build's version (compared with the master's). */
  version: string
  /** Bound of each network probe. @default 2000 */
  probeTimeoutMs?: number
  /** Clock skew above this fails. @default 500 */
  maxSkewMs?: number
  /** Directory whose writability the shared-memory check tests. @default '/dev/shm' */
  shmDir?: string
  /** Replaces the native build check (tests). */
  loadNative?: () => {abiVersion(): number}
}

const ok = (name: string, detail: string): Check => ({name, ok: true, detail, fix: ''})
const fail = (name: string, detail: string, fix: string): Check => ({name, ok: false, detail, fix})

function message(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e?.code && !String(e.message).includes(e.code) ? `${e.code}: ${e.message}` : String(e?.message ?? err)
}

/** TCP connect to `host:port` within `timeoutMs`; resolves with the time it took or rejects. */
export function tcpProbe(endpoint: string, timeoutMs: number): Promise<number> {
  const address = splitHostPort(endpoint)
  if (!address) return Promise.reject(new Error(`not a HOST:PORT: ${endpoint}`))
  const host = address.host.replace(/^\[|\]$/g, '')
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const socket = net.connect({host, port: address.port})
    const timer = setTimeout(() => {
      socket.destroy()
      reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), {code: 'ETIMEDOUT'}))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(performance.now() - t0)
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

// --- local checks ---------------------------------------------------------------------------------

function checkNode(): Check {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
  if (major > 20 || (major === 20 && minor >= 17)) return ok('node', `Node.js ${process.version}`)
  return fail('node', `Node.js ${process.version} is older than 20.17`, 'install Node.js 20.17 or newer (e.g. from nodejs.org or your distribution\'s nodejs 20 package)')
}

async function checkNative(load?: () => {abiVersion(): number}): Promise<Check> {
  try {
    const binding = load ? load() : (await import('../transfer/native.js')).loadNative()
    return ok('native', `transfer engine loaded (ABI ${binding.abiVersion()})`)
  } catch (err) {
    const text = message(err)
    // loadNative's message ends with how to rebuild; split it into detail and fix.
    const at = text.indexOf('Rebuild')
    return fail('native', at > 0 ? text.slice(0, at).trim() : text, at > 0 ? text.slice(at) : 'rebuild the native engine: npm rebuild (needs python3, make, g++)')
  }
}

async function checkShm(dir = '/dev/shm'): Promise<Check> {
  const file = path.join(dir, `.mooncake-doctor-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await writeFile(file, 'x', {mode: 0o600})
    await unlink(file)
  } catch (err) {
    return fail(
      'shm',
      `${dir} is not writable (${message(err)})`,
      `segments live in shared memory under ${dir}: mount a writable tmpfs there (containers: --shm-size=SIZE, or --ipc=host)`,
    )
  }
  try {
    const s = await statfs(dir)
    return ok('shm', `${dir} writable, ${formatBytes(s.bavail * s.bsize)} free`)
  } catch {
    return ok('shm', `${dir} writable`)
  }
}

// --- the master ---------------------------------------------------------------------------------

interface MasterProbe {
  ready?: ServiceReadyResult
  segments?: SegmentInfo[]
  error?: unknown
}

async function probeMaster(address: string, token: string | undefined, tls: ProbeTls | undefined, timeoutMs: number): Promise<MasterProbe> {
  let client: {serviceReady(): Promise<ServiceReadyResult>; getAllSegments(): Promise<SegmentInfo[]>; close(): void} | undefined
  try {
    const {connectMaster} = await import('../client/master-client.js')
    client = await connectMaster({address, token, tls, timeoutMs, connectTimeoutMs: timeoutMs, retry: false})
    const ready = await client.serviceReady()
    const segments = await client.getAllSegments()
    return {ready, segments}
  } catch (err) {
    return {error: err}
  } finally {
    client?.close()
  }
}

function masterChecks(address: string, probe: MasterProbe, version: string, http: string): Check[] {
  if (probe.error !== undefined || probe.ready === undefined) {
    const err = toMooncakeError(probe.error, 'UNAVAILABLE')
    const fix =
      err.code === 'UNAUTHENTICATED'
        ? 'set MOONCAKE_TOKEN (or MOONCAKE_TOKEN_FILE) to the cluster token the master was started with; if it was started with --tls-ca, pass a client certificate it trusts (--tls-cert / --tls-key)'
        : `start a master (mooncake master) or point --master / MOONCAKE_MASTER at it; if it serves TLS, pass --tls-ca (and --tls-cert / --tls-key when it requires client certificates) (HTTP port ${http} is checked separately)`
    return [fail('master', `${address}: ${err.code}: ${err.message}`, fix)]
  }
  const r = probe.ready
  const checks = [ok('master', `${address} answers (view ${r.viewVersion})`)]
  if (r.version === version && r.protocolVersion === PROTOCOL_VERSION) {
    checks.push(ok('version', `master and this client both run ${version} (protocol ${PROTOCOL_VERSION})`))
  } else if (r.protocolVersion !== PROTOCOL_VERSION) {
    checks.push(
      fail('version', `master speaks protocol ${r.protocolVersion} (version ${r.version}), this client ${PROTOCOL_VERSION} (version ${version})`, 'install the same mooncake version on the master and the clients'),
    )
  } else {
    checks.push(
      fail('version', `master runs ${r.version}, this client ${version} (same protocol ${PROTOCOL_VERSION})`, 'upgrade so the master and the clients run the same mooncake version'),
    )
  }
  return checks
}

async function segmentChecks(segments: SegmentInfo[], timeoutMs: number): Promise<Check[]> {
  if (segments.length === 0) {
    return [fail('segments', 'no segment is mounted: puts fail with NO_AVAILABLE_HANDLE', 'contribute memory: mooncake segment mount --size 1GiB (or run mooncake up)')]
  }
  return Promise.all(
    segments.map(async (s): Promise<Check> => {
      const name = `segment ${s.name}`
      if (s.endpoints.length === 0) return fail(name, 'the segment has no data endpoint', `remount it from its owner, or unmount it: mooncake segment unmount ${s.name}`)
      const results = await Promise.all(
        s.endpoints.map((e) =>
          tcpProbe(e, timeoutMs).then(
            (ms) => ({e, ms}),
            (err: unknown) => ({e, err}),
          ),
        ),
      )
      const bad = results.filter((r): r is {e: string; err: unknown} => 'err' in r)
      if (bad.length > 0) {
        return fail(
          name,
          `data port ${bad.map((b) => `${b.e} (${message(b.err)})`).join(', ')} not reachable; status ${s.status}`,
          `the owner of segment ${s.name} at ${bad.map((b) => b.e).join(', ')} is down or firewalled: restart it (mooncake segment mount) or unmount it (mooncake segment unmount ${s.name}); the master drops it by itself after the client TTL`,
        )
      }
      const times = results.map((r) => ('ms' in r ? `${r.e} in ${r.ms.toFixed(1)} ms` : r.e))
      return ok(name, `data port ${times.join(', ')}; ${formatBytes(s.used)} / ${formatBytes(s.capacity)} used; status ${s.status}`)
    }),
  )
}

/** The master's HTTP port and its clock against ours (RTT-corrected: accurate to half the round trip). */
async function httpChecks(http: string, tls: ProbeTls | undefined, timeoutMs: number, maxSkewMs: number): Promise<Check[]> {
  const t0 = Date.now()
  let health: HealthDocument
  let date: string | undefined
  try {
    const res = await probeGet(http, '/health', timeoutMs, tls)
    if (res.status !== 200) throw new Error(`/health answered ${res.status}${errorCodeOf(res.body)}`)
    health = JSON.parse(res.body) as HealthDocument
    date = typeof res.headers.date === 'string' ? res.headers.date : undefined
  } catch (err) {
    return [
      fail(
        'master-http',
        `${http}: ${message(err)}`,
        `start the master with an HTTP port (--metrics-port, default 9003), or pass --http HOST:PORT (mooncake top, Prometheus and the clock check use it); a master started with --tls-cert serves it over https: pass --tls-ca (and --tls-cert / --tls-key if it requires client certificates)`,
      ),
    ]
  }
  const t1 = Date.now()
  const checks = [ok('master-http', `${http} /health: ${health.status}, role ${health.role}, ready ${health.ready}, up ${formatDuration((health.uptime ?? 0) * 1000)}`)]
  const theirs = typeof health.time === 'number' ? health.time : date ? Date.parse(date) + 500 : NaN
  if (!Number.isFinite(theirs)) return checks
  const skew = theirs - (t0 + t1) / 2
  const precision = typeof health.time === 'number' ? (t1 - t0) / 2 : 500 + (t1 - t0) / 2
  const what = `master clock ${skew >= 0 ? 'ahead of' : 'behind'} ours by ${Math.abs(Math.round(skew))} ms (± ${Math.ceil(precision)} ms)`
  if (Math.abs(skew) - precision > maxSkewMs) {
    checks.push(fail('clock', what, `synchronise the clocks of this host and the master (chrony or systemd-timesyncd); leases and client TTLs assume skew well under ${maxSkewMs} ms`))
  } else checks.push(ok('clock', what))
  return checks
}

// --- etcd -----------------------------------------------------------------------------------------

async function etcdChecks(endpoints: string[], clusterId: string, timeoutMs: number): Promise<{checks: Check[]; leader?: string}> {
  const {haKeys, connectEtcd, getKey} = await import('../master/ha/etcd.js')
  const {parseEndpoints} = await import('../etcd-endpoints.js')
  const urls = parseEndpoints(endpoints)
  // The same TLS as the etcd client (--etcd-ca / --etcd-cert / --etcd-key): https:// endpoints,
  // or any endpoint once etcd TLS is configured (etcd3 then dials TLS whatever the scheme says).
  const credentials = etcdClientOptions().credentials
  const checks = await Promise.all(
    urls.map(async (url): Promise<Check> => {
      const name = `etcd ${url.replace(/^https?:\/\//, '')}`
      const tls = credentials !== undefined || url.startsWith('https://') ? {ca: credentials?.rootCertificate, cert: credentials?.certChain, key: credentials?.privateKey} : undefined
      try {
        const res = await probeGet(url.replace(/^https?:\/\//, '').replace(/\/.*$/, ''), '/health', timeoutMs, tls)
        const body = JSON.parse(res.body) as {health?: string | boolean; reason?: string}
        if (res.status === 200 && String(body.health) === 'true') return ok(name, 'healthy')
        return fail(name, `unhealthy (${res.status} ${res.body.trim()})`, 'check the etcd member (etcdctl endpoint health; its logs); a cluster needs a quorum of healthy members')
      } catch (err) {
        return fail(
          name,
          `not reachable (${message(err)})`,
          'start etcd or fix --etcd / MOONCAKE_ETCD (comma-separated HOST:PORT of the client URLs); for an etcd serving TLS use https:// endpoints and --etcd-ca (and --etcd-cert / --etcd-key when it requires client certificates)',
        )
      }
    }),
  )
  // Read through healthy members only: the client does not fail over from a dead one by itself.
  const healthy = urls.filter((_, i) => checks[i]!.ok)
  if (healthy.length === 0) return {checks}
  const key = haKeys(clusterId).leader
  let etcd: Awaited<ReturnType<typeof connectEtcd>> | undefined
  try {
    etcd = await connectEtcd(healthy, timeoutMs)
    const kv = await getKey(etcd, key)
    if (kv === undefined) {
      checks.push(fail('etcd leader key', `${key} is absent: no master leads cluster ${clusterId}`, `start a master with --etcd ${endpoints.join(',')} --cluster-id ${clusterId}, or fix --cluster-id`))
      return {checks}
    }
    const leader = kv.value.toString('utf8')
    checks.push(ok('etcd leader key', `${key} = ${leader}`))
    return {checks, leader}
  } catch (err) {
    checks.push(fail('etcd leader key', `cannot read ${key} (${message(err)})`, 'check etcd health and permissions for the mooncake/ prefix'))
    return {checks}
  } finally {
    etcd?.close()
  }
}

// --- all ----------------------------------------------------------------------------------------

/** Runs every check; local ones, etcd, then the master and its segments. Never throws. */
export async function runDoctor(o: DoctorOptions): Promise<Check[]> {
  const timeoutMs = o.probeTimeoutMs ?? 2_000
  const local = Promise.all([Promise.resolve(checkNode()), checkNative(o.loadNative), checkShm(o.shmDir)])
  const checks: Check[] = []
  let master = o.master
  if (o.etcd !== undefined && o.etcd.length > 0) {
    try {
      const e = await etcdChecks(o.etcd, o.clusterId, timeoutMs)
      checks.push(...e.checks)
      if (e.leader) master = e.leader
    } catch (err) {
      checks.push(fail('etcd', message(err), 'fix --etcd / MOONCAKE_ETCD'))
    }
  }
  const http = httpAddressFor(master, o.http)
  const [probe, httpResult] = await Promise.all([probeMaster(master, o.token, o.tls, timeoutMs), httpChecks(http, o.tls, timeoutMs, o.maxSkewMs ?? 500)])
  checks.push(...masterChecks(master, probe, o.version, http))
  checks.push(...httpResult)
  if (probe.segments !== undefined) checks.push(...(await segmentChecks(probe.segments, Math.min(timeoutMs, 1_000))))
  checks.push(...(await local))
  return checks
}

/** ` (CODE)` of a JSON error answer `{"error":{"code"}}`, else nothing. */
function errorCodeOf(body: string): string {
  try {
    const code = (JSON.parse(body) as {error?: {code?: unknown}}).error?.code
    return typeof code === 'string' ? ` (${code})` : ''
  } catch {
    return ''
  }
}

/** `ok    name    detail` / `FAIL  name    detail  -> fix: ...`, one line per check. */
export function formatCheck(c: Check, nameWidth = 16): string {
  const head = `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(nameWidth)}  ${c.detail}`
  return c.ok ? head : `${head}  -> fix: ${c.fix}`
}
