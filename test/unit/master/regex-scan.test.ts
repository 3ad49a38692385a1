// Resumable regex scans (src/lib/master/regex-scan.ts): chunked results equal the one-shot ones,
// removal counts are exact per chunk, cursors are checked, and the driver yields and gives up at
// its deadline with DEADLINE_EXCEEDED.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {isMooncakeError} from '../../../src/lib/errors.js'
import {driveRegexScan, type RegexScanChunk, type RegexScanCursor} from '../../../src/lib/master/regex-scan.js'
import {MiB, mount, put, setup, start, throwsCode} from './helpers.js'

function scanAll(svc: ReturnType<typeof setup>['svc'], pattern: string, mode: 'replicas' | 'query' | 'remove', extra: {force?: boolean; dryRun?: boolean} = {}) {
  const chunks: RegexScanChunk[] = []
  let cursor: RegexScanCursor | undefined
  do {
    const c = svc.regexScan(pattern, {mode, cursor, maxKeys: 3, ...extra})
    assert.ok(c.tested <= 3)
    chunks.push(c)
    cursor = c.next
  } while (cursor !== undefined)
  return chunks
}

test('chunked scans (3 keys per chunk) match the one-shot calls', () => {
  const {svc} = setup({shardCount: 4})
  mount(svc, 's', MiB)
  for (let i = 0; i < 40; i++) put(svc, `k${i}`, 10)
  start(svc, 'k-writing', 10)
  const chunks = scanAll(svc, '^k[0-9]*1$', 'query')
  assert.ok(chunks.length > 10)
  const keys = chunks.flatMap((c) => c.keys).sort()
  assert.equal(keys, svc.queryByRegex('^k[0-9]*1$').map((o) => o.key).sort())
  assert.equal(keys, ['k1', 'k11', 'k21', 'k31'])
  const replicas = scanAll(svc, '^k3', 'replicas').flatMap((c) => c.keys).sort()
  assert.equal(replicas, [...svc.getReplicaListByRegex('^k3').keys()].sort())
})

test('chunked remove: exact counts, leased objects skipped, dryRun removes nothing', () => {
  const {svc} = setup({shardCount: 4, leaseTtlMs: 1000})
  mount(svc, 's', MiB)
  for (let i = 0; i < 30; i++) put(svc, `k${i}`, 10)
  svc.getReplicaList('k1') // leased
  start(svc, 'k-writing', 10)
  const dry = scanAll(svc, '^k', 'remove', {dryRun: true})
  assert.is(dry.flatMap((c) => c.keys).length, 29)
  assert.is(dry.reduce((n, c) => n + c.skipped, 0), 2)
  assert.is(svc.queryByRegex('^k').length, 31)
  const real = scanAll(svc, '^k', 'remove')
  const removed = real.flatMap((c) => c.keys)
  assert.is(removed.length, 29)
  assert.is(real.reduce((n, c) => n + c.skipped, 0), 2)
  assert.equal(svc.queryByRegex('^k').map((o) => o.key).sort(), ['k-writing', 'k1'])
})

test('cursors: another pattern or mode is refused; a bad pattern is INVALID_PARAMS', () => {
  const {svc} = setup({shardCount: 4})
  mount(svc, 's', MiB)
  for (let i = 0; i < 10; i++) put(svc, `k${i}`, 10)
  const c = svc.regexScan('k', {mode: 'query', maxKeys: 1})
  assert.ok(c.next !== undefined)
  throwsCode(() => svc.regexScan('x', {mode: 'query', cursor: c.next}), 'INVALID_PARAMS')
  throwsCode(() => svc.regexScan('k', {mode: 'remove', cursor: c.next}), 'INVALID_PARAMS')
  throwsCode(() => svc.regexScan('(', {mode: 'query'}), 'INVALID_PARAMS')
  throwsCode(() => svc.regexScan('k', {mode: 'nope' as 'query'}), 'INVALID_PARAMS')
})

test('ListKeys with budgetMs: short pages whose next continues the same listing', () => {
  const {svc} = setup({shardCount: 16})
  mount(svc, 's', MiB)
  for (let i = 0; i < 100; i++) put(svc, `k${i}`, 10)
  const all = svc.listKeys({regex: '7', limit: 1000}).keys
  const got: string[] = []
  let after: string | undefined
  let pages = 0
  for (;;) {
    const page = svc.listKeys({regex: '7', limit: 1000, after, budgetMs: 0})
    got.push(...page.keys)
    pages++
    if (page.next === undefined) break
    after = page.next
  }
  assert.ok(pages > 2, `${pages} pages`)
  assert.equal(got, all)
})

test('driveRegexScan: yields between chunks and stops at the deadline with DEADLINE_EXCEEDED', async () => {
  const {svc} = setup({shardCount: 4})
  mount(svc, 's', MiB)
  for (let i = 0; i < 200; i++) put(svc, `${'a'.repeat(500)}-${i}`, 10)
  let chunks = 0
  const seen: string[] = []
  await driveRegexScan(svc, '-1', {mode: 'query'}, (c) => (chunks++, seen.push(...c.keys)), {sliceMs: 0})
  assert.ok(chunks > 100, `${chunks} chunks`)
  assert.is(seen.length, svc.queryByRegex('-1').length)
  let err: unknown
  try {
    await driveRegexScan(svc, '(a+)+$', {mode: 'query'}, () => {}, {sliceMs: 0, deadline: Date.now()})
  } catch (e) {
    err = e
  }
  assert.ok(isMooncakeError(err, 'DEADLINE_EXCEEDED'), String(err))
})

test.run()
