// The committed bindings match the .proto, and the loader and the handlers cover every rpc.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {masterHandlers} from '../../src/lib/master/grpc-handlers.js'
import {loadMooncakeProto, protoLoaderOptions} from '../../src/lib/proto/loader.js'
import {FakeMaster} from './proto-fake-master.js'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..')
const committed = path.join(root, 'src/lib/proto/generated')

function files(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    return statSync(file).isDirectory() ? files(file, base) : [path.relative(base, file)]
  })
}

test('generated bindings are up to date (run: node scripts/gen-proto-types.mjs)', () => {
  const out = mkdtempSync(path.join(tmpdir(), 'mooncake-proto-'))
  try {
    execFileSync(process.execPath, [path.join(root, 'scripts/gen-proto-types.mjs'), '--out', out], {stdio: 'pipe'})
    const fresh = files(out).sort()
    assert.equal(files(committed).sort(), fresh)
    for (const f of fresh) assert.is(readFileSync(path.join(committed, f), 'utf8'), readFileSync(path.join(out, f), 'utf8'), f)
  } finally {
    rmSync(out, {recursive: true, force: true})
  }
})

test('loader options are the ones the generator used', () => {
  const o = protoLoaderOptions()
  assert.is(o.longs, Number)
  assert.is(o.enums, String)
  assert.is(o.defaults, true)
  assert.is(o.oneofs, true)
  assert.is(o.keepCase, false)
})

test('every rpc of mooncake.v1.Master has a handler', () => {
  const rpcs = Object.keys(loadMooncakeProto().master).sort()
  const handlers = Object.keys(masterHandlers({service: new FakeMaster(), signal: new AbortController().signal})).sort()
  assert.equal(handlers, rpcs)
  assert.ok(rpcs.includes('GetAllKeys') && loadMooncakeProto().master.GetAllKeys.responseStream)
  assert.ok(rpcs.includes('Pipeline') && loadMooncakeProto().master.Pipeline.requestStream && loadMooncakeProto().master.Pipeline.responseStream)
  assert.is(rpcs.length, 34)
})

test.run()
