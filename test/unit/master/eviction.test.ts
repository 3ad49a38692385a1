import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {KiB, leasedInShuffledOrder, MiB, mount, put, setup, start, throwsCode} from './helpers.js'

function remaining(svc: ReturnType<typeof setup>['svc'], keys: string[]): string[] {
  const listed = new Set(svc.listKeys({limit: 1_000_000}).keys) // ListKeys grants no lease
  return keys.filter((k) => listed.has(k))
}

test('exact count: 400 expired objects at target = lower = 0.05 -> exactly the 20 oldest leases go', () => {
  const {svc, order} = leasedInShuffledOrder(400, 4 * MiB, 3)
  const r = svc.runEviction(0.05, 0.05)
  assert.is(r.evicted, 20)
  assert.is(svc.stats().keys, 380)
  const gone = order.filter((k) => {
    try {
      svc.query(k)
      return false
    } catch {
      return true
    }
  })
  assert.equal(gone, order.slice(0, 20))
})

test('exact count: 0.80 on 200 -> the 160 oldest', () => {
  const {svc, order} = leasedInShuffledOrder(200, 4 * MiB, 3)
  assert.is(svc.runEviction(0.8, 0.8).evicted, 160)
  assert.equal(
    svc.listKeys({}).keys.sort(),
    order.slice(160).sort(),
  )
})

test('pass 2 runs when ceil(base*lower) exceeds what pass 1 evicted', () => {
  const {svc} = leasedInShuffledOrder(100, 4 * MiB, 3)
  assert.is(svc.runEviction(0.1, 0.3).evicted, 30)
  assert.is(svc.stats().keys, 70)
})

test('soft-pinned objects are a fallback: only in pass 2, oldest first; never when not allowed', () => {
  for (const allow of [true, false]) {
    const {svc, clock} = setup({leaseTtlMs: 1000, allowEvictSoftPinnedObjects: allow})
    mount(svc, 's', MiB)
    for (let i = 0; i < 10; i++) put(svc, `plain${i}`, KiB)
    for (let i = 0; i < 10; i++) {
      put(svc, `pin${i}`, KiB, {withSoftPin: true})
      clock.advance(1)
      svc.getReplicaList(`pin${i}`)
    }
    clock.advance(2000)
    assert.is(svc.stats().softPinnedKeys, 10)
    // pass 1 wants 10: all plain go, no pinned
    assert.is(svc.runEviction(0.5, 0.5).evicted, 10)
    assert.is(remaining(svc, Array.from({length: 10}, (_, i) => `pin${i}`)).length, 10)
    // pass 2 wants ceil(10 * 0.5) = 5 more: only pinned remain
    const r = svc.runEviction(0.1, 0.5)
    if (allow) {
      assert.is(r.evicted, 5)
      assert.equal(svc.listKeys({}).keys.sort(), ['pin5', 'pin6', 'pin7', 'pin8', 'pin9'])
    } else {
      assert.is(r.evicted, 0)
      assert.is(svc.stats().keys, 10)
    }
  }
})

test('soft pin lasts softPinTtl from PutEnd; reads do not extend it; afterwards the object is ordinary', () => {
  const {svc, clock} = setup({leaseTtlMs: 100, softPinTtlMs: 10_000, allowEvictSoftPinnedObjects: false})
  mount(svc, 's', MiB)
  put(svc, 'pinned', KiB, {withSoftPin: true})
  const t0 = clock.now()
  assert.is(svc.query('pinned').softPinExpiresAt, t0 + 10_000)
  clock.advance(5000)
  svc.getReplicaList('pinned')
  assert.is(svc.query('pinned').softPinExpiresAt, t0 + 10_000)
  clock.advance(1000)
  assert.is(svc.runEviction(1, 1).evicted, 0)
  clock.advance(4000)
  assert.is(svc.query('pinned').softPinExpiresAt, null)
  assert.is(svc.stats().softPinnedKeys, 0)
  assert.is(svc.runEviction(1, 1).evicted, 1)
})

test('leased objects and puts in progress survive eviction', () => {
  const {svc, clock} = setup({leaseTtlMs: 1000})
  mount(svc, 's', MiB)
  for (let i = 0; i < 10; i++) put(svc, `k${i}`, KiB)
  start(svc, 'pending', KiB)
  clock.advance(10)
  svc.getReplicaList('k3')
  svc.existKey('k7')
  const r = svc.runEviction(1, 1)
  assert.is(r.evicted, 8)
  assert.equal(svc.listKeys({}).keys.sort(), ['k3', 'k7'])
  assert.ok(svc.query('pending'))
  clock.advance(1000)
  assert.is(svc.runEviction(1, 1).evicted, 2)
})

test('the background loop evicts when used/capacity exceeds the high watermark', () => {
  const {svc} = setup({evictionHighWatermarkRatio: 0.9, evictionRatio: 0.05})
  mount(svc, 's', 100 * KiB)
  for (let i = 0; i < 95; i++) put(svc, `k${i}`, KiB)
  // used = 0.95 > 0.9: target = max(0.05, 0.95 - 0.9 + 0.05) = 0.1 -> ceil(95 * 0.1) = 10
  svc.tick()
  assert.is(svc.stats().keys, 85)
})

test('tick evicts by ratio: target = max(ratio, used - watermark + ratio)', () => {
  const {svc} = setup({evictionHighWatermarkRatio: 0.5, evictionRatio: 0.05})
  mount(svc, 's', 100 * KiB)
  for (let i = 0; i < 80; i++) put(svc, `k${i}`, KiB)
  // used = 0.8: target = 0.35, lower = 0.3 -> ceil(80 * 0.35) = 28 evicted in pass 1
  svc.tick()
  assert.is(svc.stats().keys, 52)
  // used = 0.52: target = 0.07, lower = 0.035 -> ceil(52 * 0.07) = 4
  svc.tick()
  assert.is(svc.stats().keys, 48)
  svc.tick()
  assert.is(svc.stats().keys, 48, 'below the watermark nothing happens')
  assert.is(svc.metrics().evictedObjects, 32)
})

test('PutStart into a full pool succeeds through synchronous eviction [ours]', () => {
  const {svc} = setup()
  mount(svc, 'a', 64 * KiB)
  mount(svc, 'b', 64 * KiB)
  for (let i = 0; i < 2000; i++) put(svc, `k${i}`, KiB)
  assert.ok(svc.stats().used <= 128 * KiB)
  assert.ok(svc.metrics().syncEvictions > 0)
  // the newest keys are there
  assert.ok(svc.existKey('k1999'))
  // a big object makes room too
  put(svc, 'big', 60 * KiB)
  assert.ok(svc.existKey('big'))
})

test('no room and nothing evictable -> NO_AVAILABLE_HANDLE', () => {
  const {svc} = setup()
  mount(svc, 'a', 4 * KiB)
  for (let i = 0; i < 4; i++) put(svc, `k${i}`, KiB)
  for (let i = 0; i < 4; i++) svc.getReplicaList(`k${i}`)
  throwsCode(() => start(svc, 'x', KiB), 'NO_AVAILABLE_HANDLE')
})

test('a round larger than one tick budget completes over several ticks', () => {
  const {svc} = setup({evictionHighWatermarkRatio: 0.1, evictionRatio: 0.05, shardCount: 16})
  mount(svc, 's', 512 * MiB)
  const n = 120_000
  for (let i = 0; i < n; i++) put(svc, `k${i}`, 1024)
  let ticks = 0
  do {
    svc.tick()
    ticks++
  } while (svc.metrics().evictionInProgress && ticks < 1000)
  assert.not.ok(svc.metrics().evictionInProgress)
  assert.ok(svc.metrics().evictedObjects > 1000)
  assert.ok(svc.metrics().maxTickMs < 200, `longest tick ${svc.metrics().maxTickMs} ms`)
})

test('a put no segment can hold, even after eviction, fails at once and evicts nothing', () => {
  const {svc} = setup()
  mount(svc, 'a', 64 * KiB)
  mount(svc, 'b', 64 * KiB)
  for (let i = 0; i < 100; i++) put(svc, `k${i}`, KiB) // never read: every lease has expired
  const before = svc.metrics().evictedObjects
  // Larger than any segment.
  throwsCode(() => start(svc, 'huge', 100 * KiB), 'NO_AVAILABLE_HANDLE')
  assert.is(svc.stats().keys, 100)
  assert.is(svc.metrics().evictedObjects, before)
  // Fits a segment, but not its free space plus what is evictable: puts in progress are not.
  const {svc: svc2} = setup()
  mount(svc2, 'a', 64 * KiB)
  for (let i = 0; i < 16; i++) put(svc2, `done${i}`, KiB)
  for (let i = 0; i < 40; i++) start(svc2, `busy${i}`, KiB)
  throwsCode(() => start(svc2, 'big', 40 * KiB), 'NO_AVAILABLE_HANDLE')
  assert.is(svc2.stats().keys, 56)
  assert.is(svc2.metrics().evictedObjects, 0)
  // Nor are leased objects.
  const {svc: svc3} = setup({leaseTtlMs: 60_000})
  mount(svc3, 'a', 64 * KiB)
  for (let i = 0; i < 48; i++) put(svc3, `k${i}`, KiB)
  for (let i = 0; i < 32; i++) svc3.getReplicaList(`k${i}`)
  throwsCode(() => start(svc3, 'big', 40 * KiB), 'NO_AVAILABLE_HANDLE') // free 16 + expired 16 < 40
  assert.is(svc3.stats().keys, 48)
  assert.is(svc3.metrics().evictedObjects, 0)
  // ... and what fits after evicting the expired ones still goes through.
  put(svc3, 'ok', 30 * KiB)
  assert.ok(svc3.existKey('ok'))
  for (let i = 0; i < 32; i++) assert.ok(svc3.existKey(`k${i}`), 'leased objects stay')
})

test('1000 sequential puts into a full pool all succeed while older leases expire (S8 [ours])', () => {
  const {svc, clock} = setup({leaseTtlMs: 50, evictionHighWatermarkRatio: 0.95, evictionRatio: 0.05})
  mount(svc, 'a', 64 * KiB)
  mount(svc, 'b', 64 * KiB)
  for (let i = 0; i < 128; i++) put(svc, `fill${i}`, KiB) // full
  assert.ok(svc.stats().used >= 128 * KiB - KiB)
  for (let i = 0; i < 1000; i++) {
    put(svc, `k${i}`, KiB)
    svc.getReplicaList(`k${i}`) // read: leased for 50 ms
    clock.advance(1)
    if (i % 20 === 0) svc.tick()
  }
  for (let i = 990; i < 1000; i++) assert.ok(svc.existKey(`k${i}`), `k${i}`)
  assert.ok(svc.stats().used <= 128 * KiB)
})

test.run()
