/**
 * The data commands' contract (SPEC "CLI contract"): --json shapes and exit codes of put, get,
 * rm, ls, query and exists, against a real master and two real segment owners.
 */
import {spawn} from 'node:child_process'
import {existsSync, readdirSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {addressFromReady, BIN, cleanEnv, cleanup, lines, ROOT, run, SANDBOX, startServer, type Server} from './helpers.js'

let master: Server
let address: string
const segments: Server[] = []

interface Exec {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

/** `mooncake ARGS` with `input` on stdin (none: stdin is /dev/null). */
function exec(args: string[], input?: string | Buffer): Promise<Exec> {
  const started = Date.now()
  const child = spawn(process.execPath, [BIN, ...args, '--master', address], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  if (input !== undefined) {
    child.stdin!.on('error', () => {})
    child.stdin!.end(input)
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr, ms: Date.now() - started})
    }),
  )
}

const json = (r: Exec): any => JSON.parse(r.stdout)

/** Stores each key with its own name as the value; fails the test if a put fails. */
async function putAll(keys: string[]): Promise<void> {
  const rs = await Promise.all(keys.map((k) => exec(['put', k, '-'], k)))
  rs.forEach((r, i) => assert.is(r.code, 0, `put ${keys[i]}: ${r.stderr}`))
}

test.before(async () => {
  // Leases of 10 s: longer than any get -> rm below takes even on a loaded machine.
  master = await startServer(['master', '--port', '0', '--metrics-port', '0', '--lease-ttl', '10s'], {readyTimeoutMs: 30_000})
  address = addressFromReady(master.ready)
  segments.push(
    ...(await Promise.all(
      ['seg-a', 'seg-b'].map((name) => startServer(['segment', 'mount', '--size', '64MiB', '--name', name, '--master', address], {readyTimeoutMs: 30_000})),
    )),
  )
})
test.after(cleanup)

test('put from stdin: --json {"key","size","replicas","requestedReplicas","checksum"}; human line on stderr', async () => {
  const r = await exec(['put', 'greeting', '-', '--json'], 'hello\n')
  assert.is(r.code, 0, r.stderr)
  const out = json(r)
  assert.equal(Object.keys(out), ['key', 'size', 'replicas', 'requestedReplicas', 'checksum'])
  assert.equal({...out, checksum: 0}, {key: 'greeting', size: 6, replicas: 1, requestedReplicas: 1, checksum: 0})
  assert.type(out.checksum, 'number')
  assert.is(r.stderr, '')

  const human = await exec(['put', 'greeting2'], 'hello\n') // no FILE, stdin a pipe
  assert.is(human.code, 0, human.stderr)
  assert.is(human.stdout, '')
  assert.is(lines(human.stderr).length, 1)
  assert.match(human.stderr, /^stored greeting2: 6 B, 1\/1 replica\n$/)
  const quiet = await exec(['put', 'greeting3', '-', '--quiet'], 'x')
  assert.is(quiet.code, 0, quiet.stderr)
  assert.is(quiet.stderr, '')
})

test('get to stdout and to a FILE: {"key","size","file"}', async () => {
  const out = await exec(['get', 'greeting'])
  assert.is(out.code, 0, out.stderr)
  assert.is(out.stdout, 'hello\n')
  assert.is(out.stderr, '')
  const dash = await exec(['get', 'greeting', '-'])
  assert.is(dash.stdout, 'hello\n')

  const file = path.join(SANDBOX, 'greeting.txt')
  const r = await exec(['get', 'greeting', file, '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.equal(json(r), {key: 'greeting', size: 6, file})
  const human = await exec(['get', 'greeting', file])
  assert.is(human.code, 0, human.stderr)
  assert.is(human.stdout, '')
  assert.match(human.stderr, /^got greeting: 6 B -> /)
})

test('get --json to stdout is a usage error (exit 2)', async () => {
  const r = await exec(['get', 'greeting', '--json'])
  assert.is(r.code, 2)
  assert.is(json(r).error.code, 'USAGE')
  assert.match(r.stderr, /^mooncake: USAGE: /)
})

test('an existing key: OBJECT_ALREADY_EXISTS (exit 1) unless --upsert', async () => {
  const r = await exec(['put', 'greeting', '-', '--json'], 'other')
  assert.is(r.code, 1)
  assert.equal(json(r), {error: {code: 'OBJECT_ALREADY_EXISTS', message: json(r).error.message}})
  assert.equal(lines(r.stderr).length, 1)
  assert.match(r.stderr, /^mooncake: OBJECT_ALREADY_EXISTS: /)
  const up = await exec(['put', 'greeting', '-', '--upsert', '--json'], 'replaced')
  assert.is(up.code, 0, up.stderr)
  assert.is(json(up).size, 8)
  assert.is((await exec(['get', 'greeting'])).stdout, 'replaced')
})

test('an empty value is INVALID_PARAMS (exit 2): empty stdin, empty file, --size 0', async () => {
  const empty = path.join(SANDBOX, 'empty')
  writeFileSync(empty, '')
  const [stdin, file, size] = await Promise.all([
    exec(['put', 'e1', '-'], ''),
    exec(['put', 'e2', empty]),
    exec(['put', 'e3', '-', '--size', '0'], ''),
  ])
  for (const r of [stdin, file, size]) {
    assert.is(r.code, 2, r.stderr)
    assert.match(r.stderr, /^mooncake: INVALID_PARAMS: /)
  }
})

test('usage errors exit 2: bad size, unknown flag, --size with a FILE, missing key', async () => {
  const rs = await Promise.all([
    exec(['put', 'k', '-', '--size', 'lots'], 'x'),
    exec(['put', 'k', '-', '--bogus'], 'x'),
    exec(['put', 'k', path.join(SANDBOX, 'greeting.txt'), '--size', '3']),
    exec(['get']),
    exec(['put', 'k', '-', '--replicas', '0'], 'x'),
  ])
  for (const r of rs) {
    assert.is(r.code, 2, r.stderr)
    assert.equal(lines(r.stderr).length, 1, r.stderr)
    assert.match(r.stderr, /^mooncake: USAGE: /)
  }
})

test('a missing key: get exit 3 (no file left behind), query exit 3, exists exit 3', async () => {
  const file = path.join(SANDBOX, 'missing.bin')
  const [get, getFile, query, exists] = await Promise.all([
    exec(['get', 'nosuch']),
    exec(['get', 'nosuch', file, '--json']),
    exec(['query', 'nosuch', '--json']),
    exec(['exists', 'nosuch']),
  ])
  assert.is(get.code, 3)
  assert.is(get.stdout, '')
  assert.match(get.stderr, /^mooncake: OBJECT_NOT_FOUND: /)
  assert.is(getFile.code, 3)
  assert.is(json(getFile).error.code, 'OBJECT_NOT_FOUND')
  assert.not.ok(existsSync(file))
  assert.equal(
    readdirSync(SANDBOX).filter((f) => f.includes('missing.bin')),
    [],
    'no temporary file either',
  )
  assert.is(query.code, 3)
  assert.equal(json(query), {objects: [], missing: ['nosuch']})
  assert.is(exists.code, 3)
  assert.is(exists.stdout, 'nosuch\tfalse\n')
})

test('put --replicas 2 places replicas on distinct segments (query --json)', async () => {
  const r = await exec(['put', 'twice', '-', '--replicas', '2', '--json'], 'two copies')
  assert.is(r.code, 0, r.stderr)
  assert.is(json(r).replicas, 2)
  assert.is(json(r).requestedReplicas, 2)
  const q = await exec(['query', 'twice', '--json'])
  assert.is(q.code, 0, q.stderr)
  const {objects, missing} = json(q)
  assert.equal(missing, [])
  assert.is(objects.length, 1)
  const [o] = objects
  assert.equal(Object.keys(o), ['key', 'size', 'version', 'checksum', 'replicas', 'leaseExpiresAt', 'softPinExpiresAt'])
  assert.is(o.key, 'twice')
  assert.is(o.size, 10)
  assert.is(o.checksum, json(r).checksum)
  assert.is(o.softPinExpiresAt, null)
  assert.type(o.leaseExpiresAt, 'number')
  assert.is(o.replicas.length, 2)
  for (const rep of o.replicas) {
    assert.equal(Object.keys(rep), ['type', 'segment', 'endpoint', 'status'])
    assert.is(rep.type, 'memory')
    assert.is(rep.status, 'COMPLETE')
    assert.match(rep.endpoint, /^127\.0\.0\.1:\d+$/)
  }
  assert.equal(o.replicas.map((rep: {segment: string}) => rep.segment).sort(), ['seg-a', 'seg-b'])
  // More replicas than segments: best effort, the result says how many were placed.
  const three = await exec(['put', 'thrice', '-', '--replicas', '3', '--json'], 'x')
  assert.is(three.code, 0, three.stderr)
  assert.is(json(three).replicas, 2)
  assert.is(json(three).requestedReplicas, 3)
})

test('put --soft-pin and --preferred-segment', async () => {
  const r = await exec(['put', 'pinned', '-', '--soft-pin', '--preferred-segment', 'seg-b', '--json'], 'p')
  assert.is(r.code, 0, r.stderr)
  const [o] = json(await exec(['query', 'pinned', '--json'])).objects
  assert.type(o.softPinExpiresAt, 'number')
  assert.ok(o.softPinExpiresAt > Date.now())
  assert.equal(o.replicas.map((rep: {segment: string}) => rep.segment), ['seg-b'])
})

test('query: some keys missing -> exit 4 with the document; human blocks', async () => {
  const r = await exec(['query', 'twice', 'nosuch', '--json'])
  assert.is(r.code, 4)
  const out = json(r)
  assert.equal(out.missing, ['nosuch'])
  assert.equal(
    out.objects.map((o: {key: string}) => o.key),
    ['twice'],
  )
  assert.match(r.stderr, /^mooncake: OBJECT_NOT_FOUND: nosuch/)
  const human = await exec(['query', 'twice'])
  assert.is(human.code, 0, human.stderr)
  assert.match(human.stdout, /^twice\n  size {6}10 B\n  version {3}\d+\n  checksum {2}crc32c [0-9a-f]{8}\n/)
  assert.match(human.stdout, /\n {4}memory COMPLETE {3}seg-[ab] 127\.0\.0\.1:\d+/)
})

test('exists: per key, --json {"KEY":bool}, exit 3 when any is missing', async () => {
  const all = await exec(['exists', 'twice', 'greeting', '--json'])
  assert.is(all.code, 0, all.stderr)
  assert.is(all.stdout, '{"twice":true,"greeting":true}\n')
  const some = await exec(['exists', 'twice', 'nosuch', '__proto__', '--json'])
  assert.is(some.code, 3)
  assert.is(some.stdout, '{"twice":true,"nosuch":false,"__proto__":false}\n')
  const human = await exec(['exists', 'twice', 'nosuch'])
  assert.is(human.code, 3)
  assert.is(human.stdout, 'twice\ttrue\nnosuch\tfalse\n')
})

test('rm: one key {"removed":1,...}; missing -> exit 3; leased -> OBJECT_HAS_LEASE exit 1 unless --force', async () => {
  await putAll(['rm1'])
  const r = await exec(['rm', 'rm1', '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, '{"removed":1,"skipped":0,"keys":["rm1"]}\n')
  const again = await exec(['rm', 'rm1', '--json'])
  assert.is(again.code, 3)
  assert.is(json(again).error.code, 'OBJECT_NOT_FOUND')

  await putAll(['leased'])
  // A read grants a lease (10 s on this master): rm must refuse it right after.
  const got = await exec(['get', 'leased'])
  assert.is(got.code, 0, got.stderr)
  const refused = await exec(['rm', 'leased'])
  assert.is(refused.code, 1, refused.stderr)
  assert.match(refused.stderr, /^mooncake: OBJECT_HAS_LEASE: /)
  const forced = await exec(['rm', 'leased', '--force', '--json'])
  assert.is(forced.code, 0, forced.stderr)
  assert.equal(json(forced), {removed: 1, skipped: 0, keys: ['leased']})
})

test('rm of several keys: all removed exit 0; some failed exit 4 (each on stderr); all missing exit 3', async () => {
  await putAll(['m1', 'm2', 'm3'])
  const ok = await exec(['rm', 'm1', 'm2', '--json'])
  assert.is(ok.code, 0, ok.stderr)
  assert.equal(json(ok), {removed: 2, skipped: 0, keys: ['m1', 'm2']})
  const partial = await exec(['rm', 'm3', 'gone1', 'gone2', '--json'])
  assert.is(partial.code, 4)
  assert.equal(json(partial), {removed: 1, skipped: 2, keys: ['m3']})
  const errs = lines(partial.stderr)
  assert.is(errs.length, 2)
  assert.match(errs[0], /^mooncake: OBJECT_NOT_FOUND: .*gone1/)
  assert.match(errs[1], /^mooncake: OBJECT_NOT_FOUND: .*gone2/)
  const none = await exec(['rm', 'gone1', 'gone2'])
  assert.is(none.code, 3)
  assert.is(none.stdout, '')
  assert.is(lines(none.stderr).length, 2 + 1, 'two failures and the summary')
})

test('rm --regex --dry-run lists what would go, then rm --regex removes it', async () => {
  await putAll(['sess/1/a', 'sess/1/b', 'sess/2/a'])
  const dry = await exec(['rm', '--regex', '^sess/1/', '--dry-run', '--json'])
  assert.is(dry.code, 0, dry.stderr)
  const would = json(dry)
  assert.equal(Object.keys(would), ['removed', 'skipped', 'keys'])
  assert.equal({...would, keys: [...would.keys].sort()}, {removed: 2, skipped: 0, keys: ['sess/1/a', 'sess/1/b']})
  // ls grants no lease (exists would, and the dry run would then count it as skipped).
  const [human, still] = await Promise.all([exec(['rm', '--regex', '^sess/1/', '--dry-run']), exec(['ls', '--prefix', 'sess/1/'])])
  assert.equal(lines(human.stdout).sort(), ['sess/1/a', 'sess/1/b'])
  assert.match(human.stderr, /would remove 2/)
  assert.equal(lines(still.stdout).sort(), ['sess/1/a', 'sess/1/b'], 'a dry run removes nothing')

  const real = await exec(['rm', '--regex', '^sess/1/', '--json'])
  assert.is(real.code, 0, real.stderr)
  assert.is(json(real).removed, 2)
  const left = await exec(['ls', '--prefix', 'sess/'])
  assert.equal(lines(left.stdout), ['sess/2/a'])
})

test('rm --regex skips leased objects: exit 4; a bad regex is exit 2; selectors are exclusive', async () => {
  await putAll(['lease/x'])
  await exec(['exists', 'lease/x'])
  const r = await exec(['rm', '--regex', '^lease/', '--json'])
  assert.is(r.code, 4, r.stderr)
  assert.equal(json(r), {removed: 0, skipped: 1, keys: []})
  assert.match(r.stderr, /^mooncake: PARTIAL_FAILURE: /)
  const [bad, both, nothing, dryKeys] = await Promise.all([
    exec(['rm', '--regex', '(', '--json']),
    exec(['rm', 'k', '--regex', 'x']),
    exec(['rm']),
    exec(['rm', 'k', '--dry-run']),
  ])
  assert.is(bad.code, 2)
  assert.is(json(bad).error.code, 'INVALID_PARAMS')
  for (const u of [both, nothing, dryKeys]) {
    assert.is(u.code, 2, u.stderr)
    assert.match(u.stderr, /^mooncake: USAGE: /)
  }
})

test('ls: prefix, regex, limit, count, --json array', async () => {
  await putAll(['ls/a1', 'ls/a2', 'ls/b1'])
  const [all, prefix, regex, limit, count, countJson, arr, none] = await Promise.all([
    exec(['ls']),
    exec(['ls', '--prefix', 'ls/']),
    exec(['ls', '--regex', '^ls/a']),
    exec(['ls', '--prefix', 'ls/', '--limit', '2']),
    exec(['ls', '--prefix', 'ls/', '--count']),
    exec(['ls', '--regex', '1$', '--prefix', 'ls/', '--count', '--json']),
    exec(['ls', '--prefix', 'ls/', '--json']),
    exec(['ls', '--prefix', 'nothing/', '--json']),
  ])
  for (const r of [all, prefix, regex, limit, count, countJson, arr, none]) assert.is(r.code, 0, r.stderr)
  assert.ok(lines(all.stdout).includes('greeting'))
  assert.equal(lines(prefix.stdout).sort(), ['ls/a1', 'ls/a2', 'ls/b1'])
  assert.equal(lines(regex.stdout).sort(), ['ls/a1', 'ls/a2'])
  assert.is(lines(limit.stdout).length, 2)
  assert.is(count.stdout, '3\n')
  assert.is(countJson.stdout, '{"count":2}\n')
  assert.equal(json(arr).sort(), ['ls/a1', 'ls/a2', 'ls/b1'])
  assert.is(none.stdout, '[]\n')
  const bad = await exec(['ls', '--regex', '(?<=a)b'])
  assert.is(bad.code, 2, 'a pattern the linear-time engine cannot run is refused')
})

test('the master down: exit 5 within --timeout, never a hang', async () => {
  // A port that accepts connections and never answers (worse than a refused one).
  const silent = net.createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as net.AddressInfo).port
  try {
    const dead = `127.0.0.1:${port}`
    const rs = await Promise.all([
      run(['get', 'k', path.join(SANDBOX, 'x'), '--master', dead, '--timeout', '1500ms', '--json']),
      run(['ls', '--master', dead, '--timeout', '1500ms']),
      run(['exists', 'k', '--master', '127.0.0.1:1', '--timeout', '1500ms']),
    ])
    for (const r of rs) {
      assert.is(r.code, 5, r.stderr)
      assert.ok(r.ms < 1500 + 6000, `took ${r.ms} ms`)
      assert.match(r.stderr, /^mooncake: UNAVAILABLE: /)
    }
    assert.is(JSON.parse(rs[0].stdout).error.code, 'UNAVAILABLE')
    assert.not.ok(existsSync(path.join(SANDBOX, 'x')))
  } finally {
    silent.close()
  }
})

test.run()
