import os from 'node:os'
import path from 'node:path'

import {MooncakeError} from '../errors.js'
import {parseDuration, parseSize} from '../units.js'
import type {SettingKind, SettingSpec} from './settings.js'

/** What each kind resolves to. */
export type KindValue<K extends SettingKind> = K extends 'duration' | 'size' | 'port' | 'ratio'
  ? number
  : K extends 'boolean'
    ? boolean
    : K extends 'endpoints'
      ? string[]
      : string

/** A raw value as flags, environment and config files hand it over. */
export type RawValue = string | number | boolean | unknown[] | null | Record<string, unknown>

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])

function usage(source: string, message: string): MooncakeError {
  return new MooncakeError('USAGE', `${source}: ${message}`)
}

function describe(raw: RawValue): string {
  return typeof raw === 'string' ? JSON.stringify(raw) : JSON.stringify(raw) ?? String(raw)
}

/** `~` and `~/x` are the home directory, as a shell would expand them. */
export function expandHome(file: string, homeDir: string = os.homedir()): string {
  if (file === '~') return homeDir
  if (file.startsWith('~/')) return path.join(homeDir, file.slice(2))
  return file
}

/** Splits HOST:PORT, accepting `[v6]:port`; returns undefined for a malformed address. */
export function splitHostPort(address: string): {host: string; port: number} | undefined {
  const match = /^(\[[^\]]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(address)
  if (!match) return undefined
  const port = Number(match[2])
  return port <= 65535 ? {host: match[1], port} : undefined
}

function parsePort(raw: RawValue, source: string): number {
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : ''
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw usage(source, `bad port ${describe(raw)}: expected 0 to 65535 (0 picks a free port)`)
  }
  return Number(text)
}

function parseAddress(raw: RawValue, source: string, spec: SettingSpec): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw usage(source, `bad address ${describe(raw)}: expected HOST:PORT`)
  const text = raw.trim()
  if (splitHostPort(text)) return text
  // A bare host is completed with the default port, as redis-cli -h does.
  const fallback = typeof spec.default === 'string' ? splitHostPort(spec.default)?.port : undefined
  if (fallback !== undefined && /^(\[[^\]]+\]|[^:[\]\s/]+)$/.test(text)) return `${text}:${fallback}`
  throw usage(source, `bad address ${describe(raw)}: expected HOST:PORT, e.g. 127.0.0.1:50051`)
}

function parseEndpoints(raw: RawValue, source: string): string[] {
  const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined
  if (!items) throw usage(source, `bad endpoints ${describe(raw)}: expected a comma-separated list of HOST:PORT`)
  const endpoints = items.map((item) => (typeof item === 'string' ? item.trim() : ''))
  if (endpoints.length === 0 || endpoints.some((e) => e === '' || /\s/.test(e))) {
    throw usage(source, `bad endpoints ${describe(raw)}: expected a comma-separated list of HOST:PORT`)
  }
  return endpoints
}

function parseBoolean(raw: RawValue, source: string): boolean {
  if (typeof raw === 'boolean') return raw
  const text = typeof raw === 'string' || typeof raw === 'number' ? String(raw).trim().toLowerCase() : ''
  if (TRUE.has(text)) return true
  if (FALSE.has(text)) return false
  throw usage(source, `bad boolean ${describe(raw)}: expected true or false`)
}

function parseRatio(raw: RawValue, source: string): number {
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw usage(source, `bad ratio ${describe(raw)}: expected a number from 0 to 1, e.g. 0.95`)
  }
  return value
}

function viaGrammar<T>(parse: (input: string | number) => T, raw: RawValue, source: string, what: string): T {
  if (typeof raw !== 'string' && typeof raw !== 'number') throw usage(source, `bad ${what} ${describe(raw)}`)
  try {
    return parse(raw)
  } catch (err) {
    throw usage(source, err instanceof Error ? err.message : String(err))
  }
}

/**
 * Parses one raw value of a setting. `source` names where it came from (`--lease-ttl`,
 * `MOONCAKE_LEASE_TTL`, `~/.config/mooncake/config.yaml: profiles.prod.leaseTtl`) so a bad value
 * tells the user exactly what to fix.
 */
export function parseSetting<S extends SettingSpec>(
  spec: S,
  raw: RawValue,
  source: string,
  homeDir?: string,
): KindValue<S['kind']> {
  return parseKind(spec, raw, source, homeDir) as KindValue<S['kind']>
}

function parseKind(spec: SettingSpec, raw: RawValue, source: string, homeDir?: string): unknown {
  switch (spec.kind) {
    case 'duration':
      return viaGrammar(parseDuration, raw, source, 'duration')
    case 'size':
      return viaGrammar(parseSize, raw, source, 'size')
    case 'port':
      return parsePort(raw, source)
    case 'ratio':
      return parseRatio(raw, source)
    case 'boolean':
      return parseBoolean(raw, source)
    case 'endpoints':
      return parseEndpoints(raw, source)
    case 'address':
      return parseAddress(raw, source, spec)
    case 'choice': {
      const text = typeof raw === 'string' ? raw.trim().toLowerCase() : undefined
      if (text === undefined || !spec.options?.includes(text)) {
        throw usage(source, `bad value ${describe(raw)}: expected one of ${spec.options?.join(', ')}`)
      }
      return text
    }
    case 'path':
    case 'string': {
      const text = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' ? String(raw) : undefined
      if (text === undefined || text === '') throw usage(source, `bad value ${describe(raw)}: expected a non-empty string`)
      return spec.kind === 'path' ? expandHome(text, homeDir) : text
    }
  }
}
