// Load finding L1 (docs/reliability.md): at the watermark a PutStart occasionally failed with
// NO_AVAILABLE_HANDLE although evicting lease-expired objects would have opened a range. The
// synchronous eviction of PutStart stopped on a wall-clock budget: on a loaded host (the process
// descheduled, a GC pause) the same pool state gave a different answer, and a pass cut short had
// already evicted objects for nothing. These tests make the wall clock slow on purpose.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {KiB, leasedInShuffledOrder, MiB, start} from './helpers.js'

/**
 * One segment of `blocks` KiB filled with 1 KiB objects whose leases expire in a shuffled order:
 * a range of 64 KiB opens only after most of them are evicted (oldest lease first).
 */
function fragmentedFullPool(blocks: number, wallClock: () => number) {
  const ctx = leasedInShuffledOrder(blocks, blocks * KiB, 11, {wallClock})
  assert.is(ctx.svc.stats().used, blocks * KiB, 'the pool is full')
  return ctx
}

/** A wall clock that jumps `stepMs` at every reading: the master is descheduled between readings. */
function stallingClock(stepMs: number): () => number {
  let t = 0
  return () => (t += stepMs)
}

test('a put needing hundreds of evictions to open one range succeeds however slow the wall clock', () => {
  const {svc} = fragmentedFullPool(1024, stallingClock(6))
  const evicted0 = svc.metrics().evictedObjects
  const r = start(svc, 'big', 64 * KiB)
  assert.is(r.replicas.length, 1)
  const evicted = svc.metrics().evictedObjects - evicted0
  assert.ok(evicted >= 64, `opening 64 KiB took ${evicted} evictions`)
  assert.ok(evicted < 1024, 'not everything had to go')
  assert.ok(svc.existKey('big') === false, 'in progress until PutEnd')
  svc.putEnd({clientId: 'writer', key: 'big'})
  assert.ok(svc.existKey('big'))
})

test('the same pool state gives the same answer with a fast and a stalling wall clock', () => {
  const fast = fragmentedFullPool(1024, stallingClock(0))
  const slow = fragmentedFullPool(1024, stallingClock(50))
  start(fast.svc, 'big', 64 * KiB)
  start(slow.svc, 'big', 64 * KiB)
  assert.is(slow.svc.metrics().evictedObjects, fast.svc.metrics().evictedObjects)
  assert.equal(slow.svc.listKeys({limit: 10_000}).keys.sort(), fast.svc.listKeys({limit: 10_000}).keys.sort())
})

test('the synchronous pass stays bounded by its object count: more than 2048 needed -> NO_AVAILABLE_HANDLE', () => {
  // 4096 objects of 1 KiB in 4 MiB, leases expiring in shuffled order: a 2 MiB range needs far more
  // than 2048 evictions, so the pass gives up; the background round (needEviction) continues.
  const {svc} = fragmentedFullPool(4096, stallingClock(0))
  let code = ''
  try {
    start(svc, 'huge', 2 * MiB)
  } catch (err) {
    code = (err as {code?: string}).code ?? String(err)
  }
  assert.is(code, 'NO_AVAILABLE_HANDLE')
  assert.ok(svc.metrics().evictedObjects <= 2048, `evicted ${svc.metrics().evictedObjects}`)
})

test.run()
