import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MiB, mount, put, setup, start, throwsCode} from './helpers.js'

test('GetReplicaList: missing vs readable; memory replicas only COMPLETE', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  throwsCode(() => svc.getReplicaList('nope'), 'OBJECT_NOT_FOUND')
  start(svc, 'w', 10)
  throwsCode(() => svc.getReplicaList('w'), 'REPLICA_IS_NOT_READY')
  put(svc, 'k', 10)
  assert.is(svc.getReplicaList('k').replicas.length, 1)
  const b = svc.batchGetReplicaList(['k', 'nope', 'w'])
  assert.ok(b[0].ok)
  assert.equal(b[1], {ok: false, code: 'OBJECT_NOT_FOUND', message: b[1].ok ? '' : b[1].message})
  assert.is(b[2].ok ? '' : b[2].code, 'REPLICA_IS_NOT_READY')
})

test('leases: granted by GetReplicaList/batch/regex/ExistKey/batch; extension is max(old, now+ttl)', () => {
  const {svc, clock} = setup({leaseTtlMs: 1000})
  mount(svc, 's', MiB)
  const keys = ['a', 'b', 'c', 'd', 'e']
  for (const k of keys) put(svc, k, 10)
  const t0 = clock.now()
  assert.is(svc.query('a').leaseExpiresAt, 0, 'PutEnd grants no lease')
  const g = svc.getReplicaList('a')
  assert.is(g.leaseExpiresAt, t0 + 1000)
  assert.is(g.leaseTtlMs, 1000)
  svc.batchGetReplicaList(['b'])
  svc.getReplicaListByRegex('^c$')
  assert.ok(svc.existKey('d'))
  assert.equal(svc.batchExistKey(['e', 'zz']), [true, false])
  for (const k of keys) {
    assert.is(svc.query(k).leaseExpiresAt, t0 + 1000, k)
    throwsCode(() => svc.remove({key: k}), 'OBJECT_HAS_LEASE')
  }
  clock.advance(600)
  svc.existKey('a')
  assert.is(svc.query('a').leaseExpiresAt, t0 + 1600)
  clock.advance(500)
  // b..e expired, a still leased
  svc.remove({key: 'b'})
  throwsCode(() => svc.remove({key: 'a'}), 'OBJECT_HAS_LEASE')
})

test('Query, BatchQuery, QueryByRegex, ListKeys and stats never grant a lease', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  put(svc, 'k', 10)
  svc.query('k')
  svc.batchQuery(['k'])
  svc.queryByRegex('k')
  svc.listKeys({})
  svc.stats()
  svc.getAllSegments()
  assert.is(svc.query('k').leaseExpiresAt, 0)
  svc.remove({key: 'k'})
})

test('ExistKey is true only with a COMPLETE replica', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  start(svc, 'k', 10)
  assert.is(svc.existKey('k'), false)
  assert.is(svc.existKey('nope'), false)
  svc.putEnd({clientId: 'writer', key: 'k'})
  assert.is(svc.existKey('k'), true)
})

test('remove: not found, leased, force, in-progress refused even with force', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  throwsCode(() => svc.remove({key: 'x'}), 'OBJECT_NOT_FOUND')
  put(svc, 'k', 100)
  svc.getReplicaList('k')
  throwsCode(() => svc.remove({key: 'k'}), 'OBJECT_HAS_LEASE')
  svc.remove({key: 'k', force: true})
  throwsCode(() => svc.query('k'), 'OBJECT_NOT_FOUND')
  assert.is(svc.stats().used, 0)
  start(svc, 'w', 100)
  throwsCode(() => svc.remove({key: 'w'}), 'REPLICA_IS_NOT_READY')
  throwsCode(() => svc.remove({key: 'w', force: true}), 'REPLICA_IS_NOT_READY')
  const b = svc.batchRemove(['w', 'x'], true)
  assert.is(b[0].ok ? '' : b[0].code, 'REPLICA_IS_NOT_READY')
  assert.is(b[1].ok ? '' : b[1].code, 'OBJECT_NOT_FOUND')
})

test('regex get and remove use search semantics; leased and in-progress are skipped and counted', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  for (const k of ['user/1/a', 'user/1/b', 'user/2/a', 'other/a', 'x-user']) put(svc, k, 10)
  start(svc, 'user/9/pending', 10)
  const got = svc.getReplicaListByRegex('user/1')
  assert.equal([...got.keys()].sort(), ['user/1/a', 'user/1/b'])
  assert.equal(
    svc
      .queryByRegex('a$')
      .map((o) => o.key)
      .sort(),
    ['other/a', 'user/1/a', 'user/2/a'],
  )
  // user/1/* are leased now
  const dry = svc.removeByRegex({regex: 'user', dryRun: true})
  assert.equal(dry.keys.sort(), ['user/2/a', 'x-user'])
  assert.is(dry.skipped, 3)
  assert.is(svc.stats().keys, 6)
  const r = svc.removeByRegex({regex: 'user'})
  assert.is(r.removed, 2)
  assert.is(r.skipped, 3)
  assert.equal(r.keys.sort(), ['user/2/a', 'x-user'])
  const f = svc.removeByRegex({regex: '^user/', force: true})
  assert.equal(f.keys.sort(), ['user/1/a', 'user/1/b'])
  assert.is(f.skipped, 1)
  assert.equal(
    svc.queryByRegex('.').map((o) => o.key).sort(),
    ['other/a', 'user/9/pending'],
  )
})

test('regex: pathological patterns return quickly; backreferences are refused', () => {
  const {svc} = setup()
  mount(svc, 's', 64 * MiB)
  for (let i = 0; i < 200; i++) put(svc, 'a'.repeat(2000 + i) + '!', 1)
  const t0 = performance.now()
  assert.is(svc.queryByRegex('(a+)+$').length, 0)
  assert.is(svc.queryByRegex('(a+)+!$').length, 200)
  assert.is(svc.removeByRegex({regex: '^(a+)+b', dryRun: true}).removed, 0)
  assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`)
  throwsCode(() => svc.queryByRegex('(a)\\1'), 'INVALID_PARAMS')
  throwsCode(() => svc.getReplicaListByRegex('(?<=a)b'), 'INVALID_PARAMS')
  throwsCode(() => svc.removeByRegex({regex: '('}), 'INVALID_PARAMS')
  throwsCode(() => svc.listKeys({regex: '(a)\\1'}), 'INVALID_PARAMS')
})

test('remove-all skips leased (unless forced) and in-progress objects and counts them', () => {
  const {svc} = setup()
  mount(svc, 's', MiB)
  for (let i = 0; i < 10; i++) put(svc, `k${i}`, 10)
  svc.getReplicaList('k0')
  svc.existKey('k1')
  start(svc, 'pending', 10)
  const dry = svc.removeAll({dryRun: true})
  assert.is(dry.removed, 8)
  assert.is(dry.skipped, 3)
  assert.is(svc.stats().keys, 11)
  const r = svc.removeAll({})
  assert.is(r.removed, 8)
  assert.is(r.skipped, 3)
  assert.equal(svc.stats().keys, 3)
  const f = svc.removeAll({force: true})
  assert.equal(f.keys.sort(), ['k0', 'k1'])
  assert.is(f.skipped, 1)
  assert.equal(svc.stats().keys, 1)
})

test('ListKeys pages over many keys with prefix and regex filters: every key exactly once', () => {
  const {svc} = setup({shardCount: 64})
  mount(svc, 's', 64 * MiB)
  const all: string[] = []
  for (let i = 0; i < 5000; i++) {
    const k = `${i % 3 === 0 ? 'p/' : 'q/'}${i}`
    put(svc, k, 8)
    all.push(k)
  }
  start(svc, 'p/pending', 8)
  const collect = (req: {prefix?: string; regex?: string; limit?: number}): string[] => {
    const out: string[] = []
    let after: string | undefined
    for (let pages = 0; pages < 10_000; pages++) {
      const page = svc.listKeys({...req, after})
      out.push(...page.keys)
      assert.ok(page.keys.length <= (req.limit ?? 10_000))
      if (page.next === undefined) return out
      after = page.next
    }
    throw new Error('too many pages')
  }
  const everything = collect({limit: 333})
  assert.is(everything.length, 5000)
  assert.equal([...everything].sort(), [...all].sort())
  const ps = collect({prefix: 'p/', limit: 100})
  assert.equal(ps.sort(), all.filter((k) => k.startsWith('p/')).sort())
  const re = collect({regex: '7$', limit: 7})
  assert.equal(re.sort(), all.filter((k) => k.endsWith('7')).sort())
  assert.equal(svc.listKeys({limit: 100_000}).keys.length, 5000)
  assert.is(svc.listKeys({}).next, undefined)
  // keys removed between pages do not disturb the order
  const first = svc.listKeys({limit: 1000})
  for (const k of first.keys.slice(-10)) svc.remove({key: k})
  const rest = collect({limit: 1000})
  assert.is(rest.length, 4990)
  throwsCode(() => svc.listKeys({limit: 0}), 'INVALID_PARAMS')
})

test.run()
