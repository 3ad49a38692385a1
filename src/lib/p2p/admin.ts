/**
 * P2P operations that need no data plane and no peer identity: listing payloads and asking the
 * peer that serves a payload to stop (through etcd control requests, acknowledged by that peer).
 * `p2p list`, `p2p unregister` and `p2p delete-replica` use this.
 */
import {MooncakeError, isErrorCodeName} from '../errors.js'
import {P2PMetadata, type ControlAck} from './metadata.js'
import {toPayloadInfo, P2P_DEFAULTS} from './store.js'
import type {HolderEntry, PayloadInfo} from './types.js'

export interface P2PAdminOptions {
  etcd: string[] | string
  clusterId?: string
}

function ackError(peer: string, ack: ControlAck): MooncakeError {
  const code = ack.code && isErrorCodeName(ack.code) ? ack.code : 'INTERNAL_ERROR'
  return new MooncakeError(code, ack.message ?? `peer "${peer}" refused the request`)
}

/** Unregisters `name`: its owner is asked to stop serving it and to drop the record. */
export async function unregisterPayload(meta: P2PMetadata, name: string, from: string, timeoutMs: number): Promise<{peer?: string}> {
  const record = await meta.getPayload(name)
  if (!record) throw new MooncakeError('PAYLOAD_NOT_FOUND', `payload "${name}" is not registered`)
  const {holders} = await meta.listHolders(name)
  const owner = holders.get(record.owner)
  if (owner && owner.payloadId === record.id) {
    const ack = await meta.request(record.owner, 'unregister', name, from, timeoutMs)
    if (!ack.ok) throw ackError(record.owner, ack)
    return {peer: record.owner}
  }
  // The owner is gone (crashed, or never came back): nothing to stop; drop the record once
  // nobody serves it any more.
  if (holders.size === 0) await meta.deletePayload(name, record.revision)
  return {}
}

/** Asks `peer` (or the only non-owner holder) to stop serving its downloaded replica. */
export async function deleteRemoteReplica(meta: P2PMetadata, name: string, peer: string | undefined, from: string, timeoutMs: number): Promise<{peer: string}> {
  const record = await meta.getPayload(name)
  const {holders} = await meta.listHolders(name)
  let target = peer
  if (target === undefined) {
    const candidates = [...holders.values()].filter((h) => !record || h.peer !== record.owner).map((h) => h.peer)
    if (candidates.length === 0) {
      if (!record) throw new MooncakeError('PAYLOAD_NOT_FOUND', `payload "${name}" is not registered`)
      throw new MooncakeError('REPLICA_NOT_FOUND', `no peer serves a downloaded replica of "${name}"`)
    }
    if (candidates.length > 1) {
      throw new MooncakeError('INVALID_PARAMS', `several peers serve a replica of "${name}" (${candidates.join(', ')}): choose one with --peer`)
    }
    target = candidates[0]
  } else if (!holders.has(target)) {
    throw new MooncakeError('REPLICA_NOT_FOUND', `peer "${target}" serves no replica of "${name}"`)
  }
  const ack = await meta.request(target, 'delete-replica', name, from, timeoutMs)
  if (!ack.ok) throw ackError(target, ack)
  return {peer: target}
}

/** A light client of the P2P metadata: list, holders, and remote unregister/delete-replica. */
export class P2PAdmin {
  private constructor(private readonly meta: P2PMetadata) {}

  static async connect(options: P2PAdminOptions): Promise<P2PAdmin> {
    return new P2PAdmin(await P2PMetadata.connect(options.etcd, options.clusterId ?? P2P_DEFAULTS.clusterId))
  }

  async list(prefix = ''): Promise<PayloadInfo[]> {
    return (await this.meta.listPayloads(prefix)).map(toPayloadInfo)
  }

  /** Live holder entries of a payload (which peers serve which shards). */
  async holders(name: string): Promise<HolderEntry[]> {
    return [...(await this.meta.listHolders(name)).holders.values()]
  }

  async unregister(name: string, options: {timeoutMs?: number} = {}): Promise<{peer?: string}> {
    return unregisterPayload(this.meta, name, `admin-${process.pid}`, options.timeoutMs ?? 30_000)
  }

  async deleteReplica(name: string, options: {peer?: string; timeoutMs?: number} = {}): Promise<{peer: string}> {
    return deleteRemoteReplica(this.meta, name, options.peer, `admin-${process.pid}`, options.timeoutMs ?? 30_000)
  }

  close(): void {
    this.meta.close()
  }
}
