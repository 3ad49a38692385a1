// The coalescer's group calls (callMany): merged with single calls into one batch, answered per
// item, never rejected.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeError} from '../../src/lib/errors.js'
import type {ItemResult} from '../../src/lib/master/api.js'
import {Coalescer} from '../../src/lib/client/coalescer.js'

function make(fail?: (items: number[]) => boolean) {
  const batches: number[][] = []
  const c = new Coalescer<number, number>({
    batch: async (items) => {
      batches.push(items)
      if (fail?.(items)) throw new MooncakeError('UNAVAILABLE', 'master down')
      return items.map((x): ItemResult<number> => (x < 0 ? {ok: false, code: 'OBJECT_NOT_FOUND', message: `no ${x}`} : {ok: true, value: x * 10}))
    },
    single: async (x) => x * 100,
    maxInFlight: 1,
    maxBatchSize: 6,
  })
  return {c, batches}
}

test('groups and single calls of one tick share a batch; results are per item and in order', async () => {
  const {c, batches} = make()
  const [a, b, s] = await Promise.all([c.callMany([1, -2, 3]), c.callMany([4]), c.call(5)])
  assert.equal(batches, [[1, -2, 3, 4, 5]])
  assert.equal(a, [{ok: true, value: 10}, {ok: false, code: 'OBJECT_NOT_FOUND', message: 'no -2'}, {ok: true, value: 30}])
  assert.equal(b, [{ok: true, value: 40}])
  assert.is(s, 50)
})

test('whole groups fill batches up to maxBatchSize; a larger group goes alone', async () => {
  const {c, batches} = make()
  const big = Array.from({length: 8}, (_, i) => i)
  const out = await Promise.all([c.callMany([1, 2, 3, 4]), c.callMany([5, 6, 7]), c.callMany(big), c.callMany([])])
  assert.equal(batches, [[1, 2, 3, 4], [5, 6, 7], big])
  assert.equal(out[2].map((r) => (r.ok ? r.value : -1)), big.map((x) => x * 10))
  assert.equal(out[3], [])
})

test('a failed batch RPC answers every item of a group with its error (no rejection) and rejects single calls', async () => {
  const {c} = make(() => true)
  const group = c.callMany([1, 2])
  const single = c.call(3)
  assert.equal(await group, [
    {ok: false, code: 'UNAVAILABLE', message: 'master down'},
    {ok: false, code: 'UNAVAILABLE', message: 'master down'},
  ])
  try {
    await single
    assert.unreachable('single call should reject')
  } catch (err) {
    assert.is((err as MooncakeError).code, 'UNAVAILABLE')
  }
})

test('single calls wait for a slot (maxInFlight); groups leave at once, without the waiting single calls', async () => {
  const sent: string[] = []
  const held: Array<() => void> = []
  const hold = <T>(label: string, value: T): Promise<T> => {
    sent.push(label)
    return new Promise<T>((resolve) => held.push(() => resolve(value)))
  }
  const c = new Coalescer<number, number>({
    batch: (items) => hold(`batch ${items.join(',')}`, items.map((x): ItemResult<number> => ({ok: true, value: x}))),
    single: (x) => hold(`single ${x}`, x),
    maxInFlight: 1,
    maxBatchSize: 16,
  })
  const first = c.call(1)
  await new Promise((r) => setImmediate(r))
  const waiting = [c.call(2), c.call(3)]
  const group = c.callMany([4, 5])
  await new Promise((r) => setImmediate(r))
  assert.equal(sent, ['single 1', 'batch 4,5'], 'the group did not wait behind the single call in flight')
  held[1]()
  assert.equal(await group, [{ok: true, value: 4}, {ok: true, value: 5}])
  assert.equal(sent, ['single 1', 'batch 4,5'], 'the single calls still wait for the slot')
  held[0]()
  assert.is(await first, 1)
  await new Promise((r) => setImmediate(r))
  assert.equal(sent, ['single 1', 'batch 4,5', 'batch 2,3'])
  held[2]()
  assert.equal(await Promise.all(waiting), [2, 3])
})

test('a group of one item still travels as a batch (ItemResult semantics)', async () => {
  const {c, batches} = make()
  assert.equal(await c.callMany([-7]), [{ok: false, code: 'OBJECT_NOT_FOUND', message: 'no -7'}])
  assert.equal(batches, [[-7]])
})

test.run()
