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
  const n = ok.length
  if (n === 0) return out
  if (req.sameNodeHostId !== undefined && req.sameNodeHostId !== '') {
    const start = Math.floor(random() * n) % n
    for (let i = 0; i < n; i++) {
      const s = ok[(start + i) % n]
      if (s.hostId === req.sameNodeHostId && tryOn(s, req.size, out)) break
    }
  }
  for (let i = 0; i < req.preferred.length && out.length < want; i++) tryOn(byName.get(req.preferred[i]), req.size, out)
  if (out.length >= want) return out
  const start = Math.floor(random() * n) % n
  for (let i = 0; i < n && out.length < want; i++) tryOn(ok[(start + i) % n], req.size, out)
  return out
}

function tryOn(s: Segment | undefined, size: number, out: Placement[]): boolean {
  if (s === undefined || s.status !== 'OK' || s.allocator === null) return false
  for (let i = 0; i < out.length; i++) if (out[i].seg === s) return false
  const handle = s.allocator.alloc(size)
  if (handle < 0) return false
  out.push({seg: s, handle})
  return true
}
