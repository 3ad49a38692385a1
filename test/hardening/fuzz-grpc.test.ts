// A deterministic run of the gRPC fuzzer (bench/fuzz/grpc.ts) against a master in its own
// process: every method with hostile, malformed and oversized requests and pathological regexes.
// Each answer must be success or a clean error (mooncake-error-code, never INTERNAL_ERROR) within
// the deadline; the master keeps serving, and a ping loop on its own thread never waits > 200 ms.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {runGrpcFuzz} from '../../bench/fuzz/grpc.js'
import {killAll} from '../helpers/processes.js'

test.after(async () => {
  await killAll()
})

test('every method, hostile requests: clean errors, no stall, the master keeps serving', async () => {
  const report = await runGrpcFuzz({seed: 1, rounds: 60, keys: 200, keyLength: 64})
  const {violations, ...summary} = report
  console.log(JSON.stringify(summary))
  assert.equal(violations, [], violations.join('\n'))
  assert.is(report.methods, 34)
  // Every unary method's cases go out twice: as calls and as Pipeline frames.
  assert.ok(report.calls >= 2 * 29 * 70, `only ${report.calls} calls`)
  assert.ok((report.byOutcome.INVALID_PARAMS ?? 0) > 500, 'hostile requests are refused with INVALID_PARAMS')
  assert.ok((report.byOutcome.OK ?? 0) > 0)
  assert.ok(report.pings > 20, `only ${report.pings} pings`)
  assert.ok(report.maxPingMs <= 200, `a ping took ${report.maxPingMs} ms`)
})

// docs/reliability.md finding 2 (fixed): GetReplicaListByRegex / QueryByRegex / RemoveByRegex scan in
// 5 ms chunks with the event loop free in between, so even `(\w+\s?)+$` over thousands of long keys
// (seconds of CPU) leaves pings answered; a scan that outlives the call's deadline answers
// DEADLINE_EXCEEDED (with mooncake-error-code) rather than running on.
test('pathological regexes over 3000 keys of up to 1000 bytes do not stall the master', async () => {
  const report = await runGrpcFuzz({seed: 1, rounds: 0, keys: 3000, keyLength: 1000, regexOnly: true})
  assert.equal(report.violations, [])
})

test.run()
