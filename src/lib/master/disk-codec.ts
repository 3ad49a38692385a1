/**
 * Wire shapes of the disk tier's Ping fields (PingRequest.disk_results, PingResponse.disk_tasks),
 * kept beside grpc-codec.ts so the disk tier's additions stay in one place.
 */
import {isErrorCodeName} from '../errors.js'
import type {DiskTask, DiskTaskResult} from './api.js'
import type * as w from '../proto/generated/index.js'

/** At most this many results are accepted per Ping (a larger list is cut; the owner resends nothing, the rest time out). */
export const MAX_DISK_RESULTS = 10_000

export function encodeDiskTask(t: DiskTask): w.DiskTask {
  const out: w.DiskTask = {key: t.key, version: t.version, segment: t.segment, offset: t.offset, length: t.length, path: t.path}
  if (t.checksum !== undefined) out.checksum = t.checksum
  return out
}

export function decodeDiskTask(t: w.DiskTask__Output): DiskTask {
  const out: DiskTask = {key: t.key, version: t.version, segment: t.segment, offset: t.offset, length: t.length, path: t.path}
  if (t.checksum !== undefined && t.checksum !== null) out.checksum = t.checksum
  return out
}

export function encodeDiskResult(r: DiskTaskResult): w.DiskTaskResult {
  const out: w.DiskTaskResult = {key: r.key, version: r.version, ok: r.ok, code: r.code ?? '', message: r.message ?? ''}
  if (r.checksum !== undefined) out.checksum = r.checksum
  return out
}

export function decodeDiskResult(r: w.DiskTaskResult__Output): DiskTaskResult {
  const out: DiskTaskResult = {key: r.key, version: r.version, ok: r.ok}
  if (r.checksum !== undefined && r.checksum !== null) out.checksum = r.checksum
  if (!r.ok) {
    out.code = isErrorCodeName(r.code) ? r.code : 'FILE_WRITE_FAIL'
    out.message = r.message
  }
  return out
}

export function decodeDiskResults(list: w.DiskTaskResult__Output[] | undefined): DiskTaskResult[] | undefined {
  if (list === undefined || list === null || list.length === 0) return undefined
  return list.slice(0, MAX_DISK_RESULTS).map(decodeDiskResult)
}
