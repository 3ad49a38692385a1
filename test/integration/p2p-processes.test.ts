/**
 * P2P store with real processes on the native engine (TCP) and a real etcd: one seeder and four
 * downloaders, a source SIGKILLed mid-download, a crashed peer's entries expiring with its lease,
 * duplicate names, and unregister from another process.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {P2PAdmin} from '../../src/lib/p2p/admin.js'
import {startEtcd, type EtcdServer} from '../helpers/etcd.js'

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'p2p-peer.ts')
const MiB = 2 ** 20

let etcd: EtcdServer
let dir: string
let admin: P2PAdmin
let cluster = 0
const children = new Set<ChildProcess>()

test.before(async () => {
  etcd = await startEtcd()
  dir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-p2p-proc-'))
})

test.after.each(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
  admin?.close()
})

test.after(async () => {
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

interface Peer {
  child: ChildProcess
  /** Resolves with the first stdout JSON line that has `key`. */
  next(key: string, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<number | null>
  send(line: string): void
}

function peer(config: Record<string, unknown>): Peer {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify({etcd: etcd.endpoint, leaseTtlMs: 2_000, ...config})], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  children.add(child)
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  createInterface({input: child.stdout!}).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      return
    }
    for (const wake of waiters.splice(0)) wake()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  exited.then(() => {
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    child,
    exited,
    send: (line) => child.stdin!.write(`${line}\n`),
    async next(key, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const hit = lines.find((l) => key in l)
        if (hit) return hit
        const err = lines.find((l) => 'error' in l)
        if (err && key !== 'error') throw new Error(`peer ${String(config.peer)} failed: ${JSON.stringify(err.error)}`)
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`peer ${String(config.peer)} exited (${child.exitCode ?? child.signalCode}) before "${key}"`)
        if (Date.now() >= deadline) throw new Error(`timed out waiting for "${key}" from ${String(config.peer)}`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now())
          waiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
    },
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

async function setup(): Promise<string> {
  const id = `proc${++cluster}`
  admin = await P2PAdmin.connect({etcd: etcd.endpoint, clusterId: id})
  return id
}

function source(name: string, bytes: number): {file: string; sha: string} {
  const file = path.join(dir, name)
  writeFileSync(file, randomBytes(bytes))
  return {file, sha: sha(file)}
}

test('one seeder, four downloaders: every copy matches', async () => {
  const clusterId = await setup()
  const a = source('four-a', 24 * MiB + 12345)
  const b = source('four-b', 7 * MiB)
  const seeder = peer({clusterId, peer: 'seeder', action: 'register', name: 'ckpt/four', files: [a.file, b.file], shardSize: 2 * MiB})
  const ready = (await seeder.next('ready')).ready as {totalSize: number; sizeList: number[]}
  assert.equal(ready.sizeList, [24 * MiB + 12345, 7 * MiB])
  const downloaders = [1, 2, 3, 4].map((i) =>
    peer({clusterId, peer: `d${i}`, action: 'get', name: 'ckpt/four', dest: [path.join(dir, `four-${i}-a`), path.join(dir, `four-${i}-b`)]}),
  )
  const results = await Promise.all(downloaders.map((d) => d.next('done')))
  for (let i = 1; i <= 4; i++) {
    assert.is(sha(path.join(dir, `four-${i}-a`)), a.sha, `copy ${i} part a`)
    assert.is(sha(path.join(dir, `four-${i}-b`)), b.sha, `copy ${i} part b`)
  }
  const fromPeers = results.reduce((sum, r) => {
    const by = (r.done as {bytesByHolder: Record<string, number>}).bytesByHolder
    return sum + Object.entries(by).reduce((s, [holder, n]) => s + (holder === 'seeder' ? 0 : n), 0)
  }, 0)
  console.log(`    four downloaders: ${(fromPeers / MiB).toFixed(0)} MiB of ${(4 * ready.totalSize) / MiB} MiB came from other downloaders`)
  assert.equal(await Promise.all(downloaders.map((d) => d.exited)), [0, 0, 0, 0])
  seeder.child.kill('SIGTERM')
  assert.is(await seeder.exited, 0)
  assert.equal(await admin.list('ckpt/'), [], 'the record goes when the last holder leaves')
})

test('a source SIGKILLed mid-download: the download finishes from the other holder', async () => {
  const clusterId = await setup()
  const a = source('kill-a', 16 * MiB)
  const seeder = peer({clusterId, peer: 'seeder', action: 'register', name: 'k', files: [a.file], shardSize: MiB})
  await seeder.next('ready')
  // A second full holder, seeding after its own download.
  const replica = peer({clusterId, peer: 'replica', action: 'get', name: 'k', dest: [path.join(dir, 'kill-r')], seed: true})
  await replica.next('ready')
  // The downloader takes 3 shards, then waits; the seeder dies while 13 shards are missing.
  const dest = path.join(dir, 'kill-d')
  const downloader = peer({clusterId, peer: 'late', action: 'get', name: 'k', dest: [dest], concurrency: 1, pauseAfterReads: 3})
  await downloader.next('paused')
  seeder.child.kill('SIGKILL')
  await seeder.exited
  downloader.send('go')
  const done = (await downloader.next('done')).done as {bytesByHolder: Record<string, number>}
  assert.is(sha(dest), a.sha)
  assert.ok((done.bytesByHolder.replica ?? 0) >= 12 * MiB, `most bytes came from the surviving holder: ${JSON.stringify(done.bytesByHolder)}`)
  assert.is(await downloader.exited, 0)
})

test('a SIGKILLed peer: its holder entries vanish after its lease TTL; its name becomes free', async () => {
  const clusterId = await setup()
  const a = source('ttl-a', 3 * MiB)
  const seeder = peer({clusterId, peer: 'mortal', action: 'register', name: 'ttl', files: [a.file], shardSize: MiB})
  await seeder.next('ready')
  assert.equal((await admin.holders('ttl')).map((h) => h.peer), ['mortal'])
  const killedAt = Date.now()
  seeder.child.kill('SIGKILL')
  await seeder.exited
  assert.is((await admin.holders('ttl')).length, 1, 'a crash leaves the entry until the lease expires')
  await until('the holder entry to expire', async () => (await admin.holders('ttl')).length === 0)
  const waited = Date.now() - killedAt
  assert.ok(waited >= 1_000 && waited < 10_000, `expired after ${waited} ms (lease TTL 2 s)`)
  // The same peer name and payload name can be taken again.
  const again = peer({clusterId, peer: 'mortal', action: 'register', name: 'ttl', files: [a.file], shardSize: MiB})
  await again.next('ready')
  again.child.kill('SIGTERM')
  assert.is(await again.exited, 0)
})

test('register of an existing name fails with PAYLOAD_ALREADY_EXISTS; unregister from another process stops the seeder', async () => {
  const clusterId = await setup()
  const a = source('dup-a', 2 * MiB)
  const seeder = peer({clusterId, peer: 'first', action: 'register', name: 'dup', files: [a.file], shardSize: MiB})
  await seeder.next('ready')
  const second = peer({clusterId, peer: 'second', action: 'register', name: 'dup', files: [a.file], shardSize: MiB})
  const failure = (await second.next('error')).error as {code: string; message: string}
  assert.is(failure.code, 'PAYLOAD_ALREADY_EXISTS')
  assert.match(failure.message, 'first')
  assert.is(await second.exited, 1)
  const taken = peer({clusterId, peer: 'first', action: 'register', name: 'other', files: [a.file], shardSize: MiB})
  assert.is(((await taken.next('error')).error as {code: string}).code, 'PEER_ALREADY_EXISTS')

  assert.equal(await admin.unregister('dup', {timeoutMs: 10_000}), {peer: 'first'})
  await seeder.next('stopped')
  assert.is(await seeder.exited, 0)
  assert.equal(await admin.holders('dup'), [])
  assert.equal(await admin.list(), [])
})

test.run()
