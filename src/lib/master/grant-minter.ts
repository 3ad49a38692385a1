import {checkedU64, GRANT_KEY_SIZE, mintGrantWire, OP_READ, OP_WRITE} from '../transfer/grant.js'
import {MooncakeError} from '../errors.js'
import type {GrantMinter} from './api.js'

/** Decoded grant keys by their hex form (one per mounted segment; bounded so churn cannot grow it). */
const keys = new Map<string, Buffer>()
const MAX_CACHED_KEYS = 4096

function keyOf(hex: string): Buffer {
  let key = keys.get(hex)
  if (key === undefined) {
    key = Buffer.from(hex, 'hex')
    if (key.length !== GRANT_KEY_SIZE) throw new MooncakeError('INVALID_PARAMS', `a grant key is ${GRANT_KEY_SIZE} bytes`)
    if (keys.size >= MAX_CACHED_KEYS) keys.clear()
    keys.set(hex, key)
  }
  return key
}

/**
 * Mints the opaque grant bytes the master puts in every MemoryLocation of a segment that has a
 * grant key; the owner's data server verifies them, so a client can reach only the ranges the
 * master handed out, for the operations and the time it allowed.
 */
export const grantMinter: GrantMinter = (grantKeyHex, g) => {
  const mask = g.ops === 'rw' ? OP_READ | OP_WRITE : g.ops === 'r' ? OP_READ : OP_WRITE
  return mintGrantWire(keyOf(grantKeyHex), g.segment, checkedU64('offset', g.offset), checkedU64('length', g.length), mask, checkedU64('expiresAt', g.expiresAt))
}
