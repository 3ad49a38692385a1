import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {ErrorCode, exitCodeFor, MooncakeError, toMooncakeError} from '../../src/lib/errors.js'
import {compileSearchRegex} from '../../src/lib/regex-engine.js'

test('error codes keep the original numbers', () => {
  assert.is(ErrorCode.OBJECT_NOT_FOUND, -704)
  assert.is(ErrorCode.NO_AVAILABLE_HANDLE, -200)
  assert.is(ErrorCode.LEASE_EXPIRED, -707)
  assert.is(new MooncakeError(-706, 'x').code, 'OBJECT_HAS_LEASE')
  assert.is(new MooncakeError('CHECKSUM_MISMATCH', 'x').value, -801)
})

test('exit codes follow the CLI contract', () => {
  assert.is(exitCodeFor('OBJECT_NOT_FOUND'), 3)
  assert.is(exitCodeFor('SEGMENT_NOT_FOUND'), 3)
  assert.is(exitCodeFor('INVALID_PARAMS'), 2)
  assert.is(exitCodeFor('PARTIAL_FAILURE'), 4)
  assert.is(exitCodeFor('UNAVAILABLE'), 5)
  assert.is(exitCodeFor('UNAUTHENTICATED'), 6)
  assert.is(exitCodeFor('INTERRUPTED'), 130)
  assert.is(exitCodeFor('NO_AVAILABLE_HANDLE'), 1)
  assert.is(exitCodeFor('OBJECT_ALREADY_EXISTS'), 1)
})

test('toMooncakeError wraps foreign errors and keeps ours', () => {
  const ours = new MooncakeError('TRANSFER_FAIL', 'boom')
  assert.is(toMooncakeError(ours), ours)
  const wrapped = toMooncakeError(new Error('x'), 'RPC_FAIL')
  assert.is(wrapped.code, 'RPC_FAIL')
  assert.equal(wrapped.toJSON(), {code: 'RPC_FAIL', message: 'x'})
})

test('regex: search semantics, linear-time on pathological input, refusal of non-linear features', () => {
  assert.ok(compileSearchRegex('b.r').test('foobarbaz'))
  const evil = compileSearchRegex('(a+)+$')
  const t0 = Date.now()
  assert.not.ok(evil.test('a'.repeat(100_000) + '!'))
  assert.ok(Date.now() - t0 < 2000, 'pathological pattern took too long')
  for (const bad of ['(a)\\1', '(?=a)b', '[', '']) {
    try {
      compileSearchRegex(bad)
      assert.unreachable(`accepted ${bad}`)
    } catch (err) {
      assert.is((err as MooncakeError).code, 'INVALID_PARAMS')
    }
  }
})

test.run()
