/** Pure shard layout and validation helpers of the P2P store. */
import {MooncakeError} from '../errors.js'
import type {ShardLayout} from './types.js'

export const DEFAULT_MAX_SHARD_SIZE = 64 * 2 ** 20
/** Shards are read with one engine request each: keep them within what the engine accepts. */
export const MAX_SHARD_SIZE_LIMIT = 64 * 2 ** 20
export const MIN_SHARD_SIZE = 4096
const NAME_MAX_BYTES = 1024

/**
 * Cuts every part into shards of at most maxShardSize bytes; shards never span two parts (as the
 * original). Empty parts produce no shard.
 */
export function layoutShards(sizeList: readonly number[], maxShardSize: number): ShardLayout[] {
  const shards: ShardLayout[] = []
  let offset = 0
  sizeList.forEach((size, part) => {
    for (let partOffset = 0; partOffset < size; partOffset += maxShardSize) {
      const length = Math.min(maxShardSize, size - partOffset)
      shards.push({index: shards.length, part, partOffset, offset: offset + partOffset, length})
    }
    offset += size
  })
  return shards
}

/** Whether a shard size is one a payload may have (MIN_SHARD_SIZE to MAX_SHARD_SIZE_LIMIT bytes). */
export function shardSizeInRange(maxShardSize: number): boolean {
  return Number.isSafeInteger(maxShardSize) && maxShardSize >= MIN_SHARD_SIZE && maxShardSize <= MAX_SHARD_SIZE_LIMIT
}

export function validateShardSize(maxShardSize: number): void {
  if (!shardSizeInRange(maxShardSize)) {
    throw new MooncakeError(
      'INVALID_PARAMS',
      `maxShardSize ${maxShardSize} is out of range: use ${MIN_SHARD_SIZE} bytes to ${MAX_SHARD_SIZE_LIMIT / 2 ** 20} MiB`,
    )
  }
}

export function validatePayloadName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new MooncakeError('INVALID_PARAMS', 'payload name is empty')
  if (Buffer.byteLength(name) > NAME_MAX_BYTES) {
    throw new MooncakeError('INVALID_PARAMS', `payload name is longer than ${NAME_MAX_BYTES} bytes`)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new MooncakeError('INVALID_PARAMS', 'payload name holds control characters')
}

export function validatePeerName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new MooncakeError('INVALID_PARAMS', 'peer name is empty')
  if (Buffer.byteLength(name) > 200) throw new MooncakeError('INVALID_PARAMS', 'peer name is longer than 200 bytes')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f/]/.test(name)) {
    throw new MooncakeError('INVALID_PARAMS', `peer name "${name}" holds "/" or control characters`)
  }
}

/** Refuses destinations whose sizes differ from the registered sizeList, naming both lists. */
export function checkSizes(name: string, registered: readonly number[], given: readonly number[]): void {
  const same = registered.length === given.length && registered.every((size, i) => size === given[i])
  if (!same) {
    throw new MooncakeError(
      'PAYLOAD_SIZE_MISMATCH',
      `payload "${name}" has sizes [${registered.join(', ')}] but the destinations have [${given.join(', ')}]`,
      {details: {registered: [...registered], given: [...given]}},
    )
  }
}
