import {randomBytes} from 'node:crypto'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {Crc32c, crc32c, crc32cAsync, crc32cHardware, TransferEngine} from '../../src/lib/transfer/index.js'

// Bitwise reference implementation (reflected Castagnoli polynomial).
function reference(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0
  for (const byte of data) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return ~crc >>> 0
}

test('known vectors', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283)
  assert.is(crc32c(Buffer.alloc(0)), 0)
  assert.is(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa)
  assert.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
  assert.type(crc32cHardware(), 'boolean')
})

test('matches the bitwise reference on sizes around every code path (alignment, 3-way 24 KiB blocks, 256-byte folding from 16 KiB)', () => {
  const data = randomBytes(80_000)
  const K16 = 16 * 1024
  const folding = [K16 - 1, K16, K16 + 1, K16 + 255, K16 + 256, K16 + 257, K16 + 256 * 7 + 255].flatMap((length) => [[0, length], [61, length]])
  for (const [offset, length] of [[0, 1], [1, 7], [3, 8], [5, 4096], [0, 24_576], [7, 24_577], [1, 49_153], [0, 80_000], [13, 79_987], ...folding]) {
    const view = data.subarray(offset, offset + length)
    assert.is(crc32c(data, 0, offset, length), reference(view), `${offset}+${length}`)
    assert.is(crc32c(view, 12345), reference(view, 12345))
  }
})

test('streaming equals one shot', () => {
  const data = randomBytes(1 << 20)
  const stream = new Crc32c()
  for (let at = 0; at < data.length; at += 77_777) stream.update(data.subarray(at, at + 77_777))
  assert.is(stream.value, crc32c(data))
  assert.is(crc32c(data, crc32c(data.subarray(0, 1000)), 1000), crc32c(data))
})

test('async over a buffer and over a segment region, without copying into JS', async () => {
  const engine = new TransferEngine({listenHosts: []})
  await engine.start()
  try {
    const seg = engine.createSegment('crc', 3 << 20, {grants: false})
    const data = randomBytes(3 << 20)
    data.copy(seg.window())
    assert.is(await crc32cAsync(seg), crc32c(data))
    assert.is(await crc32cAsync(seg, 0, 100, 1 << 20), crc32c(data, 0, 100, 1 << 20))
    assert.is(await crc32cAsync(data, 5, 10), crc32c(data, 5, 10))
    let threw = false
    try {
      await crc32cAsync(seg, 0, 1, 3 << 20)
    } catch (err) {
      threw = (err as {code?: string}).code === 'BUFFER_OVERFLOW'
    }
    assert.ok(threw)
  } finally {
    await engine.close()
  }
})

test('range and seed checks', () => {
  const data = Buffer.alloc(10)
  assert.throws(() => crc32c(data, 0, 5, 6), /outside/)
  assert.throws(() => crc32c(data, -1), /seed/)
  assert.throws(() => crc32c(data, 2 ** 32), /seed/)
})

test.run()
