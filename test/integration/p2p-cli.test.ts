/**
 * The `mooncake p2p` commands as scripts use them (node bin/run.js after `npm run build`),
 * against a real etcd: ready lines, --json shapes, exit codes, and stopping a serving process
 * from another one.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {startEtcd, type EtcdServer} from '../helpers/etcd.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const MiB = 2 ** 20

let etcd: EtcdServer
let dir: string
let env: NodeJS.ProcessEnv
const children = new Set<ChildProcess>()

test.before(async () => {
  if (!existsSync(path.join(ROOT, 'dist', 'commands', 'p2p', 'register.js'))) throw new Error('run `npm run build` first')
  etcd = await startEtcd()
  dir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-p2p-cli-'))
  env = {...process.env, MOONCAKE_ETCD: etcd.endpoint, MOONCAKE_CLUSTER_ID: 'cli', MOONCAKE_LEASE_TTL: '2s', NO_COLOR: '1'}
  delete env.MOONCAKE_TOKEN
})

test.after.each(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
})

test.after(async () => {
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

interface Server {
  child: ChildProcess
  firstLine: Promise<string>
  exited: Promise<{code: number | null; stderr: string}>
}

/** A long-running command; resolves its first stdout line (the ready line). */
function serve(args: string[]): Server {
  const child = spawn(process.execPath, [BIN, ...args], {env, stdio: ['ignore', 'pipe', 'pipe']})
  children.add(child)
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<{code: number | null; stderr: string}>((resolve) => child.on('exit', (code) => resolve({code, stderr})))
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({input: child.stdout!}).once('line', resolve)
    void exited.then(({code}) => reject(new Error(`mooncake ${args.join(' ')} exited ${code} before its ready line: ${stderr}`)))
  })
  firstLine.catch(() => {})
  return {child, firstLine, exited}
}

/** A one-shot command: exit code, stdout, stderr. */
function run(args: string[]): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {env, stdio: ['ignore', 'pipe', 'pipe']})
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({code, stdout, stderr}))
  })
}

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

test('register serves files; list, get (file and directory), errors and exit codes; unregister stops it', async () => {
  const a = randomBytes(5 * MiB + 3)
  const b = randomBytes(MiB)
  writeFileSync(path.join(dir, 'model-a.bin'), a)
  writeFileSync(path.join(dir, 'model-b.bin'), b)
  const seeder = serve(['p2p', 'register', 'cli/model', path.join(dir, 'model-a.bin'), path.join(dir, 'model-b.bin'), '--shard-size', '1MiB', '--peer', 'seed'])
  const ready = await seeder.firstLine
  assert.match(ready, new RegExp(`^ready p2p cli/model ${a.length + b.length} bytes as seed at 127\\.0\\.0\\.1:\\d+$`))

  const single = randomBytes(100_000)
  writeFileSync(path.join(dir, 'single.bin'), single)
  const other = serve(['p2p', 'register', 'other', path.join(dir, 'single.bin'), '--shard-size', '64KiB', '--json'])
  const otherReady = JSON.parse(await other.firstLine) as Record<string, unknown>
  assert.is(otherReady.ready, true)
  assert.is(otherReady.name, 'other')
  assert.is(otherReady.bytes, 100_000)

  const listed = await run(['p2p', 'list', 'cli/', '--json'])
  assert.is(listed.code, 0, listed.stderr)
  assert.equal(JSON.parse(listed.stdout), [{name: 'cli/model', maxShardSize: MiB, totalSize: a.length + b.length, sizeList: [a.length, b.length]}])
  const human = await run(['p2p', 'list'])
  assert.is(human.code, 0)
  assert.match(human.stdout, /^NAME\s+SIZE\s+SHARD\s+PARTS/)
  assert.match(human.stdout, /cli\/model/)
  assert.match(human.stdout, /other/)

  // A several-file payload into a directory (created), named as registered.
  const out = path.join(dir, 'out')
  const got = await run(['p2p', 'get', 'cli/model', out, '--json'])
  assert.is(got.code, 0, got.stderr)
  const summary = JSON.parse(got.stdout) as {name: string; bytes: number; seconds: number}
  assert.is(summary.name, 'cli/model')
  assert.is(summary.bytes, a.length + b.length)
  assert.type(summary.seconds, 'number')
  assert.equal(readdirSync(out).sort(), ['model-a.bin', 'model-b.bin'])
  assert.is(sha(readFileSync(path.join(out, 'model-a.bin'))), sha(a))
  assert.is(sha(readFileSync(path.join(out, 'model-b.bin'))), sha(b))
  // A one-file payload into a file.
  const file = path.join(dir, 'single-copy')
  const one = await run(['p2p', 'get', 'other', file])
  assert.is(one.code, 0, one.stderr)
  assert.match(one.stdout, /^downloaded other: /)
  assert.is(sha(readFileSync(file)), sha(single))

  // Errors: one line on stderr, the JSON error on stdout with --json, exit codes by code.
  const dup = await run(['p2p', 'register', 'cli/model', path.join(dir, 'single.bin')])
  assert.is(dup.code, 1)
  assert.match(dup.stderr, /^mooncake: PAYLOAD_ALREADY_EXISTS: payload "cli\/model" is already registered by peer "seed"/m)
  const missing = await run(['p2p', 'get', 'nope', path.join(dir, 'nope'), '--json'])
  assert.is(missing.code, 3)
  assert.equal(JSON.parse(missing.stdout).error.code, 'PAYLOAD_NOT_FOUND')
  assert.match(missing.stderr, /^mooncake: PAYLOAD_NOT_FOUND: /m)
  const noEtcd = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'p2p', 'list'], {env: {...env, MOONCAKE_ETCD: ''}, stdio: 'ignore'})
    child.on('exit', resolve)
  })
  assert.is(noEtcd, 2)
  const badSize = await run(['p2p', 'register', 'x', path.join(dir, 'single.bin'), '--shard-size', 'lots'])
  assert.is(badSize.code, 2)
  // Out of range: a usage error naming the flag, even with etcd unreachable.
  const tooSmall = await run(['p2p', 'register', 'x', path.join(dir, 'single.bin'), '--shard-size', '1KiB', '--etcd', '127.0.0.1:1'])
  assert.is(tooSmall.code, 2, tooSmall.stderr)
  assert.match(tooSmall.stderr, /^mooncake: USAGE: --shard-size 1KiB is out of range: use 4KiB to 64MiB\n$/)

  // Unregister from another process: acknowledged, and the serving process exits 0.
  const unreg = await run(['p2p', 'unregister', 'cli/model', '--json'])
  assert.is(unreg.code, 0, unreg.stderr)
  assert.equal(JSON.parse(unreg.stdout), {name: 'cli/model', ok: true})
  assert.is((await seeder.exited).code, 0)
  const again = await run(['p2p', 'unregister', 'cli/model'])
  assert.is(again.code, 3)

  // SIGINT: the register process unregisters and exits 0.
  other.child.kill('SIGINT')
  assert.is((await other.exited).code, 0)
  const empty = await run(['p2p', 'list', '--json'])
  assert.equal(JSON.parse(empty.stdout), [])
})

test('get --seed keeps serving with a ready line until delete-replica; its replica serves others', async () => {
  const data = randomBytes(3 * MiB)
  writeFileSync(path.join(dir, 'seeded.bin'), data)
  const seeder = serve(['p2p', 'register', 'seeded', path.join(dir, 'seeded.bin'), '--shard-size', '1MiB', '--peer', 'origin'])
  await seeder.firstLine
  const copy = path.join(dir, 'seeded-copy')
  const seeding = serve(['p2p', 'get', 'seeded', copy, '--seed', '--peer', 'copy1', '--json'])
  const ready = JSON.parse(await seeding.firstLine) as Record<string, unknown>
  assert.is(ready.ready, true)
  assert.is(ready.name, 'seeded')
  assert.is(ready.bytes, 3 * MiB)
  assert.is(ready.peer, 'copy1')
  assert.is(sha(readFileSync(copy)), sha(data))

  // The origin goes away: a new download is served by the seeding copy alone.
  seeder.child.kill('SIGTERM')
  assert.is((await seeder.exited).code, 0)
  const listed = JSON.parse((await run(['p2p', 'list', '--json'])).stdout) as Array<{name: string}>
  assert.equal(listed.map((p) => p.name), ['seeded'], 'the record stays while a replica serves it')
  const second = await run(['p2p', 'get', 'seeded', path.join(dir, 'seeded-2'), '--json'])
  assert.is(second.code, 0, second.stderr)
  assert.is(sha(readFileSync(path.join(dir, 'seeded-2'))), sha(data))

  const del = await run(['p2p', 'delete-replica', 'seeded', '--json'])
  assert.is(del.code, 0, del.stderr)
  assert.equal(JSON.parse(del.stdout), {name: 'seeded', ok: true})
  assert.is((await seeding.exited).code, 0)
  assert.equal(JSON.parse((await run(['p2p', 'list', '--json'])).stdout), [], 'the last holder took the record with it')
})

test('get: --timeout bounds the download; --timeout 0 waits for a holder that is slow', async () => {
  const data = randomBytes(2 * MiB + 11)
  const src = path.join(dir, 'slow.bin')
  writeFileSync(src, data)
  // A long etcd lease: the holder stays listed while it is stopped.
  const holder = serve(['p2p', 'register', 'slow/ckpt', src, '--shard-size', '1MiB', '--peer', 'slow-holder', '--lease-ttl', '120s'])
  await holder.firstLine
  // A stopped holder accepts connections (the kernel does) but answers nothing: the download waits.
  holder.child.kill('SIGSTOP')
  try {
    const bounded = await run(['p2p', 'get', 'slow/ckpt', path.join(dir, 'slow-bounded.bin'), '--timeout', '3s', '--stall-timeout', '120s'])
    assert.is(bounded.code, 1, bounded.stderr)
    assert.match(bounded.stderr, /^mooncake: DEADLINE_EXCEEDED: /m)
    assert.not.ok(existsSync(path.join(dir, 'slow-bounded.bin')))

    const started = Date.now()
    const pending = run(['p2p', 'get', 'slow/ckpt', path.join(dir, 'slow-copy.bin'), '--timeout', '0', '--stall-timeout', '120s', '--json'])
    // Longer than the bounded get above waited, then let the bytes flow.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    holder.child.kill('SIGCONT')
    const got = await pending
    assert.is(got.code, 0, got.stderr)
    assert.ok(Date.now() - started >= 5_000)
    assert.is((JSON.parse(got.stdout) as {bytes: number}).bytes, data.length)
    assert.is(sha(readFileSync(path.join(dir, 'slow-copy.bin'))), sha(data))
  } finally {
    holder.child.kill('SIGCONT')
    holder.child.kill('SIGINT')
    await holder.exited
  }
})

test.run()
