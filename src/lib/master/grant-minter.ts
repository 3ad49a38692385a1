import {encodeGrant, mintGrant} from '../transfer/grant.js'
import type {TransferOp} from '../transfer/types.js'
import type {GrantMinter} from './api.js'

/**
 * Mints the opaque grant bytes the master puts in every MemoryLocation of a segment that has a
 * grant key; the owner's data server verifies them, so a client can reach only the ranges the
 * master handed out, for the operations and the time it allowed.
 */
export const grantMinter: GrantMinter = (grantKeyHex, g) => {
  const ops: TransferOp[] = g.ops === 'rw' ? ['read', 'write'] : g.ops === 'r' ? ['read'] : ['write']
  return encodeGrant(mintGrant(Buffer.from(grantKeyHex, 'hex'), {segment: g.segment, offset: g.offset, length: g.length, ops, expiresAt: g.expiresAt}))
}
