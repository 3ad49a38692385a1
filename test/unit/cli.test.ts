import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {colorAllowed} from '../../src/cli/color.js'
import {CommandDeadline} from '../../src/cli/deadline.js'
import {errorLine, toCliError} from '../../src/cli/errors.js'
import {parseDurationFlag} from '../../src/cli/flags.js'
import {createLogger} from '../../src/cli/logger.js'
import {createProgress, PROGRESS_THRESHOLD} from '../../src/cli/progress.js'
import {formatAgo, jsonLine, renderTable} from '../../src/cli/render.js'
import {MooncakeError} from '../../src/lib/errors.js'

test('renderTable aligns columns, right-aligns numbers, trims trailing blanks', () => {
  const rows = [
    {name: 'seg1', size: '1.00 GiB', status: 'OK'},
    {name: 'a-much-longer-name', size: '12 B', status: 'DRAINING'},
  ]
  const text = renderTable(
    [
      {header: 'NAME', get: (r) => r.name},
      {header: 'SIZE', get: (r) => r.size, align: 'right'},
      {header: 'STATUS', get: (r) => r.status},
    ],
    rows,
  )
  assert.is(
    text,
    ['NAME                    SIZE  STATUS', 'seg1                1.00 GiB  OK', 'a-much-longer-name      12 B  DRAINING'].join('\n'),
  )
  assert.is(renderTable([{header: 'X', get: () => ''}], []), 'X')
})

test('formatAgo and jsonLine', () => {
  assert.is(formatAgo(250), '250ms ago')
  assert.is(formatAgo(-1), 'never')
  assert.is(jsonLine({a: [1, 2]}), '{"a":[1,2]}\n')
})

test('parseDurationFlag: milliseconds, or INVALID_PARAMS (exit 2) naming the flag', () => {
  assert.is(parseDurationFlag('stall-timeout', '1.5s'), 1500)
  assert.is(parseDurationFlag('lease-ttl', '250'), 250)
  try {
    parseDurationFlag('stall-timeout', 'bogus')
    assert.unreachable('accepted a bad duration')
  } catch (err) {
    assert.instance(err, MooncakeError)
    assert.is((err as MooncakeError).code, 'INVALID_PARAMS')
    assert.match((err as MooncakeError).message, /^--stall-timeout: bad duration "bogus"/)
    assert.is(toCliError(err).code, 'INVALID_PARAMS')
  }
})

test('toCliError: oclif parse errors become one-line USAGE', () => {
  const parse = Object.assign(new Error('Missing 1 required arg:\nname  segment name\nSee more help with --help'), {
    oclif: {exit: 2},
  })
  const err = toCliError(parse, 'segment:unmount')
  assert.is(err.code, 'USAGE')
  assert.is(err.message, 'Missing 1 required arg: name (see: mooncake segment unmount --help)')
  const flag = Object.assign(new Error('The following error occurred:\n  \x1b[2mExpected an integer\x1b[22m\nSee more help with --help'), {
    oclif: {exit: 2},
  })
  assert.is(toCliError(flag).message, 'The following error occurred: Expected an integer')
})

test('toCliError: ours pass through, codes and system errors are mapped, the rest is INTERNAL_ERROR', () => {
  const ours = new MooncakeError('OBJECT_NOT_FOUND', 'no key')
  assert.is(toCliError(ours), ours)
  const coded = Object.assign(new Error('gone'), {code: 'SEGMENT_NOT_FOUND'})
  assert.is(toCliError(coded).code, 'SEGMENT_NOT_FOUND')
  const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {code: 'ENOENT'})
  assert.is(toCliError(enoent).code, 'FILE_NOT_FOUND')
  assert.is(toCliError(new TypeError('boom')).code, 'INTERNAL_ERROR')
  assert.is(toCliError('text').message, 'text')
})

test('errorLine is exactly one line: mooncake: CODE: message', () => {
  assert.is(errorLine(new MooncakeError('UNAVAILABLE', 'first\nsecond')), 'mooncake: UNAVAILABLE: first second')
})

test('deadline: UNAVAILABLE while waiting for a remote, DEADLINE_EXCEEDED otherwise', async () => {
  // The deadline counts from process start: give it room beyond the time already spent.
  const base = Math.ceil(performance.now())
  const waiting = new CommandDeadline(base + 30, 0)
  waiting.waitingFor = 'master 127.0.0.1:1'
  const never = new Promise(() => {})
  const a = await waiting.race(never).catch((e: MooncakeError) => e)
  assert.instance(a, MooncakeError)
  assert.is((a as MooncakeError).code, 'UNAVAILABLE')
  assert.match((a as MooncakeError).message, 'master 127.0.0.1:1 not reachable within')
  assert.ok(waiting.signal.aborted)

  const busy = new CommandDeadline(Math.ceil(performance.now()) + 30, 0)
  const b = await busy.race(never).catch((e: MooncakeError) => e)
  assert.is((b as MooncakeError).code, 'DEADLINE_EXCEEDED')
})

test('deadline: results and errors of the work win when in time; interrupt; cancel; none', async () => {
  const d = new CommandDeadline(Math.ceil(performance.now()) + 5000)
  assert.is(await d.race(Promise.resolve(7)), 7)
  const failed: MooncakeError = await d.race(Promise.reject(new MooncakeError('OBJECT_NOT_FOUND', 'x'))).catch((e) => e)
  assert.is(failed.code, 'OBJECT_NOT_FOUND')
  assert.ok(d.remaining() > 1000 && d.remaining() <= 5100, String(d.remaining()))
  d.cancel()
  const pending = d.race(new Promise(() => {}))
  d.interrupt()
  assert.is(((await pending.catch((e) => e)) as MooncakeError).code, 'INTERRUPTED')
  assert.is(((await d.race(Promise.resolve(1)).catch((e) => e)) as MooncakeError).code, 'INTERRUPTED', 'stays failed')

  const none = new CommandDeadline(0)
  assert.is(none.remaining(), Infinity)
  assert.is(none.remainingMs(), 2 ** 31 - 1)
})

test('progress: nothing unless a TTY, enabled, and a large transfer', () => {
  let written = ''
  const tty = {isTTY: true, columns: 100, write: (s: string) => ((written += s), true)} as unknown as NodeJS.WriteStream
  const pipe = {isTTY: false, write: (s: string) => ((written += s), true)} as unknown as NodeJS.WriteStream
  createProgress({label: 'k', total: 2 * PROGRESS_THRESHOLD, stream: pipe}).update(1)
  createProgress({label: 'k', total: 1024, stream: tty}).update(1)
  createProgress({label: 'k', total: 2 * PROGRESS_THRESHOLD, stream: tty, enabled: false}).update(1)
  assert.is(written, '')
  const bar = createProgress({label: 'key', total: 2 * PROGRESS_THRESHOLD, stream: tty})
  bar.update(PROGRESS_THRESHOLD)
  assert.match(written, 'key [')
  assert.match(written, ' 50% ')
  bar.done()
  assert.ok(written.endsWith('\r\x1b[2K'))
})

test('logger: levels filter, servers stamp the time', () => {
  let out = ''
  const stream = {write: (s: string) => (out += s)}
  const log = createLogger({level: 'warn', stream})
  log.info('hidden')
  log.warn('shown')
  assert.is(out, 'mooncake: warn: shown\n')
  out = ''
  createLogger({level: 'debug', stream, timestamps: true}).debug('x')
  assert.match(out, /^\d{4}-\d\d-\d\dT\S+ DEBUG x\n$/)
})

test('colour only on a terminal without NO_COLOR', () => {
  assert.is(colorAllowed({isTTY: true}, {}), true)
  assert.is(colorAllowed({isTTY: true}, {NO_COLOR: '1'}), false)
  assert.is(colorAllowed({isTTY: true}, {NO_COLOR: ''}), true)
  assert.is(colorAllowed({isTTY: false}, {}), false)
})

test.run()
