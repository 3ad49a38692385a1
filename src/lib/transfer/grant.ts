/**
 * Access grants (TypeScript and node:crypto; the master's hot minting path uses the native
 * HMAC when the addon is built): what a segment owner's server requires with
 * every request when the segment has a grant key. Whoever holds the key (the owner, which
 * hands it to the master) mints grants; peers only carry them. The bytes signed here are
 * exactly the ones native/grant.cc verifies (see docs/transfer-protocol.md, "Grants").
 */
import {createHmac} from 'node:crypto'

import {MooncakeError} from '../errors.js'
import {loadNative, type NativeBinding} from './native.js'

export type TransferOp = 'read' | 'write'

export const OP_READ = 1
export const OP_WRITE = 2
export const GRANT_KEY_SIZE = 32
export const GRANT_MAC_SIZE = 16
export const GRANT_WIRE_SIZE = 48

export interface Grant {
  /** The segment the grant is for (it is part of the signed bytes, not of the wire form). */
  segment: string
  /** First byte of the granted range. */
  offset: number
  /** Bytes in the granted range. */
  length: number
  /** Operations allowed. */
  ops: TransferOp[]
  /** Wall-clock expiry, Unix milliseconds; requests at or after it are refused. */
  expiresAt: number
  /** First 16 bytes of HMAC-SHA256(grantKey, canonical bytes). */
  mac: Buffer
}

export interface GrantSpec {
  segment: string
  offset: number
  length: number
  ops: readonly TransferOp[]
  expiresAt: number
}

export function opMask(ops: readonly TransferOp[]): number {
  let mask = 0
  for (const op of ops) {
    if (op === 'read') mask |= OP_READ
    else if (op === 'write') mask |= OP_WRITE
    else throw new MooncakeError('INVALID_PARAMS', `unknown grant operation ${String(op)}`)
  }
  return mask
}

export function opsFromMask(mask: number): TransferOp[] {
  const ops: TransferOp[] = []
  if (mask & OP_READ) ops.push('read')
  if (mask & OP_WRITE) ops.push('write')
  return ops
}

/** A grant's offset, length or expiry, refused unless a non-negative safe integer. */
export function checkedU64(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new MooncakeError('INVALID_PARAMS', `grant ${name} must be a non-negative safe integer (got ${value})`)
  }
  return value
}

/** "MCGRANT1" | u16 nameLen | name (UTF-8) | u64 offset | u64 length | u32 opMask | u64 expiry, little-endian. */
export function canonicalGrantBytes(spec: GrantSpec): Buffer {
  const name = Buffer.from(spec.segment, 'utf8')
  if (name.length === 0 || name.length > 255) {
    throw new MooncakeError('INVALID_PARAMS', 'grant segment name must be 1 to 255 bytes of UTF-8')
  }
  const out = Buffer.alloc(8 + 2 + name.length + 8 + 8 + 4 + 8)
  let p = out.write('MCGRANT1', 0, 'latin1')
  p = out.writeUInt16LE(name.length, p)
  p += name.copy(out, p)
  putU64(out, checkedU64('offset', spec.offset), p)
  putU64(out, checkedU64('length', spec.length), p + 8)
  out.writeUInt32LE(opMask(spec.ops), p + 16)
  putU64(out, checkedU64('expiresAt', spec.expiresAt), p + 20)
  return out
}

/** Signs a grant with a segment's grant key (`Segment.grantKey`). */
export function mintGrant(grantKey: Uint8Array, spec: GrantSpec): Grant {
  if (!(grantKey instanceof Uint8Array) || grantKey.length !== GRANT_KEY_SIZE) {
    throw new MooncakeError('INVALID_PARAMS', `a grant key is ${GRANT_KEY_SIZE} bytes`)
  }
  if (spec.ops.length === 0) throw new MooncakeError('INVALID_PARAMS', 'a grant must allow read and/or write')
  const mac = createHmac('sha256', grantKey).update(canonicalGrantBytes(spec)).digest().subarray(0, GRANT_MAC_SIZE)
  return {
    segment: spec.segment,
    offset: spec.offset,
    length: spec.length,
    ops: opsFromMask(opMask(spec.ops)),
    expiresAt: spec.expiresAt,
    mac: Buffer.from(mac),
  }
}

const canonicalScratch = Buffer.alloc(8 + 2 + 255 + 8 + 8 + 4 + 8)
canonicalScratch.write('MCGRANT1', 0, 'latin1')

function putU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % 0x1_0000_0000, at)
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4)
}

/**
 * mintGrant + encodeGrant in one step for the master's hot path (a grant per replica of every
 * put and get): the same bytes, without the intermediate objects, BigInts and copies. The
 * caller has validated the numbers (safe non-negative integers) and the key (32 bytes).
 */
export function mintGrantWire(grantKey: Uint8Array, segment: string, offset: number, length: number, mask: number, expiresAt: number): Buffer {
  const c = canonicalScratch
  const nameLength = c.write(segment, 10, 'utf8')
  if (nameLength === 0 || nameLength > 255 || Buffer.byteLength(segment, 'utf8') !== nameLength) {
    throw new MooncakeError('INVALID_PARAMS', 'grant segment name must be 1 to 255 bytes of UTF-8')
  }
  c.writeUInt16LE(nameLength, 8)
  let p = 10 + nameLength
  putU64(c, offset, p)
  putU64(c, length, p + 8)
  c.writeUInt32LE(mask, p + 16)
  putU64(c, expiresAt, p + 20)
  p += 28
  const out = Buffer.allocUnsafe(GRANT_WIRE_SIZE)
  putU64(out, offset, 0)
  putU64(out, length, 8)
  out.writeUInt32LE(mask, 16)
  out.writeUInt32LE(0, 20)
  putU64(out, expiresAt, 24)
  const native = nativeHmac()
  if (native) native.hmacSha256Into(grantKey, c, p, out, 32, GRANT_MAC_SIZE)
  else createHmac('sha256', grantKey).update(c.subarray(0, p)).digest().copy(out, 32, 0, GRANT_MAC_SIZE)
  return out
}

let hmac: NativeBinding | null | undefined

/** The addon's HMAC (kept key states: ~0.4 µs a MAC against ~2.2 µs for createHmac), or null without a native build. */
function nativeHmac(): NativeBinding | null {
  if (hmac === undefined) {
    try {
      hmac = loadNative()
    } catch {
      // A master can run without the native build: node:crypto gives the same bytes.
      hmac = null
    }
  }
  return hmac
}

/** The 48-byte wire form: u64 offset | u64 length | u32 opMask | u32 0 | u64 expiry | mac[16]. */
export function encodeGrant(grant: Grant): Buffer {
  if (!(grant.mac instanceof Uint8Array) || grant.mac.length !== GRANT_MAC_SIZE) {
    throw new MooncakeError('INVALID_PARAMS', `a grant mac is ${GRANT_MAC_SIZE} bytes`)
  }
  const offset = checkedU64('offset', grant.offset)
  const length = checkedU64('length', grant.length)
  const expiresAt = checkedU64('expiresAt', grant.expiresAt)
  const out = Buffer.allocUnsafe(GRANT_WIRE_SIZE)
  putU64(out, offset, 0)
  putU64(out, length, 8)
  out.writeUInt32LE(opMask(grant.ops), 16)
  out.writeUInt32LE(0, 20)
  putU64(out, expiresAt, 24)
  out.set(grant.mac, 32)
  return out
}

/** Why `wire` is not a grant's wire form (size, unknown op bits, reserved bits), or undefined. */
export function grantWireProblem(wire: Uint8Array): string | undefined {
  if (!(wire instanceof Uint8Array) || wire.length !== GRANT_WIRE_SIZE) return `a grant is ${GRANT_WIRE_SIZE} bytes`
  const mask = wire[16] | (wire[17] << 8) | (wire[18] << 16) | (wire[19] << 24)
  if (mask & ~(OP_READ | OP_WRITE) || (wire[20] | wire[21] | wire[22] | wire[23]) !== 0) return 'malformed grant'
  return undefined
}

export function decodeGrant(segment: string, wire: Uint8Array): Grant {
  if (wire.length !== GRANT_WIRE_SIZE) throw new MooncakeError('INVALID_PARAMS', `a grant is ${GRANT_WIRE_SIZE} bytes`)
  const b = Buffer.from(wire.buffer, wire.byteOffset, wire.length)
  const mask = b.readUInt32LE(16)
  if (mask & ~(OP_READ | OP_WRITE) || b.readUInt32LE(20) !== 0) throw new MooncakeError('INVALID_PARAMS', 'malformed grant')
  return {segment, offset: getU64(b, 0), length: getU64(b, 8), ops: opsFromMask(mask), expiresAt: getU64(b, 24), mac: Buffer.from(b.subarray(32, 48))}
}

/** A u64 that must be a safe integer (a grant's numbers are). */
function getU64(b: Buffer, at: number): number {
  const hi = b.readUInt32LE(at + 4)
  if (hi >= 0x20_0000) throw new MooncakeError('INVALID_PARAMS', 'grant field out of range')
  return hi * 0x1_0000_0000 + b.readUInt32LE(at)
}
