import {MooncakeError} from './errors.js'

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
}

/**
 * Parses the SPEC size grammar: a bare integer is bytes; KiB/MiB/GiB/TiB are powers of 2,
 * KB/MB/GB/TB powers of 10; case-insensitive; a space allowed (`1GiB`, `4 GB`, `512mib`).
 */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input
    throw new MooncakeError('USAGE', `bad size ${input}: expected a whole number of bytes`)
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input)
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined) {
    throw new MooncakeError('USAGE', `bad size "${input}": use bytes or a unit such as 64KiB, 1GiB, 4GB`)
  }
  const bytes = Number(match[1]) * unit
  if (!Number.isSafeInteger(bytes)) {
    throw new MooncakeError('USAGE', `bad size "${input}": not a whole number of bytes, or too large`)
  }
  return bytes
}

const DURATION_UNITS: Record<string, number> = {'': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** Parses the SPEC duration grammar: `500ms`, `10s`, `30m`, `1h`; a bare number is milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return input
    throw new MooncakeError('USAGE', `bad duration ${input}`)
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*$/i.exec(input)
  if (!match) {
    throw new MooncakeError('USAGE', `bad duration "${input}": use a number with ms, s, m or h, e.g. 500ms, 10s, 30m`)
  }
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2].toLowerCase()])
}

/** Human form of a byte count with binary units, e.g. 1.5 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit]}`
}

/** Human form of milliseconds, e.g. 1.5s, 250ms, 3m12s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`
  const minutes = Math.floor(ms / 60_000)
  const seconds = Math.round((ms % 60_000) / 1000)
  return minutes < 60 ? `${minutes}m${seconds}s` : `${Math.floor(minutes / 60)}h${minutes % 60}m`
}
