/**
 * Binary round trips through the CLI (put/get from files, stdin and stdout pipes, 1 B to
 * 256 MiB of random bytes, sha256 compared), stdin of unknown length, --size, atomic gets and
 * a reader that goes away early.
 */
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream, existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {once} from 'node:events'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {runIntoHead} from './early-reader.js'
import {addressFromReady, BIN, cleanEnv, cleanup, ROOT, SANDBOX, startServer, type Server} from './helpers.js'

let address: string
const servers: Server[] = []
const MiB = 2 ** 20

interface Exec {
  code: number | null
  stdout: Buffer
  stderr: string
}

/**
 * `mooncake ARGS`; stdin from `input` (a Buffer, or a file streamed in chunks, i.e. of unknown
 * length to the CLI); stdout collected or hashed.
 */
function exec(args: string[], options: {input?: Buffer | {file: string}; hashStdout?: boolean} = {}): Promise<Exec & {sha?: string}> {
  const child = spawn(process.execPath, [BIN, ...args, '--master', address], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  const chunks: Buffer[] = []
  const hash = createHash('sha256')
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (options.hashStdout ? hash.update(d) : chunks.push(d)))
  child.stderr!.on('data', (d) => (stderr += d))
  if (options.input !== undefined) {
    child.stdin!.on('error', () => {})
    if (Buffer.isBuffer(options.input)) child.stdin!.end(options.input)
    else createReadStream(options.input.file, {highWaterMark: 256 * 1024}).pipe(child.stdin!)
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout: Buffer.concat(chunks), stderr, sha: options.hashStdout ? hash.digest('hex') : undefined})
    }),
  )
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** A file of `size` deterministic pseudo-random bytes (written in 1 MiB blocks). */
async function randomFile(name: string, size: number): Promise<string> {
  const file = path.join(SANDBOX, name)
  const out = createWriteStream(file)
  for (let done = 0; done < size; done += MiB) {
    if (!out.write(randomBytes(Math.min(MiB, size - done)))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return file
}

test.before(async () => {
  const master = await startServer(['master', '--port', '0', '--metrics-port', '0'], {readyTimeoutMs: 30_000})
  servers.push(master)
  address = addressFromReady(master.ready)
  // The 256 MiB value needs one segment that holds it whole (a replica is one allocation).
  servers.push(
    ...(await Promise.all([
      startServer(['segment', 'mount', '--size', '64MiB', '--name', 'small', '--master', address], {readyTimeoutMs: 30_000}),
      startServer(['segment', 'mount', '--size', '272MiB', '--name', 'large', '--master', address], {readyTimeoutMs: 30_000}),
    ])),
  )
})
test.after(cleanup)

// First, while the large segment is empty: 256 MiB must fit in one range.
test('256 MiB: FILE in, stdout out, bytes intact', async () => {
  const src = await randomFile('big.bin', 256 * MiB)
  const digest = await sha256File(src)
  const put = await exec(['put', 'big', src, '--json', '--timeout', '80s'])
  assert.is(put.code, 0, put.stderr)
  const out = JSON.parse(put.stdout.toString())
  assert.is(out.size, 256 * MiB)
  assert.is(out.replicas, 1)
  const get = await exec(['get', 'big', '-', '--timeout', '80s'], {hashStdout: true})
  assert.is(get.code, 0, get.stderr)
  assert.is(get.sha, digest)
  assert.is(get.stderr, '', 'no progress bar off a terminal')
  const rm = await exec(['rm', 'big', '--force'])
  assert.is(rm.code, 0, rm.stderr)
})

test('round trips of 1 B to 9 MiB: FILE -> FILE, FILE -> stdout, stdin (spooled) and stdin --size', async () => {
  // 4 MiB is the slice size: below, at, and across slice boundaries.
  const sizes = [1, 4095, 4 * MiB, 9 * MiB + 3]
  // One size at a time (a dozen CLI processes at once is enough for a 2-core machine).
  for (const size of sizes) {
    await (async () => {
      const data = randomBytes(size)
      const src = path.join(SANDBOX, `src-${size}`)
      writeFileSync(src, data)
      const digest = sha256(data)
      const [fromFile, spooled, sized] = await Promise.all([
        exec(['put', `file/${size}`, src, '--json']),
        exec(['put', `stdin/${size}`, '-', '--json'], {input: {file: src}}),
        exec(['put', `sized/${size}`, '-', '--size', String(size), '--json'], {input: {file: src}}),
      ])
      for (const r of [fromFile, spooled, sized]) {
        assert.is(r.code, 0, r.stderr)
        assert.is(JSON.parse(r.stdout.toString()).size, size)
      }
      const dest = path.join(SANDBOX, `dest-${size}`)
      const [toFile, toStdout, spooledOut, sizedOut] = await Promise.all([
        exec(['get', `file/${size}`, dest, '--json']),
        exec(['get', `file/${size}`, '-']),
        exec(['get', `stdin/${size}`]),
        exec(['get', `sized/${size}`]),
      ])
      assert.is(toFile.code, 0, toFile.stderr)
      assert.equal(JSON.parse(toFile.stdout.toString()), {key: `file/${size}`, size, file: dest})
      assert.is(sha256(readFileSync(dest)), digest, `FILE round trip of ${size} B`)
      for (const r of [toStdout, spooledOut, sizedOut]) {
        assert.is(r.code, 0, r.stderr)
        assert.is(r.stdout.length, size)
        assert.is(sha256(r.stdout), digest, `stdout round trip of ${size} B`)
      }
    })()
  }
})

test('stdin --size: a stream shorter or longer than SIZE fails INVALID_PARAMS (exit 2) and stores nothing', async () => {
  const data = randomBytes(5 * MiB)
  const [short, long] = await Promise.all([
    exec(['put', 'short', '-', '--size', String(data.length + 1), '--json'], {input: data}),
    exec(['put', 'long', '-', '--size', String(data.length - 1), '--json'], {input: data}),
  ])
  for (const r of [short, long]) {
    assert.is(r.code, 2, r.stderr)
    assert.is(JSON.parse(r.stdout.toString()).error.code, 'INVALID_PARAMS')
  }
  const exists = await exec(['exists', 'short', 'long', '--json'])
  assert.is(exists.code, 3)
  assert.equal(JSON.parse(exists.stdout.toString()), {short: false, long: false})
  // The space was given back: the key can be stored now.
  const again = await exec(['put', 'short', '-', '--size', String(data.length)], {input: data})
  assert.is(again.code, 0, again.stderr)
})

test('get to a FILE is atomic: a failed get leaves no file, and an existing FILE untouched', async () => {
  const fresh = path.join(SANDBOX, 'atomic-new.bin')
  const existing = path.join(SANDBOX, 'atomic-old.bin')
  writeFileSync(existing, 'previous contents')
  const [r1, r2, r3] = await Promise.all([
    exec(['get', 'nosuch', fresh]),
    exec(['get', 'nosuch', existing, '--json']),
    exec(['get', 'file/1', path.join(SANDBOX, 'no-such-dir', 'x.bin')]),
  ])
  assert.is(r1.code, 3)
  assert.is(r2.code, 3)
  assert.is(JSON.parse(r2.stdout.toString()).error.code, 'OBJECT_NOT_FOUND')
  assert.not.ok(existsSync(fresh))
  assert.is(readFileSync(existing, 'utf8'), 'previous contents')
  assert.not.equal(r3.code, 0)
  assert.equal(
    readdirSync(SANDBOX).filter((f) => f.includes('.mooncake-')),
    [],
    'no temporary file left behind',
  )
  // A successful get replaces the file whole.
  const ok = await exec(['get', 'file/4095', existing])
  assert.is(ok.code, 0, ok.stderr)
  assert.is(readFileSync(existing).length, 4095)
})

test('a reader that goes away early (get - | head -c 10) ends the get quietly with exit 0', async () => {
  const r = await runIntoHead(['get', `file/${9 * MiB + 3}`, '-', '--master', address], 10)
  assert.is(r.status, '0', r.stderr)
  assert.is(r.stderr, '')
})

test('a missing FILE to put: FILE_NOT_FOUND, nothing stored', async () => {
  const r = await exec(['put', 'ghost', path.join(SANDBOX, 'does-not-exist')])
  assert.is(r.code, 3, r.stderr)
  assert.match(r.stderr, /^mooncake: FILE_NOT_FOUND: /)
})

test.run()
