/**
 * State changes of the master, as a journal or replication log would record them (issue 5).
 * `objectCommitted` carries the whole committed state of a key; a later one for the same key
 * replaces the earlier (upsert, eviction to disk-only). Removals of objects caused by an unmount
 * are reported as `objectRemoved` too.
 */
import type {SegmentDescriptor} from './api.js'

export interface CommittedReplica {
  id: number
  segment: string
  offset: number
  length: number
}

export type Mutation =
  | {
      type: 'objectCommitted'
      key: string
      size: number
      version: number
      checksum?: number
      replicas: CommittedReplica[]
      /** Id of a COMPLETE disk replica, if any. */
      diskReplicaId?: number
      softPinExpiresAt: number | null
    }
  | {type: 'objectRemoved'; key: string}
  | {type: 'segmentMounted'; clientId: string; segment: SegmentDescriptor}
  | {type: 'segmentUnmounted'; name: string; id: string; clientId: string; reason: 'owner' | 'operator' | 'expired'}
