/**
 * Replica placement (S5): one contiguous allocation per replica, replicas on distinct segment
 * names, best effort (as many as fit, at least one). Order of attempts: a segment on the writer's
 * host for the first replica (preferAllocInSameNode), the preferred segments in order, then a walk
 * over all OK segments from a random start (spreads load, as the original's `random` strategy).
 */
import type {Segment} from './segments.js'

export interface Placement {
  seg: Segment
  handle: number
}

export interface PlacementRequest {
  size: number
  replicaNum: number
  preferred: readonly string[]
  sameNodeHostId?: string
}

export function placeReplicas(
  ok: readonly Segment[],
  byName: ReadonlyMap<string, Segment>,
  req: PlacementRequest,
  random: () => number,
): Placement[] {
  const out: Placement[] = []
  const want = req.replicaNum
  const taken = (s: Segment): boolean => {
    for (const p of out) if (p.seg === s) return true
    return false
  }
  const tryOn = (s: Segment | undefined): boolean => {
    if (s === undefined || s.status !== 'OK' || s.allocator === null || taken(s)) return false
    const handle = s.allocator.alloc(req.size)
    if (handle < 0) return false
    out.push({seg: s, handle})
    return true
  }
  if (ok.length === 0) return out
  if (req.sameNodeHostId !== undefined && req.sameNodeHostId !== '') {
    const n = ok.length
    const start = Math.floor(random() * n) % n
    for (let i = 0; i < n && out.length === 0; i++) {
      const s = ok[(start + i) % n]
      if (s.hostId === req.sameNodeHostId) tryOn(s)
    }
  }
  for (const name of req.preferred) {
    if (out.length >= want) return out
    tryOn(byName.get(name))
  }
  if (out.length >= want) return out
  const n = ok.length
  const start = Math.floor(random() * n) % n
  for (let i = 0; i < n && out.length < want; i++) tryOn(ok[(start + i) % n])
  return out
}
