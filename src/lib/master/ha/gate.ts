/**
 * The calls the gRPC layer serves when the master restored metadata (journal or failover): the
 * MasterService, plus the objects whose memory replicas wait for their owner to re-mount
 * (PendingRestore). Such an object exists (a put of its key is OBJECT_ALREADY_EXISTS) but is not
 * readable yet: a read is UNAVAILABLE (nothing was done; clients retry it within their deadline,
 * as the owner re-mounts within a ping or two); ReMountSegment (or MountSegment of the same
 * segment id by the same owner) of its segment reserves its ranges and makes it readable.
 */
import {MooncakeError} from '../../errors.js'
import {compileSearchRegex} from '../../regex-engine.js'
import type {
  GetReplicaListResult,
  ItemResult,
  MasterCalls,
  MountSegmentRequest,
  MountSegmentResult,
  PutStartRequest,
  PutStartResult,
  ReMountSegmentRequest,
  RemoveByRegexRequest,
  RemoveAllRequest,
  RemoveManyResult,
  RemoveRequest,
  UnmountSegmentRequest,
} from '../api.js'
import type {Mutation} from '../mutations.js'
import {testKey, type RegexScanChunk, type RegexScanOptions} from '../regex-scan.js'
import type {PendingRestore} from '../restore.js'
import type {MasterService} from '../service.js'

export interface GateHost {
  readonly service: MasterService
  /** Pending restore, if any (undefined or empty: every call goes straight to the service). */
  pending: PendingRestore | undefined
  /** Reports a mutation the gate makes itself (to the journal / log). */
  emit(m: Mutation): void
}

function notReady(key: string): MooncakeError {
  return new MooncakeError(
    'UNAVAILABLE',
    `key ${JSON.stringify(key)} was restored after a master restart or failover; it becomes readable when the owner of its segment re-mounts it: retry shortly`,
  )
}

function exists(key: string): MooncakeError {
  return new MooncakeError(
    'OBJECT_ALREADY_EXISTS',
    `key ${JSON.stringify(key)} exists (restored after a master restart or failover; readable once its segment owner re-mounts)`,
  )
}

/**
 * A PutStart that finds no space while restored segments wait for their owners: the space is
 * probably coming back within a ping or two, so the answer is UNAVAILABLE (nothing was done,
 * retry) rather than NO_AVAILABLE_HANDLE (the pool is full).
 */
function remounting(host: GateHost, code: string, message: string): MooncakeError | undefined {
  const pending = host.pending?.size ?? 0
  if (code !== 'NO_AVAILABLE_HANDLE' || pending === 0) return undefined
  return new MooncakeError('UNAVAILABLE', `${message}; ${pending} segment(s) restored after a master restart or failover are waiting for their owners to re-mount: retry shortly`)
}

function item<T>(fn: () => T): ItemResult<T> {
  try {
    return {ok: true, value: fn()}
  } catch (err) {
    if (err instanceof MooncakeError) return {ok: false, code: err.code, message: err.message}
    throw err
  }
}

/** Attaches the replicas of a pending segment that its owner just mounted again. */
export function attachPending(host: GateHost, name: string): void {
  const p = host.pending
  const seg = p?.take(name)
  if (seg === undefined) return
  try {
    host.service.restoreObjects(name, seg.items)
  } catch (err) {
    if (!(err instanceof MooncakeError)) throw err
    // The owner's mount was refused after all: its replicas are gone.
    host.emit({type: 'segmentUnmounted', name, id: seg.segment.id, clientId: seg.clientId, reason: 'owner'})
  }
}

/**
 * Drops pending segments whose owners did not come back in time (reason 'expired'). `stalledMs`:
 * how long this master itself could not serve since the last call (a late timer): owners could
 * not re-mount meanwhile, so the deadline moves by that much first, as client deadlines do in
 * MasterService.tick.
 */
export function expirePending(host: GateHost, now: number, stalledMs = 0): number {
  const p = host.pending
  if (p !== undefined && stalledMs > 0) p.expiresAt += stalledMs
  if (p === undefined || p.size === 0 || now < p.expiresAt) return 0
  let n = 0
  for (const name of p.names()) {
    const seg = p.take(name)!
    host.emit({type: 'segmentUnmounted', name, id: seg.segment.id, clientId: seg.clientId, reason: 'expired'})
    host.service.onNotice?.(`segment ${JSON.stringify(name)} of client ${seg.clientId} was not re-mounted in time after the restore: its ${seg.items.length} replica(s) dropped`)
    n++
  }
  return n
}

type Gated =
  | 'putStart'
  | 'batchPutStart'
  | 'upsertStart'
  | 'getReplicaList'
  | 'batchGetReplicaList'
  | 'query'
  | 'remove'
  | 'batchRemove'
  | 'removeByRegex'
  | 'removeAll'
  | 'mountSegment'
  | 'reMountSegment'
  | 'unmountSegment'
const GATED: readonly Gated[] = [
  'putStart',
  'batchPutStart',
  'upsertStart',
  'getReplicaList',
  'batchGetReplicaList',
  'query',
  'remove',
  'batchRemove',
  'removeByRegex',
  'removeAll',
  'mountSegment',
  'reMountSegment',
  'unmountSegment',
]

/**
 * Installs the gate on the service instance itself (own properties shadowing the prototype's
 * methods, the way metrics wrap `tick`), so every layer that calls the service (gRPC handlers,
 * metrics) goes through it. The service's own behaviour is unchanged while nothing is pending.
 */
export function installGate(host: GateHost): void {
  const target = host.service as unknown as Record<string, unknown>
  const svc = {} as Pick<MasterCalls, Gated>
  for (const name of GATED) (svc as Record<string, unknown>)[name] = (target[name] as (...a: unknown[]) => unknown).bind(host.service)
  const pendingOnly = (key: string): boolean => {
    const p = host.pending
    if (p === undefined || p.size === 0 || typeof key !== 'string' || !p.hasKey(key)) return false
    try {
      svc.query(key)
      return false
    } catch {
      return true
    }
  }
  const dropKey = (key: string): void => {
    if (host.pending?.dropKey(key)) host.emit({type: 'objectRemoved', key})
  }
  const active = (): boolean => host.pending !== undefined && host.pending.size > 0

  const allocating = <T>(fn: () => T): T => {
    try {
      return fn()
    } catch (err) {
      throw (err instanceof MooncakeError && remounting(host, err.code, err.message)) || err
    }
  }

  const overrides: Pick<MasterCalls, Gated> = {
    putStart(req: PutStartRequest): PutStartResult {
      if (pendingOnly(req?.key)) throw exists(req.key)
      return allocating(() => svc.putStart(req))
    },
    batchPutStart(reqs: PutStartRequest[]): ItemResult<PutStartResult>[] {
      if (!active() || !Array.isArray(reqs)) return svc.batchPutStart(reqs)
      if (!reqs.some((r) => pendingOnly(r?.key))) {
        return svc.batchPutStart(reqs).map((r) => {
          const e = r.ok ? undefined : remounting(host, r.code, r.message)
          return e === undefined ? r : {ok: false, code: e.code, message: e.message}
        })
      }
      return reqs.map((r) => item(() => overrides.putStart(r)))
    },
    upsertStart(req: PutStartRequest): PutStartResult {
      if (pendingOnly(req?.key)) dropKey(req.key)
      return allocating(() => svc.upsertStart(req))
    },
    getReplicaList(key: string): GetReplicaListResult {
      if (pendingOnly(key)) throw notReady(key)
      return svc.getReplicaList(key)
    },
    batchGetReplicaList(keys: string[]): ItemResult<GetReplicaListResult>[] {
      if (!active() || !Array.isArray(keys)) return svc.batchGetReplicaList(keys)
      return keys.map((k) => item(() => overrides.getReplicaList(k)))
    },
    query(key: string) {
      if (pendingOnly(key)) throw notReady(key)
      return svc.query(key)
    },
    remove(req: RemoveRequest): void {
      if (pendingOnly(req?.key)) return dropKey(req.key)
      return svc.remove(req)
    },
    batchRemove(keys: string[], force?: boolean): ItemResult<void>[] {
      if (!active() || !Array.isArray(keys)) return svc.batchRemove(keys, force)
      return keys.map((key) => item(() => overrides.remove({key, force})))
    },
    removeByRegex(req: RemoveByRegexRequest): RemoveManyResult {
      const res = svc.removeByRegex(req)
      if (!active()) return res
      const re = compileSearchRegex(req.regex)
      return removePending(res, (k) => re.test(k), req.dryRun === true)
    },
    removeAll(req: RemoveAllRequest): RemoveManyResult {
      const res = svc.removeAll(req)
      if (!active()) return res
      return removePending(res, () => true, req?.dryRun === true)
    },
    mountSegment(req: MountSegmentRequest): MountSegmentResult {
      const pend = active() ? host.pending!.segment(req?.segment?.name) : undefined
      if (pend === undefined) return svc.mountSegment(req)
      if (pend.segment.id !== req.segment.id || pend.clientId !== req.clientId || pend.segment.size !== req.segment.size) {
        throw new MooncakeError('SEGMENT_ALREADY_EXISTS', `segment name ${JSON.stringify(req.segment.name)} belongs to a restored segment waiting for its owner`)
      }
      const res = svc.mountSegment(req)
      attachPending(host, req.segment.name)
      return res
    },
    reMountSegment(req: ReMountSegmentRequest): void {
      if (!active() || !Array.isArray(req?.segments)) return svc.reMountSegment(req)
      const names: string[] = []
      for (const d of req.segments) {
        const pend = host.pending!.segment(d?.name)
        if (pend === undefined) continue
        // As the original: a restored segment comes back only with exactly its identity.
        if (pend.segment.id !== d.id || pend.segment.size !== d.size || pend.clientId !== req.clientId) {
          throw new MooncakeError('INVALID_PARAMS', `segment ${JSON.stringify(d.name)} was restored with another identity (id, size or owner differ)`)
        }
        names.push(d.name)
      }
      svc.reMountSegment(req)
      for (const name of names) attachPending(host, name)
    },
    unmountSegment(req: UnmountSegmentRequest): void {
      const pend = active() ? host.pending!.segment(req?.name) : undefined
      if (pend !== undefined && (req.clientId === undefined || req.clientId === pend.clientId)) {
        host.pending!.take(req.name)
        host.emit({type: 'segmentUnmounted', name: req.name, id: pend.segment.id, clientId: pend.clientId, reason: req.clientId === undefined ? 'operator' : 'owner'})
        return
      }
      return svc.unmountSegment(req)
    },
  }

  function removePending(res: RemoveManyResult, match: (key: string) => boolean, dryRun: boolean): RemoveManyResult {
    const keys = [...host.pending!.keys()].filter((k) => match(k) && pendingOnly(k))
    for (const k of keys) if (!dryRun) dropKey(k)
    return {removed: res.removed + keys.length, skipped: res.skipped, keys: [...res.keys, ...keys]}
  }

  for (const name of GATED) target[name] = overrides[name]

  // Chunked regex scans (gRPC handlers, regex-scan.ts): the last chunk of a `remove` scan also
  // removes the matching pending keys, as removeByRegex does.
  const scan = (target.regexScan as MasterService['regexScan']).bind(host.service)
  target.regexScan = (pattern: string, options: RegexScanOptions): RegexScanChunk => {
    const chunk = scan(pattern, options)
    if (!active() || options?.mode !== 'remove' || chunk.next !== undefined) return chunk
    const re = compileSearchRegex(pattern)
    const res = removePending({removed: 0, skipped: 0, keys: []}, (k) => testKey(re, k), options.dryRun === true)
    return {...chunk, keys: [...chunk.keys, ...res.keys]}
  }
}
