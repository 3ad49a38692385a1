import {createHmac, randomBytes} from 'node:crypto'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {grantMinter} from '../../src/lib/master/grant-minter.js'
import {mintGrantWire} from '../../src/lib/transfer/grant.js'
import {canonicalGrantBytes, decodeGrant, encodeGrant, loadNative, mintGrant, OP_READ, OP_WRITE, opMask} from '../../src/lib/transfer/index.js'

test('mintGrant and the native verifier sign exactly the same bytes', () => {
  const native = loadNative()
  const cases = [
    {segment: 'seg', offset: 0, length: 1, ops: ['read'] as const, expiresAt: 1},
    {segment: 'node-7/kv', offset: 4096, length: 1 << 20, ops: ['write'] as const, expiresAt: Date.now() + 60_000},
    {segment: 'ünïcødé segment', offset: 2 ** 40, length: 2 ** 33, ops: ['read', 'write'] as const, expiresAt: Number.MAX_SAFE_INTEGER},
    {segment: 'x'.repeat(255), offset: Number.MAX_SAFE_INTEGER, length: 0, ops: ['write', 'read'] as const, expiresAt: 0},
  ]
  for (const spec of cases) {
    const key = randomBytes(32)
    const grant = mintGrant(key, spec)
    const mac = native.grantMac(key, spec.segment, spec.offset, spec.length, opMask(spec.ops), spec.expiresAt)
    assert.equal(grant.mac.toString('hex'), mac.toString('hex'), spec.segment)
  }
})

test('the native HMAC used for minting equals node:crypto and checks its ranges', () => {
  const native = loadNative()
  for (const [keyLength, msgLength] of [[32, 0], [32, 70], [64, 300], [100, 1]]) {
    const key = randomBytes(keyLength)
    const msg = randomBytes(msgLength + 5)
    const out = Buffer.alloc(40, 0xee)
    native.hmacSha256Into(key, msg, msgLength, out, 4, 32)
    assert.is(out.subarray(4, 36).toString('hex'), createHmac('sha256', key).update(msg.subarray(0, msgLength)).digest('hex'))
    assert.is(out[3], 0xee, 'nothing written before the offset')
    assert.is(out[36], 0xee, 'nothing written after the length')
  }
  // Keys reused (kept states), more keys than the per-thread cache holds (evictions), then the
  // first keys again: every MAC equals node:crypto's.
  const keys = Array.from({length: 40}, (_, i) => randomBytes(i % 3 === 0 ? 64 : 32))
  for (let round = 0; round < 3; round++) {
    for (const k of keys) {
      const msg = randomBytes(1 + ((round * 37 + k[0]) % 200))
      const out = Buffer.alloc(32)
      native.hmacSha256Into(k, msg, msg.length, out, 0, 32)
      assert.is(out.toString('hex'), createHmac('sha256', k).update(msg).digest('hex'))
    }
  }
  const key = randomBytes(32)
  assert.throws(() => native.hmacSha256Into(key, Buffer.alloc(10), 11, Buffer.alloc(16), 0, 16), /range/)
  assert.throws(() => native.hmacSha256Into(key, Buffer.alloc(10), 10, Buffer.alloc(16), 1, 16), /range/)
  assert.throws(() => native.hmacSha256Into(key, Buffer.alloc(10), 10, Buffer.alloc(64), 0, 33), /range/)
  assert.throws(() => native.hmacSha256Into('key' as unknown as Uint8Array, Buffer.alloc(10), 10, Buffer.alloc(16), 0, 16), /Uint8Array/)
})

test("the master's one-step minter (mintGrantWire, grantMinter) writes the same bytes as mintGrant + encodeGrant", () => {
  const cases = [
    {segment: 'seg', offset: 0, length: 1, ops: ['read'] as const, expiresAt: 1},
    {segment: 'node-7/kv', offset: 4096, length: 1 << 20, ops: ['write'] as const, expiresAt: Date.now() + 60_000},
    {segment: 'ünïcødé segment', offset: 2 ** 40 + 3, length: 2 ** 33 + 1, ops: ['read', 'write'] as const, expiresAt: Number.MAX_SAFE_INTEGER},
    {segment: 'x'.repeat(255), offset: Number.MAX_SAFE_INTEGER, length: 0, ops: ['write', 'read'] as const, expiresAt: 0},
    {segment: 'y', offset: 2 ** 32 - 1, length: 2 ** 32, ops: ['read'] as const, expiresAt: 2 ** 32 + 5},
  ]
  for (const spec of cases) {
    const key = randomBytes(32)
    const want = encodeGrant(mintGrant(key, spec)).toString('hex')
    assert.is(mintGrantWire(key, spec.segment, spec.offset, spec.length, opMask(spec.ops), spec.expiresAt).toString('hex'), want, spec.segment)
    const ops = spec.ops.length === 2 ? 'rw' : spec.ops[0] === 'read' ? 'r' : 'w'
    assert.is(Buffer.from(grantMinter(key.toString('hex'), {segment: spec.segment, offset: spec.offset, length: spec.length, ops, expiresAt: spec.expiresAt})).toString('hex'), want)
  }
  // A name of 256 bytes (here 128 two-byte characters) and an empty one are refused, as by mintGrant.
  assert.throws(() => mintGrantWire(randomBytes(32), 'é'.repeat(128), 0, 1, OP_READ, 1), /1 to 255 bytes/)
  assert.throws(() => mintGrantWire(randomBytes(32), '', 0, 1, OP_READ, 1), /1 to 255 bytes/)
  assert.throws(() => grantMinter('abcd', {segment: 's', offset: 0, length: 1, ops: 'r', expiresAt: 1}), /32 bytes/)
  assert.throws(() => grantMinter(randomBytes(32).toString('hex'), {segment: 's', offset: -1, length: 1, ops: 'r', expiresAt: 1}), /non-negative/)
})

test('canonical bytes: label, LE name length, name, offset, length, op mask, expiry', () => {
  const bytes = canonicalGrantBytes({segment: 'ab', offset: 1, length: 2, ops: ['read', 'write'], expiresAt: 3})
  assert.equal(bytes.subarray(0, 8).toString('latin1'), 'MCGRANT1')
  assert.equal(bytes.readUInt16LE(8), 2)
  assert.equal(bytes.subarray(10, 12).toString(), 'ab')
  assert.equal(bytes.readBigUInt64LE(12), 1n)
  assert.equal(bytes.readBigUInt64LE(20), 2n)
  assert.equal(bytes.readUInt32LE(28), OP_READ | OP_WRITE)
  assert.equal(bytes.readBigUInt64LE(32), 3n)
  assert.is(bytes.length, 40)
})

test('wire form round-trips', () => {
  const grant = mintGrant(randomBytes(32), {segment: 's', offset: 10, length: 20, ops: ['write'], expiresAt: 12345})
  const wire = encodeGrant(grant)
  assert.is(wire.length, 48)
  assert.equal(decodeGrant('s', wire), grant)
})

test('bad keys, names, ops and numbers are refused', () => {
  const key = randomBytes(32)
  assert.throws(() => mintGrant(randomBytes(16), {segment: 's', offset: 0, length: 1, ops: ['read'], expiresAt: 1}), /32 bytes/)
  assert.throws(() => mintGrant(key, {segment: '', offset: 0, length: 1, ops: ['read'], expiresAt: 1}), /1 to 255/)
  assert.throws(() => mintGrant(key, {segment: 's', offset: -1, length: 1, ops: ['read'], expiresAt: 1}), /offset/)
  assert.throws(() => mintGrant(key, {segment: 's', offset: 0.5, length: 1, ops: ['read'], expiresAt: 1}), /offset/)
  assert.throws(() => mintGrant(key, {segment: 's', offset: 0, length: 1, ops: [], expiresAt: 1}), /read and\/or write/)
  assert.throws(() => mintGrant(key, {segment: 's', offset: 0, length: 1, ops: ['delete' as 'read'], expiresAt: 1}), /unknown/)
  const wire = encodeGrant(mintGrant(key, {segment: 's', offset: 0, length: 1, ops: ['read'], expiresAt: 1}))
  wire[16] = 7
  assert.throws(() => decodeGrant('s', wire), /malformed/)
})

test.run()
