/** Pure parts of the P2P store: shard layout, shard bitmaps, size and name validation. */
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {isMooncakeError} from '../../src/lib/errors.js'
import {ShardBitmap} from '../../src/lib/p2p/serve.js'
import {checkSizes, layoutShards, validatePayloadName, validatePeerName, validateShardSize} from '../../src/lib/p2p/shards.js'

test('shards are cut per part and never span two parts', () => {
  assert.equal(layoutShards([10, 0, 4], 4), [
    {index: 0, part: 0, partOffset: 0, offset: 0, length: 4},
    {index: 1, part: 0, partOffset: 4, offset: 4, length: 4},
    {index: 2, part: 0, partOffset: 8, offset: 8, length: 2},
    {index: 3, part: 2, partOffset: 0, offset: 10, length: 4},
  ])
  assert.is(layoutShards([2 ** 30], 8 * 2 ** 20).length, 128)
})

test('shard bitmaps round-trip through their etcd form; "all" when complete', () => {
  const map = new ShardBitmap(11)
  assert.ok(map.set(0))
  assert.ok(map.set(9))
  assert.not.ok(map.set(9))
  assert.is(map.count, 2)
  const back = ShardBitmap.decode(map.encode(), 11)
  assert.equal([...Array(11).keys()].filter((i) => back.has(i)), [0, 9])
  for (let i = 0; i < 11; i++) map.set(i)
  assert.is(map.encode(), 'all')
  assert.ok(ShardBitmap.decode('all', 11).complete)
  // Garbage past the end is ignored.
  const junk = ShardBitmap.decode(Buffer.from([0xff, 0xff, 0xff]).toString('base64'), 3)
  assert.is(junk.count, 3)
  assert.not.ok(junk.has(3))
})

test('sizes, shard sizes and names are validated', () => {
  checkSizes('p', [1, 2], [1, 2])
  try {
    checkSizes('p', [1, 2], [1, 3])
    assert.unreachable()
  } catch (err) {
    assert.ok(isMooncakeError(err, 'PAYLOAD_SIZE_MISMATCH'))
    assert.match((err as Error).message, '[1, 2]')
    assert.match((err as Error).message, '[1, 3]')
  }
  for (const bad of [0, 100, 65 * 2 ** 20, 1.5]) assert.throws(() => validateShardSize(bad), (e: unknown) => isMooncakeError(e, 'INVALID_PARAMS'))
  validateShardSize(64 * 2 ** 20)
  assert.throws(() => validatePayloadName(''))
  assert.throws(() => validatePayloadName('a\nb'))
  validatePayloadName('llama/step-1000')
  assert.throws(() => validatePeerName('a/b'))
  validatePeerName('node-7:1234')
})

test.run()
