import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {RangeAllocator, binOf, binSize} from '../../../src/lib/master/allocator.js'
import {seeded} from './helpers.js'

test('bins: every size falls in a bin whose lower bound is <= the size, within 12.5 %', () => {
  for (const s of [1, 7, 8, 9, 15, 16, 100, 1000, 4095, 4096, 65_537, 2 ** 31 + 5, 2 ** 32 + 1, 5 * 2 ** 40 + 17, 2 ** 52]) {
    const b = binOf(s)
    assert.ok(binSize(b) <= s, `binSize(${b}) <= ${s}`)
    assert.ok(binSize(b + 1) > s, `binSize(${b + 1}) > ${s}`)
  }
})

test('alloc, free and coalescing give back one free range', () => {
  const a = new RangeAllocator(1 << 20)
  const h1 = a.alloc(1000)
  const h2 = a.alloc(2000)
  const h3 = a.alloc(3000)
  assert.is(a.offsetOf(h1), 0)
  assert.is(a.offsetOf(h2), 1000)
  assert.is(a.offsetOf(h3), 3000)
  assert.is(a.used, 6000)
  a.release(h2)
  assert.equal(a.freeRanges(), [
    [1000, 2000],
    [6000, (1 << 20) - 6000],
  ])
  a.release(h1)
  assert.equal(a.freeRanges()[0], [0, 3000])
  a.release(h3)
  assert.equal(a.freeRanges(), [[0, 1 << 20]])
  assert.is(a.used, 0)
  assert.is(a.fragmentation(), 0)
  assert.is(a.allocations, 0)
})

test('sizes are rounded up to the alignment; offsets stay aligned', () => {
  const a = new RangeAllocator(4096, 64)
  const h1 = a.alloc(1)
  const h2 = a.alloc(65)
  assert.is(a.sizeOf(h1), 64)
  assert.is(a.offsetOf(h2), 64)
  assert.is(a.sizeOf(h2), 128)
  assert.is(a.used, 192)
})

test('out of space returns -1 and a segment can be filled exactly', () => {
  const a = new RangeAllocator(1000)
  assert.is(a.alloc(1001), -1)
  assert.ok(a.alloc(1000) >= 0)
  assert.is(a.alloc(8), -1)
  assert.is(a.free, 0)
  const b = new RangeAllocator(1 << 20)
  let n = 0
  while (b.alloc(1024) >= 0) n++
  assert.is(n, 1024)
  assert.not.ok(b.canAlloc(1))
})

test('fragmentation = 1 - largestFree/free', () => {
  const a = new RangeAllocator(8000)
  const hs = Array.from({length: 8}, () => a.alloc(1000))
  a.release(hs[1])
  a.release(hs[3])
  a.release(hs[4])
  // free ranges: 1000 and 2000 -> 1 - 2000/3000
  assert.ok(Math.abs(a.fragmentation() - 1 / 3) < 1e-12)
  assert.is(a.largestFree(), 2000)
  assert.not.ok(a.canAlloc(2001))
  assert.ok(a.canAlloc(2000))
})

test('segments larger than 4 GiB use plain numbers', () => {
  const size = 64 * 2 ** 30
  const a = new RangeAllocator(size)
  const h1 = a.alloc(5 * 2 ** 30)
  const h2 = a.alloc(6 * 2 ** 30)
  assert.is(a.offsetOf(h2), 5 * 2 ** 30)
  const h3 = a.alloc(2 ** 33 + 8)
  assert.is(a.offsetOf(h3), 11 * 2 ** 30)
  assert.is(a.used, 11 * 2 ** 30 + 2 ** 33 + 8)
  a.release(h1)
  a.release(h2)
  a.release(h3)
  assert.equal(a.freeRanges(), [[0, size]])
  const big = new RangeAllocator(2 ** 45)
  assert.ok(big.alloc(2 ** 44) >= 0)
  assert.ok(big.alloc(2 ** 44) >= 0)
  assert.is(big.alloc(8), -1)
})

test('randomized alloc/free against a simple model', () => {
  const rnd = seeded(42)
  const cap = 1 << 22
  const a = new RangeAllocator(cap)
  const live = new Map<number, [number, number]>()
  for (let step = 0; step < 60_000; step++) {
    if (live.size > 0 && rnd() < 0.45) {
      const keys = [...live.keys()]
      const h = keys[Math.floor(rnd() * keys.length)]
      a.release(h)
      live.delete(h)
    } else {
      const size = rnd() < 0.1 ? 1 + Math.floor(rnd() * 200_000) : 1 + Math.floor(rnd() * 4096)
      const h = a.alloc(size)
      if (h < 0) {
        // the model agrees: no free range is large enough
        const need = a.alignedSize(size)
        assert.ok(a.freeRanges().every(([, s]) => s < need || s < need + 0), 'a fitting range was missed')
        continue
      }
      assert.not.ok(live.has(h))
      live.set(h, [a.offsetOf(h), a.sizeOf(h)])
      assert.ok(a.sizeOf(h) >= size)
    }
    if (step % 5000 === 0) {
      const ranges = [...live.values(), ...a.freeRanges()].sort((x, y) => x[0] - y[0])
      let at = 0
      for (const [off, size] of ranges) {
        assert.is(off, at, 'ranges tile the segment without gaps or overlaps')
        at += size
      }
      assert.is(at, cap)
      let used = 0
      for (const [, s] of live.values()) used += s
      assert.is(a.used, used)
    }
  }
  for (const h of live.keys()) a.release(h)
  assert.equal(a.freeRanges(), [[0, cap]])
})

test('hundreds of thousands of live allocations are fast', () => {
  const a = new RangeAllocator(2 ** 40)
  const n = 300_000
  const hs = new Int32Array(n)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) hs[i] = a.alloc(1024 + (i % 7) * 512)
  for (let i = 0; i < n; i += 2) a.release(hs[i])
  for (let i = 0; i < n; i += 2) hs[i] = a.alloc(700 + (i % 5) * 300)
  for (let i = 0; i < n; i++) a.release(hs[i])
  const ms = performance.now() - t0
  assert.ok(ms < 2000, `took ${ms} ms`)
  assert.equal(a.freeRanges(), [[0, 2 ** 40]])
})

test('release of a handle that is not allocated throws', () => {
  const a = new RangeAllocator(1024)
  const h = a.alloc(10)
  a.release(h)
  assert.throws(() => a.release(h))
  assert.throws(() => a.release(999))
})

test('split: both halves stay allocated, are released on their own and coalesce back', () => {
  const a = new RangeAllocator(1024)
  const h = a.alloc(512)
  const tail = a.split(h, 128)
  assert.equal([a.offsetOf(h), a.sizeOf(h), a.offsetOf(tail), a.sizeOf(tail)], [0, 128, 128, 384])
  assert.is(a.used, 512)
  assert.is(a.allocations, 2)
  const mid = a.split(tail, 64)
  a.release(tail) // [128, 192) freed between two live pieces
  assert.is(a.used, 448)
  assert.is(a.largestFree(), 512)
  a.release(h)
  a.release(mid)
  assert.is(a.used, 0)
  assert.is(a.allocations, 0)
  assert.equal(a.freeRanges(), [[0, 1024]])
  const x = a.alloc(64)
  assert.throws(() => a.split(x, 0))
  assert.throws(() => a.split(x, 64))
  assert.throws(() => a.split(x, 12), /split/)
  assert.throws(() => a.split(999, 8))
})

test.run()
