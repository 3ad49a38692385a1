/**
 * Plain-text renderers for human output. Deliberately dependency-free: @oclif/table pulls in
 * ink and React, which would cost every `ls` hundreds of milliseconds at start-up.
 */
import type {SegmentRow} from '../lib/top/model.js'
import {formatBytes, formatDuration} from '../lib/units.js'

export {formatBytes, formatDuration}

export interface Column<Row> {
  header: string
  get: (row: Row) => string | number
  /** Numbers read best right-aligned. @default 'left' */
  align?: 'left' | 'right'
}

/** An aligned table: a header row, two spaces between columns, no trailing blanks. */
export function renderTable<Row>(columns: Column<Row>[], rows: Row[]): string {
  const cells = rows.map((row) => columns.map((c) => String(c.get(row))))
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i].length)))
  const line = (values: string[]): string =>
    values
      .map((v, i) => (columns[i].align === 'right' ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')
}

/** "3s ago", "never": how long ago a Unix-ms time was. */
export function formatAgo(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return 'never'
  return `${formatDuration(ms)} ago`
}

/** The segment table of `segment ls` and `top --once`. */
export function segmentTable(segments: SegmentRow[]): string {
  return renderTable(
    [
      {header: 'NAME', get: (s) => s.name},
      {header: 'ENDPOINT', get: (s) => s.endpoint},
      {header: 'CAPACITY', get: (s) => formatBytes(s.capacity), align: 'right'},
      {header: 'USED', get: (s) => formatBytes(s.used), align: 'right'},
      {header: 'STATUS', get: (s) => s.status},
      {header: 'LAST PING', get: (s) => formatAgo(s.lastPingMs)},
    ],
    segments,
  )
}

/** One compact JSON document per line: what scripts read from stdout with --json. */
export function jsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`
}
