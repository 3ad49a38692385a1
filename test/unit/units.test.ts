import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeError} from '../../src/lib/errors.js'
import {formatBytes, parseDuration, parseSize} from '../../src/lib/units.js'

test('sizes: binary and decimal units, case-insensitive, spaces allowed', () => {
  assert.is(parseSize('1GiB'), 2 ** 30)
  assert.is(parseSize('4 GB'), 4e9)
  assert.is(parseSize('512mib'), 512 * 2 ** 20)
  assert.is(parseSize('64KiB'), 65536)
  assert.is(parseSize('1TiB'), 2 ** 40)
  assert.is(parseSize('123'), 123)
  assert.is(parseSize('1.5KiB'), 1536)
  assert.is(parseSize(42), 42)
})

test('sizes: bad input is a USAGE error naming the input', () => {
  for (const bad of ['', 'abc', '1XB', '-5', '1.3B', '10 GiBs']) {
    try {
      parseSize(bad)
      assert.unreachable(`accepted ${bad}`)
    } catch (err) {
      assert.instance(err, MooncakeError)
      assert.is((err as MooncakeError).code, 'USAGE')
      assert.ok((err as Error).message.includes(bad))
    }
  }
})

test('durations: ms, s, m, h and bare milliseconds', () => {
  assert.is(parseDuration('500ms'), 500)
  assert.is(parseDuration('10s'), 10_000)
  assert.is(parseDuration('30m'), 1_800_000)
  assert.is(parseDuration('24h'), 86_400_000)
  assert.is(parseDuration('250'), 250)
  assert.is(parseDuration('1.5s'), 1500)
  assert.throws(() => parseDuration('10 days'), /bad duration/)
  assert.throws(() => parseDuration('s'), /bad duration/)
})

test('formatBytes', () => {
  assert.is(formatBytes(512), '512 B')
  assert.is(formatBytes(1536), '1.50 KiB')
  assert.is(formatBytes(2 ** 30), '1.00 GiB')
})

test.run()
