/**
 * The data model of `mooncake top`, free of rendering: samples of the master's HTTP endpoints
 * become snapshots (SPEC's `--json` shape), rates come from counter deltas, and table rows,
 * bars, sparklines and the `--stat` lines are formatted here. The ink components only lay
 * these strings out.
 */
import type {HealthDocument, SegmentsDocument} from '../metrics/http-routes.js'
import type {MetricSet} from '../metrics/parse.js'
import {formatBytes, formatDuration} from '../units.js'

/** One poll of the master: /health, /get_all_segments and /metrics, and when (local Unix ms). */
export interface TopSample {
  at: number
  health: HealthDocument
  segments: SegmentsDocument
  metrics: MetricSet
}

/** Cumulative counters read from /metrics (batch items count as operations). */
export interface Counters {
  put: number
  putFailed: number
  get: number
  getFailed: number
  remove: number
  removeFailed: number
  evictions: number
  evictedKeys: number
  evictedBytes: number
}

/** Per-second rates over the last interval (0 before the second sample). */
export type Rates = Counters

export interface SegmentRow {
  name: string
  endpoint: string
  capacity: number
  used: number
  status: string
  /** Milliseconds since the owner's last ping, at the document's `now`. */
  lastPingMs: number
}

/** What `top --once --json` prints (SPEC): exactly these keys. */
export interface TopSnapshot {
  master: string
  role: string
  capacity: number
  used: number
  keys: number
  softPinnedKeys: number
  clients: number
  segments: SegmentRow[]
  rates: Rates
}

const ZERO: Counters = {put: 0, putFailed: 0, get: 0, getFailed: 0, remove: 0, removeFailed: 0, evictions: 0, evictedKeys: 0, evictedBytes: 0}

export function readCounters(m: MetricSet): Counters {
  const v = (name: string) => m.sum(name)
  return {
    put: v('master_put_start_requests_total') + v('master_batch_put_start_items_total') + v('master_upsert_start_requests_total'),
    putFailed: v('master_put_start_failures_total') + v('master_batch_put_start_failed_items_total') + v('master_upsert_start_failures_total'),
    get:
      v('master_get_replica_list_requests_total') +
      v('master_batch_get_replica_list_items_total') +
      v('master_get_replica_list_by_regex_requests_total'),
    getFailed:
      v('master_get_replica_list_failures_total') +
      v('master_batch_get_replica_list_failed_items_total') +
      v('master_get_replica_list_by_regex_failures_total'),
    remove:
      v('master_remove_requests_total') +
      v('master_batch_remove_items_total') +
      v('master_remove_by_regex_requests_total') +
      v('master_remove_all_requests_total'),
    removeFailed:
      v('master_remove_failures_total') +
      v('master_batch_remove_failed_items_total') +
      v('master_remove_by_regex_failures_total') +
      v('master_remove_all_failures_total'),
    evictions: v('master_successful_evictions_total'),
    evictedKeys: v('master_evicted_key_count'),
    evictedBytes: v('master_evicted_size_bytes'),
  }
}

/** Per-second rates between two counter readings; a counter that went down (master restart) counts from 0. */
export function computeRates(prev: Counters | undefined, cur: Counters, seconds: number): Rates {
  if (prev === undefined || !(seconds > 0)) return {...ZERO}
  const out = {...ZERO}
  for (const k of Object.keys(ZERO) as (keyof Counters)[]) {
    const delta = cur[k] >= prev[k] ? cur[k] - prev[k] : cur[k]
    out[k] = delta / seconds
  }
  return out
}

/** One row per segment (top's /get_all_segments document, or `segment ls`'s GetAllSegments answer at `now`). */
export function segmentRows(doc: Pick<SegmentsDocument, 'now' | 'segments'>): SegmentRow[] {
  return doc.segments.map((s) => ({
    name: s.name,
    endpoint: s.endpoints[0] ?? '',
    capacity: s.capacity,
    used: s.used,
    status: s.status,
    lastPingMs: Math.max(0, doc.now - s.lastPingAt),
  }))
}

/** How many past rates the sparklines keep. */
const HISTORY = 40

/**
 * Follows a master across polls: the latest sample, rates from counter deltas and a short
 * history of them for the sparklines.
 */
export class TopModel {
  private prev: {at: number; counters: Counters} | undefined
  latest: TopSample | undefined
  rates: Rates = {...ZERO}
  readonly history: {put: number[]; get: number[]; remove: number[]; evictions: number[]} = {put: [], get: [], remove: [], evictions: []}
  /** Polls so far. */
  samples = 0

  constructor(readonly master: string) {}

  update(sample: TopSample): void {
    const counters = readCounters(sample.metrics)
    if (this.prev !== undefined) {
      this.rates = computeRates(this.prev.counters, counters, (sample.at - this.prev.at) / 1000)
      push(this.history.put, this.rates.put)
      push(this.history.get, this.rates.get)
      push(this.history.remove, this.rates.remove)
      push(this.history.evictions, this.rates.evictedKeys)
    }
    this.prev = {at: sample.at, counters}
    this.latest = sample
    this.samples += 1
  }

  /** Whether rates are known (two samples or more). */
  get hasRates(): boolean {
    return this.samples >= 2
  }

  snapshot(): TopSnapshot {
    const s = this.latest
    if (s === undefined) throw new Error('no sample yet')
    const m = s.metrics
    return {
      master: s.health.leader ?? this.master,
      role: s.health.role,
      capacity: m.sum('master_total_capacity_bytes'),
      used: m.sum('master_allocated_bytes'),
      keys: m.sum('master_key_count'),
      softPinnedKeys: m.sum('master_soft_pin_key_count'),
      clients: m.sum('master_active_clients'),
      segments: segmentRows(s.segments),
      rates: {...this.rates},
    }
  }
}

function push(list: number[], v: number): void {
  list.push(v)
  if (list.length > HISTORY) list.shift()
}

// --- formatting ---------------------------------------------------------------------------------

/** `[████░░░░]` of `width` cells (brackets not included). */
export function bar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0
  const full = Math.round(f * width)
  return '█'.repeat(full) + '░'.repeat(Math.max(0, width - full))
}

const SPARKS = '▁▂▃▄▅▆▇█'

/** The last `width` values as a sparkline, scaled to their maximum (all-zero is a flat line). */
export function sparkline(values: number[], width: number): string {
  const tail = values.slice(-width)
  const max = Math.max(0, ...tail)
  const line = tail.map((v) => (max <= 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.round((v / max) * 7))])).join('')
  return line.padStart(width, ' ')
}

/** 0, 7, 12.5, 950, 4.1k, 18.7k, 1.2M. */
export function formatRate(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0'
  if (n < 10) return n.toFixed(n < 1 ? 2 : 1).replace(/\.?0+$/, '') || '0'
  if (n < 1000) return String(Math.round(n))
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`
  return `${(n / 1e6).toFixed(1)}M`
}

/** Failure share of an op over the interval, e.g. `0.2%`, `-` when nothing ran. */
export function failPercent(total: number, failed: number): string {
  if (!(total > 0)) return '-'
  return `${((100 * failed) / total).toFixed(1)}%`
}

export function percent(used: number, capacity: number): string {
  return capacity > 0 ? `${((100 * used) / capacity).toFixed(1)}%` : '-'
}

/** Seconds of uptime as 45s, 3m12s, 2h5m. */
export function formatUptime(seconds: number): string {
  return formatDuration(Math.max(0, seconds) * 1000)
}

export type SortField = 'name' | 'used' | 'size' | 'ping'
export const SORT_FIELDS: readonly SortField[] = ['name', 'used', 'size', 'ping']

export interface RowOptions {
  sort?: SortField
  reverse?: boolean
  /** Case-insensitive substring of name, endpoint or status. */
  filter?: string
  /** The master's client TTL, for the last-ping warning. @default 10_000 */
  clientTtlMs?: number
}

/** 'ok'; 'warn' past half the client TTL; 'crit' past 80 % (the owner is about to be declared dead). */
export type PingLevel = 'ok' | 'warn' | 'crit'

export function pingLevel(lastPingMs: number, clientTtlMs: number): PingLevel {
  if (lastPingMs >= 0.8 * clientTtlMs) return 'crit'
  if (lastPingMs >= 0.5 * clientTtlMs) return 'warn'
  return 'ok'
}

export interface FormattedRow {
  name: string
  endpoint: string
  size: string
  usedBar: string
  usedPercent: string
  status: string
  lastPing: string
  level: PingLevel
  row: SegmentRow
}

/** Filtered, sorted and formatted segment rows; `barWidth` cells for the used bar. */
export function formatRows(rows: SegmentRow[], options: RowOptions = {}, barWidth = 10): FormattedRow[] {
  const ttl = options.clientTtlMs ?? 10_000
  const needle = options.filter?.toLowerCase() ?? ''
  const kept = needle === '' ? [...rows] : rows.filter((r) => `${r.name}\n${r.endpoint}\n${r.status}`.toLowerCase().includes(needle))
  const ratio = (r: SegmentRow) => (r.capacity > 0 ? r.used / r.capacity : 0)
  const by: Record<SortField, (a: SegmentRow, b: SegmentRow) => number> = {
    name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    used: (a, b) => ratio(b) - ratio(a),
    size: (a, b) => b.capacity - a.capacity,
    ping: (a, b) => b.lastPingMs - a.lastPingMs,
  }
  const cmp = by[options.sort ?? 'name']
  kept.sort((a, b) => cmp(a, b) || by.name(a, b))
  if (options.reverse) kept.reverse()
  return kept.map((r) => {
    const level = pingLevel(r.lastPingMs, ttl)
    return {
      name: r.name,
      endpoint: r.endpoint,
      size: formatBytes(r.capacity),
      usedBar: bar(ratio(r), barWidth),
      usedPercent: percent(r.used, r.capacity),
      status: r.status,
      lastPing: `${(r.lastPingMs / 1000).toFixed(1)}s${level === 'ok' ? '' : ` ! ttl ${formatDuration(ttl)}`}`,
      level,
      row: r,
    }
  })
}

// --- non-terminal output (redis-cli --stat style) ----------------------------------------------

const STAT_COLUMNS: Array<[string, number]> = [
  ['keys', 10],
  ['used', 11],
  ['capacity', 11],
  ['mem%', 6],
  ['clients', 7],
  ['segments', 8],
  ['put/s', 8],
  ['get/s', 8],
  ['rm/s', 8],
  ['fail/s', 7],
  ['evict/s', 7],
]

function statRow(cells: string[]): string {
  return cells
    .map((c, i) => c.padStart(STAT_COLUMNS[i]![1]))
    .join(' ')
    .trimEnd()
}

export function statHeader(): string {
  return statRow(STAT_COLUMNS.map(([h]) => h))
}

/** One line per interval when stdout is not a terminal; rates show `-` until two samples exist. */
export function statLine(s: TopSnapshot, hasRates = true): string {
  const r = s.rates
  const rate = (n: number) => (hasRates ? formatRate(n) : '-')
  return statRow([
    String(s.keys),
    formatBytes(s.used),
    formatBytes(s.capacity),
    percent(s.used, s.capacity),
    String(s.clients),
    String(s.segments.length),
    rate(r.put),
    rate(r.get),
    rate(r.remove),
    rate(r.putFailed + r.getFailed + r.removeFailed),
    rate(r.evictedKeys),
  ])
}
