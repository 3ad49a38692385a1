// The etcd endpoint list shared by the HA and P2P etcd clients (src/lib/etcd-endpoints.ts).
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {parseEndpoints} from '../../src/lib/etcd-endpoints.js'
import {MooncakeError} from '../../src/lib/errors.js'

function rejects(input: string | string[], message: RegExp): void {
  try {
    parseEndpoints(input)
  } catch (err) {
    assert.instance(err, MooncakeError)
    assert.is((err as MooncakeError).code, 'INVALID_PARAMS')
    assert.match((err as MooncakeError).message, message)
    return
  }
  assert.unreachable(`parseEndpoints(${JSON.stringify(input)}) did not throw`)
}

test('a single endpoint gets http://', () => {
  assert.equal(parseEndpoints('127.0.0.1:2379'), ['http://127.0.0.1:2379'])
  assert.equal(parseEndpoints(['etcd-0:2379']), ['http://etcd-0:2379'])
  assert.equal(parseEndpoints('  [::1]:2379  '), ['http://[::1]:2379'])
})

test('a comma-separated list with spaces, in order; blank items are skipped', () => {
  assert.equal(parseEndpoints('127.0.0.1:2379, h2:2379 ,h3:2379'), ['http://127.0.0.1:2379', 'http://h2:2379', 'http://h3:2379'])
  assert.equal(parseEndpoints('h1:2379,,h2:2379,'), ['http://h1:2379', 'http://h2:2379'])
  // Array items are split too: a repeated --etcd flag may itself hold a list.
  assert.equal(parseEndpoints(['h1:2379, h2:2379', ' h3:2379']), ['http://h1:2379', 'http://h2:2379', 'http://h3:2379'])
})

test('http:// and https:// URLs are kept, the scheme lowercased', () => {
  assert.equal(parseEndpoints('http://h1:2379, https://h2:2379'), ['http://h1:2379', 'https://h2:2379'])
  assert.equal(parseEndpoints(['HTTPS://h1:2379', 'Http://h2:2379']), ['https://h1:2379', 'http://h2:2379'])
})

test('no endpoint at all: INVALID_PARAMS naming --etcd and MOONCAKE_ETCD', () => {
  for (const input of ['', '   ', ' , ,', [], ['', ' ']]) rejects(input, /^no etcd endpoint given \(--etcd or MOONCAKE_ETCD\)$/)
})

test('an invalid entry: INVALID_PARAMS naming the entry and the accepted forms', () => {
  rejects('h1:2379, unix:///run/etcd.sock', /^bad etcd endpoint "unix:\/\/\/run\/etcd.sock" \(scheme unix:\/\/ is not supported\): expected HOST:PORT, http:\/\/HOST:PORT or https:\/\/HOST:PORT$/)
  rejects('grpc://h1:2379', /"grpc:\/\/h1:2379" \(scheme grpc:\/\/ is not supported\)/)
  rejects('https://', /"https:\/\/" \(no address\)/)
  rejects(['h1:2379', 'h2 :2379'], /"h2 :2379" \(whitespace in the address\)/)
})

test.run()
