/**
 * Resumable regex scans (docs/reliability.md finding 2). GetReplicaListByRegex, QueryByRegex,
 * RemoveByRegex and ListKeys with a regex test keys against a user pattern; over a large store a
 * pathological pattern costs seconds. The pure service scans in chunks
 * (`MasterService.regexScan(pattern, {cursor, budgetMs | maxKeys})`) and the gRPC handlers drive
 * it with `driveRegexScan`, yielding to the event loop between chunks and giving up at the call's
 * deadline (DEADLINE_EXCEEDED) or after REGEX_SCAN_MAX_MS.
 */
import {setImmediate as yieldToLoop} from 'node:timers/promises'

import {MooncakeError} from '../errors.js'
import type {GetReplicaListResult, ObjectInfo} from './api.js'

/**
 * A key is tested on at most its first 4096 characters (keys are at most 4096 UTF-8 bytes, so a
 * valid key is never cut): the per-key cost of the linear fallback engine stays bounded.
 */
export const REGEX_TEST_MAX_CHARS = 4096

/** How long one chunk of a scan may run before the handler yields to the event loop. */
export const REGEX_SCAN_SLICE_MS = 5

/** A scan (all its chunks) never runs longer than this, deadline or not. */
export const REGEX_SCAN_MAX_MS = 60_000

/** Tests a key against a compiled search pattern, on at most its first REGEX_TEST_MAX_CHARS characters. */
export function testKey(re: RegExp, key: string): boolean {
  return re.test(key.length > REGEX_TEST_MAX_CHARS ? key.slice(0, REGEX_TEST_MAX_CHARS) : key)
}

/**
 * What a scan does with each matching key: `replicas` grants a read lease and returns its
 * replica list (COMPLETE objects only), `query` returns its ObjectInfo, `remove` removes it
 * (skipping objects being written or, without `force`, leased; `dryRun` removes nothing).
 */
export type RegexScanMode = 'replicas' | 'query' | 'remove'

/**
 * Where a scan stopped. Opaque: hand it back unchanged to continue. It holds the compiled pattern
 * and a live iterator over the object table, so keys added or removed between chunks may or may
 * not be seen (each key is still visited at most once).
 */
export interface RegexScanCursor {
  readonly pattern: string
  readonly mode: RegexScanMode
}

export interface RegexScanOptions {
  mode: RegexScanMode
  /** From the previous chunk's `next`; absent: start a new scan. */
  cursor?: RegexScanCursor
  /** Stop this chunk after about this many milliseconds (checked after each key). */
  budgetMs?: number
  /** Stop this chunk after testing this many keys. */
  maxKeys?: number
  /** `remove`: remove leased objects too. */
  force?: boolean
  /** `remove`: report what would be removed, remove nothing. */
  dryRun?: boolean
}

export interface RegexScanChunk {
  /** Matching keys of this chunk; for `remove`, the keys removed (with dryRun: that would be). */
  keys: string[]
  /** `replicas`: the replica list of each key of `keys`, in order. */
  replicas: GetReplicaListResult[]
  /** `query`: the ObjectInfo of each key of `keys`, in order. */
  objects: ObjectInfo[]
  /** `remove`: matching objects skipped (being written, or leased without force). */
  skipped: number
  /** Keys tested in this chunk. */
  tested: number
  /** Milliseconds spent scanning so far, all chunks of this scan. */
  scanMs: number
  /** Absent when the scan is complete. */
  next?: RegexScanCursor
}

/** The part of a service the gRPC handlers need for chunked scans (MasterService implements it). */
export interface RegexScanner {
  regexScan(pattern: string, options: RegexScanOptions): RegexScanChunk
}

export function isRegexScanner(x: unknown): x is RegexScanner {
  return typeof (x as Partial<RegexScanner> | null)?.regexScan === 'function'
}

export interface DriveOptions {
  /** Absolute time (ms since the epoch) by which the scan must have ended. */
  deadline?: number
  /** The call was cancelled by its client: stop quietly. */
  cancelled?: () => boolean
  /** The server is shutting down. */
  signal?: AbortSignal
  /** @default REGEX_SCAN_SLICE_MS */
  sliceMs?: number
  /** @default REGEX_SCAN_MAX_MS */
  maxMs?: number
}

/**
 * Runs a scan to its end in chunks of `sliceMs`, yielding to the event loop between chunks so
 * other calls (and pings) are served. Throws DEADLINE_EXCEEDED when the deadline (or maxMs) comes
 * first; whatever earlier chunks did stands (for `remove`: `onChunk` has seen every removed key).
 */
export async function driveRegexScan(
  scanner: RegexScanner,
  pattern: string,
  options: Omit<RegexScanOptions, 'cursor' | 'budgetMs' | 'maxKeys'>,
  onChunk: (chunk: RegexScanChunk) => void,
  drive: DriveOptions = {},
): Promise<void> {
  const started = Date.now()
  const giveUpAt = Math.min(drive.deadline ?? Infinity, started + (drive.maxMs ?? REGEX_SCAN_MAX_MS))
  const sliceMs = drive.sliceMs ?? REGEX_SCAN_SLICE_MS
  let cursor: RegexScanCursor | undefined
  let done = 0
  for (;;) {
    const chunk = scanner.regexScan(pattern, {...options, cursor, budgetMs: sliceMs})
    onChunk(chunk)
    done += chunk.keys.length
    if (chunk.next === undefined) return
    cursor = chunk.next
    await yieldToLoop()
    if (drive.signal?.aborted) throw new MooncakeError('UNAVAILABLE', 'the master is shutting down')
    if (drive.cancelled?.()) throw new MooncakeError('DEADLINE_EXCEEDED', 'the call was cancelled')
    if (Date.now() >= giveUpAt) {
      const what = options.mode === 'remove' ? `; ${done} matching key(s) were ${options.dryRun === true ? 'found' : 'removed'} before it stopped, repeat the call to continue` : ''
      throw new MooncakeError('DEADLINE_EXCEEDED', `the regex scan did not finish within the call's deadline (${Date.now() - started} ms)${what}`)
    }
  }
}
