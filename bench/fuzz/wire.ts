// Wire-protocol fuzzer against a LIVE transfer server in another process (bench/fuzz/owner.ts).
//   node --import tsx bench/fuzz/wire.ts [--frames 1000000] [--seed 1] [--concurrency 6]
//        [--check-every 20000] [--json]
//
// Every worker has its own seeded PRNG and sends batches of frames on its own connections:
// valid requests, well-formed requests with hostile fields (offsets/lengths at and beyond every
// boundary, wrapping 2^64, forged/expired/foreign/tampered grants, unknown segments), mutated
// frames (bit flips with and without a fixed-up CRC, length/name-length/flags/op/magic fields set
// to 0/1/max/overflowing values), truncated and duplicated frames, raw garbage, slow
// (byte-at-a-time) frames, and mutated/forged/replayed auth handshakes.
//
// Every byte stream is also run through a model of the server (docs/transfer-protocol.md,
// "Semantics and checks") that predicts each response (op, id, status, payload size) and when
// the server must close; any difference is a violation. READ payloads of the "seg" segment are
// compared with its known pattern outside the one writable window (a canary). Every
// --check-every frames, a real client (TransferEngine, with the token and a read grant) reads the
// whole segment back and compares it, and the server process must be alive with bounded RSS and
// open file descriptors.
import type {ChildProcessWithoutNullStreams} from 'node:child_process'
import {createHmac} from 'node:crypto'
import {readdirSync, readFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {ErrorCode} from '../../src/lib/errors.js'
import {crc32c, encodeGrant, mintGrant, TransferEngine, type Grant} from '../../src/lib/transfer/index.js'
import {spawnLineChild} from '../../test/transfer/helpers.js'

const here = path.dirname(fileURLToPath(import.meta.url))

const MAGIC = {hello: 0x4854434d, auth: 0x4154434d, request: 0x5154434d, response: 0x5254434d}
const KiB = 1024
const MiB = 1024 * KiB
const MAX_REQUEST = 64n * BigInt(MiB)
const MAX_DRAIN = 16n * BigInt(MiB)
const U64_MAX = (1n << 64n) - 1n
const OK = 0

// ---------------------------------------------------------------------------------------------
// Seeded PRNG (mulberry32) and helpers.

export class Rng {
  #a: number
  constructor(seed: number) {
    this.#a = seed >>> 0 || 0x9e3779b9
  }
  next(): number {
    let t = (this.#a = (this.#a + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }
  u64(): bigint {
    return (BigInt(Math.floor(this.next() * 2 ** 32)) << 32n) | BigInt(Math.floor(this.next() * 2 ** 32))
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }
  /** Weighted choice: [[weight, value], ...]. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let total = 0
    for (const [w] of table) total += w
    let x = this.next() * total
    for (const [w, v] of table) {
      if ((x -= w) < 0) return v
    }
    return table[table.length - 1]![1]
  }
}

export const pattern = (offset: number, length: number): Buffer => {
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 131 + 7) & 255
  return out
}

// ---------------------------------------------------------------------------------------------
// The target process.

export interface OwnerReady {
  pid: number
  endpoints: string[]
  seg: {name: string; size: number; path: string; grantKey: string}
  open: {name: string; size: number; path: string}
}

export interface FuzzOwner {
  proc: ChildProcessWithoutNullStreams
  ready: OwnerReady
  stderr(): string
  stats(): Promise<Record<string, unknown>>
  kill(): Promise<void>
}

export async function spawnFuzzOwner(args: string[] = []): Promise<FuzzOwner> {
  const child = await spawnLineChild<OwnerReady>(path.join(here, 'owner.ts'), args, 'fuzz owner')
  return {
    proc: child.proc,
    ready: child.ready,
    stderr: child.stderr,
    stats: async () => (await child.command<{stats: Record<string, unknown>}>('stats')).stats,
    kill: () => child.kill('SIGKILL'),
  }
}

/** RSS (bytes) and open fds of a live process, from /proc. */
export function processUsage(pid: number): {rss: number; fds: number} {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
  return {rss, fds: readdirSync(`/proc/${pid}/fd`).length}
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// A raw connection with an efficient receive queue and deadlines on every read.

export class FuzzConn {
  readonly socket: net.Socket
  #chunks: Buffer[] = []
  #avail = 0
  #waiter: (() => void) | undefined
  closed = false
  error: string | undefined

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.#chunks.push(d)
      this.#avail += d.length
      this.#wake()
    })
    socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
    socket.on('error', (e) => {
      this.error = (e as NodeJS.ErrnoException).code ?? e.message
    })
  }

  #wake(): void {
    const w = this.#waiter
    this.#waiter = undefined
    w?.()
  }

  static open(endpoint: string, timeoutMs = 10_000): Promise<FuzzConn> {
    const i = endpoint.lastIndexOf(':')
    const socket = net.connect(Number(endpoint.slice(i + 1)), endpoint.slice(0, i))
    socket.setNoDelay(true)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error('connect timeout'))
      }, timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        resolve(new FuzzConn(socket))
      })
      socket.once('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
    })
  }

  get buffered(): number {
    return this.#avail
  }

  /** n bytes, or fewer if the peer closed first; throws 'timeout' after timeoutMs. */
  async read(n: number, timeoutMs = 15_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    while (this.#avail < n && !this.closed) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timeout')
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
    const take = Math.min(n, this.#avail)
    const out = Buffer.allocUnsafe(take)
    let at = 0
    while (at < take) {
      const c = this.#chunks[0]!
      const k = Math.min(c.length, take - at)
      c.copy(out, at, 0, k)
      at += k
      if (k === c.length) this.#chunks.shift()
      else this.#chunks[0] = c.subarray(k)
    }
    this.#avail -= take
    return out
  }

  /** Resolves true once the peer has closed (false on timeout). Unread bytes are dropped. */
  async waitClosed(timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
    return true
  }

  write(data: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(data)
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// Frames.

const LABEL_CLIENT = Buffer.alloc(32)
LABEL_CLIENT.write('mooncake-te/1 client')
const LABEL_SERVER = Buffer.alloc(32)
LABEL_SERVER.write('mooncake-te/1 server')

export function proof(token: string, client: boolean, serverNonce: Buffer, clientNonce: Buffer): Buffer {
  return createHmac('sha256', token)
    .update(Buffer.concat([client ? LABEL_CLIENT : LABEL_SERVER, serverNonce, clientNonce]))
    .digest()
}

export function encodeAuth(flags: number, nonce: Buffer, proofBytes: Buffer): Buffer {
  const a = Buffer.alloc(80)
  a.writeUInt32LE(MAGIC.auth, 0)
  a[4] = 1
  a[5] = flags
  nonce.copy(a, 8)
  proofBytes.copy(a, 40)
  a.writeUInt32LE(crc32c(a, 0, 0, 76), 76)
  return a
}

interface Req {
  magic?: number
  version?: number
  op: number
  flags?: number
  id: bigint
  offset: bigint
  length: bigint
  name: Buffer
  grant?: Buffer
}

export function encodeReq(r: Req): Buffer {
  const tail = r.grant ? Buffer.concat([r.name, r.grant]) : r.name
  const out = Buffer.allocUnsafe(40 + tail.length)
  out.writeUInt32LE(r.magic ?? MAGIC.request, 0)
  out[4] = r.version ?? 1
  out[5] = r.op
  out.writeUInt16LE(r.flags ?? (r.grant ? 1 : 0), 6)
  out.writeBigUInt64LE(r.id, 8)
  out.writeBigUInt64LE(r.offset, 16)
  out.writeBigUInt64LE(r.length, 24)
  out.writeUInt16LE(r.name.length & 0xffff, 32)
  out.writeUInt16LE(0, 34)
  tail.copy(out, 40)
  out.writeUInt32LE(crc32c(tail, crc32c(out, 0, 0, 36)), 36)
  return out
}

/** Recomputes a request's CRC over the fixed part and the tail its (possibly mutated) header declares. */
function fixRequestCrc(frame: Buffer): void {
  if (frame.length < 40) return
  const tailLen = frame.readUInt16LE(32) + (frame.readUInt16LE(6) & 1 ? 48 : 0)
  const end = Math.min(frame.length, 40 + tailLen)
  frame.writeUInt32LE(crc32c(frame.subarray(40, end), crc32c(frame, 0, 0, 36)), 36)
}

// ---------------------------------------------------------------------------------------------
// The model of the server: which responses a byte stream must produce, and how it ends.

interface SegModel {
  name: string
  size: bigint
  key?: Buffer
}

interface Expected {
  op: number
  id: bigint
  status: number
  /** Exact payload length of a success. */
  payload: number
  /** READ of "seg": compare the payload with the pattern outside the window. */
  readAt?: bigint
  /** A malformed frame: only the status is fixed. */
  malformed?: boolean
  /** SHM_INFO: the segment size it must report. */
  shmSize?: bigint
}

interface Model {
  segs: Map<string, SegModel>
  window: {offset: bigint; length: bigint}
  now: () => number
}

type StreamEnd = 'open' | 'close' | 'incomplete'

/** Pure mirror of Server::ServeFrame and its helpers, over a whole client byte stream. */
export function simulate(model: Model, stream: Buffer, frameEnds: number[]): {expected: Expected[]; end: StreamEnd; sendUpTo: number; writes: Array<[string, bigint, bigint]>} {
  const expected: Expected[] = []
  const writes: Array<[string, bigint, bigint]> = []
  let pos = 0
  const endOfFrameAt = (p: number): number => frameEnds.find((e) => e > p) ?? stream.length
  // `need`: the bytes the server has read when it sees the fault; send at least those.
  const malformed = (at: number, op: number, need = 40) => {
    expected.push({op, id: 0n, status: ErrorCode.INVALID_PARAMS, payload: -1, malformed: true})
    return {expected, end: 'close' as StreamEnd, sendUpTo: Math.max(endOfFrameAt(at), endOfFrameAt(at + need - 1)), writes}
  }
  while (pos < stream.length) {
    if (stream.length - pos < 40) return {expected, end: 'incomplete', sendUpTo: stream.length, writes}
    const f = stream.subarray(pos, pos + 40)
    if (f.readUInt32LE(0) !== MAGIC.request || f[4] !== 1) return malformed(pos, 0)
    const op = f[5]!
    if (op < 1 || op > 4) return malformed(pos, op)
    const flags = f.readUInt16LE(6)
    if (flags & ~1) return malformed(pos, op)
    if (f.readUInt16LE(34) !== 0) return malformed(pos, op)
    const id = f.readBigUInt64LE(8)
    const offset = f.readBigUInt64LE(16)
    const length = f.readBigUInt64LE(24)
    const nameLen = f.readUInt16LE(32)
    if (nameLen === 0 || nameLen > 255) return malformed(pos, op)
    if (length > MAX_REQUEST) return malformed(pos, op)
    const tailLen = nameLen + (flags & 1 ? 48 : 0)
    if (stream.length - pos < 40 + tailLen) return {expected, end: 'incomplete', sendUpTo: stream.length, writes}
    const tail = stream.subarray(pos + 40, pos + 40 + tailLen)
    if (f.readUInt32LE(36) !== crc32c(tail, crc32c(f, 0, 0, 36))) return malformed(pos, op, 40 + tailLen)
    let grant: {offset: bigint; length: bigint; mask: number; expiry: bigint; mac: Buffer} | undefined
    if (flags & 1) {
      const g = tail.subarray(nameLen)
      const mask = g.readUInt32LE(16)
      if (g.readUInt32LE(20) !== 0 || mask & ~3) return malformed(pos, op, 40 + tailLen)
      grant = {offset: g.readBigUInt64LE(0), length: g.readBigUInt64LE(8), mask, expiry: g.readBigUInt64LE(24), mac: g.subarray(32, 48)}
    }
    pos += 40 + tailLen
    const nameBuf = tail.subarray(0, nameLen)
    const seg = [...model.segs.values()].find((s) => Buffer.from(s.name).equals(nameBuf))
    const isData = op === 1 || op === 2
    let status = OK
    if (!seg) status = ErrorCode.SEGMENT_NOT_FOUND
    else if (isData && length === 0n) status = ErrorCode.INVALID_PARAMS
    else if (isData && !(offset <= seg.size && length <= seg.size - offset)) status = ErrorCode.BUFFER_OVERFLOW
    else if ((isData || op === 4) && seg.key) {
      if (!grant) status = ErrorCode.ACCESS_DENIED
      else {
        const want = grantMac(seg.key, seg.name, grant)
        if (!want.equals(grant.mac)) status = ErrorCode.ACCESS_DENIED
        else if (isData) {
          const bit = op === 1 ? 1 : 2
          if ((grant.mask & bit) !== bit) status = ErrorCode.ACCESS_DENIED
          else if (BigInt(model.now()) >= grant.expiry) status = ErrorCode.ACCESS_DENIED
          else if (offset < grant.offset || offset - grant.offset > grant.length || length > grant.length - (offset - grant.offset)) {
            status = ErrorCode.ACCESS_DENIED
          }
        }
      }
    }
    if (status !== OK) {
      expected.push({op, id, status, payload: -1})
      if (op !== 2) continue
      if (length > MAX_DRAIN) return {expected, end: 'close', sendUpTo: pos, writes}
      if (BigInt(stream.length - pos) < length) return {expected, end: 'incomplete', sendUpTo: stream.length, writes}
      pos += Number(length)
      continue
    }
    switch (op) {
      case 1:
        expected.push({op, id, status, payload: Number(length), readAt: seg!.key ? offset : undefined})
        break
      case 2:
        if (BigInt(stream.length - pos) < length) return {expected, end: 'incomplete', sendUpTo: stream.length, writes}
        pos += Number(length)
        writes.push([seg!.name, offset, length])
        expected.push({op, id, status, payload: 0})
        break
      case 3:
        expected.push({op, id, status, payload: -2, shmSize: seg!.size})
        break
      case 4:
        expected.push({op, id, status, payload: 0})
        break
    }
  }
  return {expected, end: 'open', sendUpTo: stream.length, writes}
}

function grantMac(key: Buffer, name: string, g: {offset: bigint; length: bigint; mask: number; expiry: bigint}): Buffer {
  const n = Buffer.from(name)
  const msg = Buffer.alloc(8 + 2 + n.length + 8 + 8 + 4 + 8)
  let p = msg.write('MCGRANT1', 0, 'latin1')
  p = msg.writeUInt16LE(n.length, p)
  p += n.copy(msg, p)
  p = msg.writeBigUInt64LE(g.offset, p)
  p = msg.writeBigUInt64LE(g.length, p)
  p = msg.writeUInt32LE(g.mask, p)
  msg.writeBigUInt64LE(g.expiry, p)
  return createHmac('sha256', key).update(msg).digest().subarray(0, 16)
}

// ---------------------------------------------------------------------------------------------
// The fuzzer.

export interface WireFuzzOptions {
  frames: number
  seed: number
  concurrency?: number
  checkEvery?: number
  token?: string
  /** Server thread count and per-frame I/O timeout of the target. */
  serverThreads?: number
  ioTimeoutMs?: number
  /** Also probe slow (byte-at-a-time, stalled) peers against the worker threads. @default true */
  slowloris?: boolean
  log?: (line: string) => void
}

export interface WireFuzzReport {
  seed: number
  frames: number
  seconds: number
  framesPerSecond: number
  connections: number
  batches: number
  byKind: Record<string, number>
  statuses: Record<string, number>
  serverClosed: number
  /** Responses (or their tails) lost because the server reset a connection after a fatal frame. */
  lostToReset: number
  /** Connections the server closed because this (loaded) client read too slowly. */
  slowReaderClosed: number
  authAttempts: number
  authAccepted: number
  authRefused: number
  slowFrames: number
  checks: number
  bytesWrittenToWindow: number
  baseline: {rssMiB: number; fds: number}
  peak: {rssMiB: number; fds: number}
  serverStats?: Record<string, unknown>
  starvation?: {stalledConnections: number; serverThreads: number; validReadMs: number; ioTimeoutMs: number}
  violations: string[]
  /** Known limits found (not protocol violations), e.g. thread starvation by stalled peers. */
  findings: string[]
}

const LENGTHS = (segSize: bigint, win: bigint): ReadonlyArray<readonly [number, bigint]> => [
  [30, -1n], // small random
  [6, 0n],
  [6, 1n],
  [3, 2n],
  [4, win],
  [3, win - 1n],
  [3, win + 1n],
  [2, 64n * 1024n],
  [2, 64n * 1024n + 1n],
  [0.2, segSize],
  [1, segSize + 1n],
  [0.02, MAX_DRAIN],
  [0.3, MAX_DRAIN + 1n],
  [0.3, MAX_REQUEST],
  [2, MAX_REQUEST + 1n],
  [2, 1n << 32n],
  [2, 1n << 63n],
  [2, U64_MAX],
  [1, U64_MAX - 7n],
]

export async function runWireFuzz(o: WireFuzzOptions): Promise<WireFuzzReport> {
  const log = o.log ?? (() => {})
  const token = o.token ?? 'fuzz-cluster-token'
  const concurrency = o.concurrency ?? 6
  const checkEvery = o.checkEvery ?? 20_000
  const threads = o.serverThreads ?? 4
  const ioTimeoutMs = o.ioTimeoutMs ?? 1000
  const owner = await spawnFuzzOwner(['--token', token, '--io-ms', String(ioTimeoutMs), '--threads', String(threads), '--idle-ms', '10000'])
  const violations: string[] = []
  const violate = (what: string) => {
    if (violations.length < 200) violations.push(what)
    log(`VIOLATION: ${what}`)
  }
  const endpoint = owner.ready.endpoints[0]!
  const segSize = BigInt(owner.ready.seg.size)
  const openSize = BigInt(owner.ready.open.size)
  const key = Buffer.from(owner.ready.seg.grantKey, 'hex')
  const window = {offset: 1n * BigInt(MiB), length: 64n * 1024n}
  const model: Model = {
    segs: new Map([
      ['seg', {name: 'seg', size: segSize, key}],
      ['open', {name: 'open', size: openSize}],
    ]),
    window,
    now: Date.now,
  }
  const far = Date.now() + 3_600_000
  const S = Number(segSize)
  const W = Number(window.offset)
  const WL = Number(window.length)
  const grants: Grant[] = [
    mintGrant(key, {segment: 'seg', offset: W, length: WL, ops: ['read', 'write'], expiresAt: far}),
    mintGrant(key, {segment: 'seg', offset: 0, length: S, ops: ['read'], expiresAt: far}),
    mintGrant(key, {segment: 'seg', offset: 0, length: S, ops: ['read', 'write'], expiresAt: Date.now() - 1}),
    mintGrant(key, {segment: 'segX', offset: 0, length: S, ops: ['read', 'write'], expiresAt: far}),
    mintGrant(key, {segment: 'open', offset: 0, length: S, ops: ['read', 'write'], expiresAt: far}),
    mintGrant(key, {segment: 'seg', offset: W + WL, length: 2 ** 40, ops: ['read'], expiresAt: far}),
  ]
  const wireGrants = grants.map((g) => encodeGrant(g))
  const readGrant = grants[1]!

  // The legitimate client used by the checks.
  const client = new TransferEngine({listenHosts: [], token, sweepOnStart: false})
  await client.start()
  const back = Buffer.alloc(S)
  const legit = Buffer.alloc(WL)
  client.registerLocalMemory(back)
  client.registerLocalMemory(legit)
  const expectedSeg = pattern(0, S)

  const baseline = processUsage(owner.ready.pid)
  const peak = {...baseline}
  const report: WireFuzzReport = {
    seed: o.seed,
    frames: 0,
    seconds: 0,
    framesPerSecond: 0,
    connections: 0,
    batches: 0,
    byKind: {},
    statuses: {},
    serverClosed: 0,
    lostToReset: 0,
    slowReaderClosed: 0,
    authAttempts: 0,
    authAccepted: 0,
    authRefused: 0,
    slowFrames: 0,
    checks: 0,
    bytesWrittenToWindow: 0,
    baseline: {rssMiB: baseline.rss / MiB, fds: baseline.fds},
    peak: {rssMiB: baseline.rss / MiB, fds: baseline.fds},
    violations,
    findings: [],
  }
  const kind = (k: string, n = 1) => (report.byKind[k] = (report.byKind[k] ?? 0) + n)
  const statusName = (s: number) => (s === 0 ? 'OK' : (ErrorCode[s] ?? String(s)))
  // Body bytes: a pool sliced at random places (content does not matter to the server).
  const pool = new Rng(o.seed ^ 0x5bd1e995).bytes(17 * MiB)

  let checking: Promise<void> | undefined
  let nextCheck = checkEvery
  const check = async (why: string): Promise<void> => {
    report.checks++
    if (!isAlive(owner.ready.pid) || owner.proc.exitCode !== null) {
      violate(`server process died (${why}); stderr: ${owner.stderr().slice(-2000)}`)
      throw new Error('server died')
    }
    const u = processUsage(owner.ready.pid)
    peak.rss = Math.max(peak.rss, u.rss)
    peak.fds = Math.max(peak.fds, u.fds)
    // Connections (fuzzer workers plus the checker's lanes) are open: allow for them.
    if (u.fds > baseline.fds + 3 * concurrency + 64) violate(`server fds grew from ${baseline.fds} to ${u.fds} (${why})`)
    if (u.rss > baseline.rss + 256 * MiB) violate(`server RSS grew from ${(baseline.rss / MiB).toFixed(0)} to ${(u.rss / MiB).toFixed(0)} MiB (${why})`)
    // A legitimate write inside the window, then a full read-back.
    const [w] = await client.submit([{op: 'write', local: legit, peer: owner.ready.endpoints, segment: 'seg', offset: W, length: WL, grant: grants[0]}], {transport: 'tcp', timeoutMs: 20_000})
    if (!w!.ok) violate(`legitimate write refused (${why}): ${w!.code} ${w!.message}`)
    const [r] = await client.submit([{op: 'read', local: back, peer: owner.ready.endpoints, segment: 'seg', offset: 0, length: S, grant: readGrant}], {transport: 'tcp', timeoutMs: 20_000})
    if (!r!.ok) return violate(`legitimate read refused (${why}): ${r!.code} ${r!.message}`)
    if (!back.subarray(0, W).equals(expectedSeg.subarray(0, W)) || !back.subarray(W + WL).equals(expectedSeg.subarray(W + WL))) {
      let at = 0
      while (at < S && (at >= W && at < W + WL ? true : back[at] === expectedSeg[at])) at++
      violate(`canary changed outside the writable window at offset ${at} (${why})`)
    }
  }
  const maybeCheck = async () => {
    if (report.frames < nextCheck) return
    nextCheck += checkEvery
    if (!checking) {
      checking = check(`after ${report.frames} frames`).finally(() => (checking = undefined))
    }
    await checking
  }

  const started = Date.now()
  const perWorker = Math.ceil(o.frames / concurrency)

  async function worker(index: number): Promise<void> {
    const r = new Rng(o.seed * 7919 + index * 104729 + 1)
    let sent = 0
    let conn: FuzzConn | undefined
    const count = (n = 1) => {
      sent += n
      report.frames += n
    }
    const openAuthed = async (): Promise<FuzzConn> => {
      const c = await FuzzConn.open(endpoint)
      report.connections++
      const hello = await c.read(48)
      if (hello.length < 48 || hello.readUInt32LE(0) !== MAGIC.hello || hello.readUInt32LE(44) !== crc32c(hello, 0, 0, 44)) {
        violate(`bad greeting (${hello.length} bytes)`)
        throw new Error('bad greeting')
      }
      if ((hello[5]! & 1) !== 1) violate('a server with a token does not ask for it in its greeting')
      const nonce = r.bytes(32)
      c.write(encodeAuth(1, nonce, proof(token, true, hello.subarray(8, 40), nonce)))
      const head = await c.read(32)
      const payload = await c.read(head.length === 32 ? head.readUInt32LE(20) : 0)
      if (head.length < 32 || head.readInt32LE(16) !== 0 || !payload.equals(proof(token, false, hello.subarray(8, 40), nonce))) {
        violate(`a good handshake failed (status ${head.length === 32 ? head.readInt32LE(16) : 'none'})`)
        throw new Error('handshake failed')
      }
      return c
    }

    const genName = (): Buffer =>
      r.weighted<() => Buffer>([
        [55, () => Buffer.from('seg')],
        [25, () => Buffer.from('open')],
        [4, () => Buffer.from('nope')],
        [3, () => Buffer.from('se')],
        [3, () => Buffer.from('seg\0')],
        [3, () => Buffer.from('SEG')],
        [4, () => r.bytes(1 + r.int(255))],
        [3, () => Buffer.alloc(255, 0x61)],
      ])()
    const genGrant = (): Buffer | undefined =>
      r.weighted<() => Buffer | undefined>([
        [30, () => wireGrants[0]],
        [25, () => wireGrants[1]],
        [10, () => undefined],
        [5, () => wireGrants[2]],
        [4, () => wireGrants[3]],
        [4, () => wireGrants[4]],
        [4, () => wireGrants[5]],
        [8, () => {
          const g = Buffer.from(r.pick(wireGrants))
          const bit = r.int(48 * 8)
          g[bit >> 3] ^= 1 << (bit & 7)
          return g
        }],
        [5, () => {
          const g = r.bytes(48)
          g.writeUInt32LE(r.int(4), 16)
          g.writeUInt32LE(0, 20)
          return g
        }],
        [2, () => r.bytes(48)],
      ])()
    const genOffset = (): bigint =>
      r.weighted<() => bigint>([
        [30, () => BigInt(W + r.int(WL))],
        [20, () => BigInt(r.int(S))],
        [3, () => 0n],
        [3, () => BigInt(W - 1)],
        [3, () => BigInt(W)],
        [3, () => BigInt(W + WL - 1)],
        [3, () => BigInt(W + WL)],
        [2, () => segSize - 1n],
        [2, () => segSize],
        [2, () => segSize + 1n],
        [2, () => openSize],
        [2, () => (1n << 32n) - 1n],
        [2, () => 1n << 63n],
        [3, () => U64_MAX],
        [3, () => U64_MAX - BigInt(r.int(WL))],
        [2, () => r.u64()],
      ])()
    const genLength = (): bigint => {
      const v = r.weighted(LENGTHS(segSize, window.length))
      return v === -1n ? BigInt(1 + r.int(r.chance(0.8) ? 256 : 8192)) : v
    }
    const genRequest = (): Buffer => {
      const op = r.weighted<number>([
        [40, 1],
        [35, 2],
        [10, 3],
        [10, 4],
        [1, 0],
        [1, 5],
        [1, 255],
      ])
      return encodeReq({op, id: r.u64(), offset: genOffset(), length: genLength(), name: genName(), grant: genGrant()})
    }
    const mutate = (frame: Buffer): Buffer => {
      const f = Buffer.from(frame)
      const m = r.int(9)
      let fix = r.chance(0.7)
      switch (m) {
        case 0:
        case 1: {
          const flips = 1 + r.int(4)
          for (let i = 0; i < flips; i++) {
            const bit = r.int(f.length * 8)
            f[bit >> 3] ^= 1 << (bit & 7)
          }
          fix = r.chance(0.5)
          kind('mut.bitflip')
          break
        }
        case 2:
          f.writeBigUInt64LE(r.pick([0n, 1n, MAX_REQUEST, MAX_REQUEST + 1n, 1n << 32n, 1n << 63n, U64_MAX]), 24)
          kind('mut.length')
          break
        case 3:
          f.writeUInt16LE(r.pick([0, 1, 2, 254, 255, 256, 4096, 0xffff]), 32)
          kind('mut.nameLength')
          break
        case 4:
          f.writeUInt16LE(r.pick([0, 1, 2, 3, 0x8000, 0xffff]), 6)
          kind('mut.flags')
          break
        case 5:
          f[5] = r.pick([0, 1, 2, 3, 4, 5, 6, 255])
          kind('mut.op')
          break
        case 6:
          if (r.chance(0.5)) f[4] = r.pick([0, 2, 255])
          else f.writeUInt32LE(r.pick([0, MAGIC.response, MAGIC.auth, MAGIC.hello, 0xffffffff]), 0)
          kind('mut.magic/version')
          break
        case 7:
          f.writeUInt16LE(1 + r.int(0xffff), 34)
          kind('mut.reserved')
          break
        case 8:
          f.writeBigUInt64LE(r.pick([U64_MAX, 1n << 63n, segSize, segSize - 1n]), 16)
          kind('mut.offset')
          break
      }
      if (fix) fixRequestCrc(f)
      return f
    }
    const bodyFor = (frame: Buffer): Buffer | undefined => {
      if (frame.length < 40 || frame[5] !== 2) return undefined
      const len = frame.readBigUInt64LE(24)
      if (len === 0n || len > MAX_DRAIN) return undefined
      const n = Number(len)
      const at = r.int(pool.length - n + 1)
      return pool.subarray(at, at + n)
    }

    async function batch(): Promise<void> {
      const tb = Date.now()
      try {
        await batchInner()
      } finally {
        const ms = Date.now() - tb
        if (process.env.FUZZ_DEBUG && ms > 200) log(`slow batch ${ms} ms: ${lastBatch}`)
      }
    }
    let lastBatch = ''
    async function batchInner(): Promise<void> {
      report.batches++
      if (!conn || conn.closed) conn = await openAuthed()
      const parts: Buffer[] = []
      const frameEnds: number[] = []
      let total = 0
      const push = (b: Buffer, frameEnd = true) => {
        parts.push(b)
        total += b.length
        if (frameEnd) frameEnds.push(total)
      }
      const n = 1 + r.int(24)
      let prev: Buffer[] | undefined
      for (let i = 0; i < n; i++) {
        let frame: Buffer[]
        const k = r.weighted<string>([
          [70, 'request'],
          [18, 'mutated'],
          [4, 'duplicate'],
          [3, 'garbage'],
          [1.5, 'truncated'],
          [0.5, 'header-only-write'],
        ])
        kind(k)
        if (k === 'duplicate' && prev) frame = prev
        else if (k === 'garbage') frame = [r.bytes(1 + r.int(r.chance(0.9) ? 64 : 4096))]
        else {
          let f = genRequest()
          if (k === 'mutated') f = mutate(f)
          if (k === 'truncated') f = f.subarray(0, r.int(f.length))
          const body = k === 'header-only-write' || k === 'truncated' ? undefined : bodyFor(f)
          frame = body ? [f, body] : [f]
          if (k === 'header-only-write' && f[5] === 2) {
            // The WRITE body never comes: the server must give up after its I/O timeout.
            kind('stalled-body')
          }
        }
        prev = frame
        frame.forEach((b, j) => push(b, j === frame.length - 1))
        count()
      }
      const stream = Buffer.concat(parts)
      const sim = simulate(model, stream, frameEnds)
      if (process.env.FUZZ_DEBUG) lastBatch = `${n} frames, ${stream.length} bytes, end ${sim.end}, expect ${sim.expected.map((e) => `${e.op}:${statusName(e.status)}:${e.payload}`).join(',')}`
      for (const [name, off, len] of sim.writes) {
        if (name === 'seg') {
          if (off < window.offset || off + len > window.offset + window.length) violate(`model: accepted write outside the window [${off}, +${len})`)
          report.bytesWrittenToWindow += Number(len)
        }
      }
      const c = conn
      const sentAt = Date.now()
      c.write(stream.subarray(0, sim.sendUpTo))
      if (sim.end === 'incomplete') {
        // The server is waiting for the rest: usually the client closes; sometimes it stalls and
        // the server must time the frame out by itself (ioTimeoutMs).
        if (r.chance(0.97)) c.end()
      }
      for (const e of sim.expected) {
        const head = await c.read(32).catch((err: Error) => {
          violate(`no response (${err.message}) for op ${e.op} id ${e.id}, expected ${statusName(e.status)}`)
          return undefined
        })
        if (!head) return c.destroy()
        // After a fatal frame the server closes with the client's later bytes unread, so the
        // kernel may reset the connection and drop responses still queued: tolerated (counted).
        const resetAfterFatal = sim.end === 'close'
        if (head.length < 32) {
          if (e.malformed) return
          if (resetAfterFatal) {
            report.lostToReset++
            return
          }
          violate(`connection closed (${c.error ?? 'FIN'}) instead of a response for op ${e.op} id ${e.id}, expected ${statusName(e.status)}${process.env.FUZZ_DEBUG ? ` [${lastBatch}]` : ''}`)
          return
        }
        if (head.readUInt32LE(0) !== MAGIC.response || head[4] !== 1 || head.readUInt32LE(28) !== crc32c(head, 0, 0, 28)) {
          violate('a response with a bad magic, version or checksum')
          return c.destroy()
        }
        const status = head.readInt32LE(16)
        const op = head[5]!
        const id = head.readBigUInt64LE(8)
        const plen = head.readUInt32LE(20)
        report.statuses[statusName(status)] = (report.statuses[statusName(status)] ?? 0) + 1
        if (e.malformed) {
          if (status !== ErrorCode.INVALID_PARAMS) violate(`malformed frame answered ${statusName(status)}`)
        } else if (status !== e.status || op !== e.op || id !== e.id) {
          violate(`op ${e.op} id ${e.id}: expected ${statusName(e.status)}, got ${statusName(status)} (op ${op}, id ${id})`)
          return c.destroy()
        }
        if (status !== OK) {
          if (plen > 512) violate(`error message of ${plen} bytes`)
        } else if (e.payload >= 0 && plen !== e.payload) violate(`op ${e.op}: payload ${plen} bytes, expected ${e.payload}`)
        else if (e.payload === -2 && plen < 32) violate(`SHM_INFO payload of ${plen} bytes`)
        const payload = await c.read(plen).catch(() => Buffer.alloc(0))
        if (payload.length < plen) {
          // (Node does not always surface the reset as ECONNRESET once data has arrived.)
          if (sim.end === 'close') report.lostToReset++
          // The server gives up on a peer that does not read for ioTimeoutMs (a loaded machine).
          else if (Date.now() - sentAt >= ioTimeoutMs * 0.9) report.slowReaderClosed++
          else violate(`payload cut short: ${payload.length} of ${plen} (${c.error ?? 'FIN'})${process.env.FUZZ_DEBUG ? ` [${lastBatch}]` : ''}`)
          return
        }
        if (status === OK && e.readAt !== undefined) {
          // Bytes of "seg" outside the window must still be the pattern.
          const start = Number(e.readAt)
          for (let i = 0; i < payload.length; i++) {
            const at = start + i
            if (at >= W && at < W + WL) continue
            if (payload[i] !== ((at * 131 + 7) & 255)) {
              violate(`canary: READ returned a changed byte at offset ${at}`)
              break
            }
          }
        }
        if (status === OK && e.shmSize !== undefined && payload.readBigUInt64LE(16) !== e.shmSize) {
          violate(`SHM_INFO size field ${payload.readBigUInt64LE(16)}, expected ${e.shmSize}`)
        }
      }
      if (sim.end !== 'open') {
        const deadline = sim.end === 'incomplete' ? ioTimeoutMs + 5000 : 5000
        if (!(await c.waitClosed(deadline))) violate(`the server did not close a connection after a ${sim.end === 'close' ? 'fatal' : 'stalled'} frame within ${deadline} ms`)
        else report.serverClosed++
        c.destroy()
        conn = undefined
      }
    }

    async function authFuzz(): Promise<void> {
      report.authAttempts++
      const c = await FuzzConn.open(endpoint)
      report.connections++
      try {
        const hello = await c.read(48)
        if (hello.length < 48) return violate('no greeting')
        const sn = hello.subarray(8, 40)
        const nonce = r.bytes(32)
        let auth = encodeAuth(1, nonce, proof(token, true, sn, nonce))
        const m = r.int(10)
        let endEarly = false
        switch (m) {
          case 0:
            kind('auth.valid')
            break
          case 1: {
            const bit = r.int(80 * 8)
            auth[bit >> 3] ^= 1 << (bit & 7)
            if (r.chance(0.7)) auth.writeUInt32LE(crc32c(auth, 0, 0, 76), 76)
            kind('auth.bitflip')
            break
          }
          case 2:
            auth = encodeAuth(0, nonce, Buffer.alloc(32))
            kind('auth.no-token')
            break
          case 3:
            auth = encodeAuth(1, nonce, proof('wrong-token', true, sn, nonce))
            kind('auth.wrong-token')
            break
          case 4:
            auth = encodeAuth(1, nonce, proof(token, false, sn, nonce))
            kind('auth.reflected-server-proof')
            break
          case 5:
            auth = encodeAuth(1, nonce, proof(token, true, r.bytes(32), nonce))
            kind('auth.replayed-other-nonce')
            break
          case 6:
            auth = r.bytes(80)
            kind('auth.garbage')
            break
          case 7:
            auth = auth.subarray(0, r.int(80))
            endEarly = true
            kind('auth.truncated')
            break
          case 8:
            auth = encodeReq({op: 1, id: 1n, offset: 0n, length: 1n, name: Buffer.from('seg'), grant: wireGrants[1]})
            kind('auth.request-before-auth')
            break
          case 9:
            auth[r.pick([6, 7, 72, 73, 74, 75])] = 1 + r.int(255)
            auth.writeUInt32LE(crc32c(auth, 0, 0, 76), 76)
            auth[5] = r.pick([1, 3, 0xff])
            auth.writeUInt32LE(crc32c(auth, 0, 0, 76), 76)
            kind('auth.reserved-bits')
            break
        }
        count()
        c.write(auth)
        if (endEarly) c.end()
        // The model: accepted iff the frame is a well-formed AUTH whose proof matches its nonce.
        let accept = false
        if (auth.length >= 80 && auth.readUInt32LE(0) === MAGIC.auth && auth[4] === 1 && auth.readUInt32LE(76) === crc32c(auth, 0, 0, 76)) {
          accept = (auth[5]! & 1) === 1 && auth.subarray(40, 72).equals(proof(token, true, sn, auth.subarray(8, 40)))
        }
        const head = await c.read(32, ioTimeoutMs + 5000).catch(() => undefined)
        if (!head) return violate('no answer to a handshake')
        if (head.length < 32) {
          if (accept) violate('a valid handshake was closed')
          else report.authRefused++
          return
        }
        const status = head.readInt32LE(16)
        if (accept !== (status === 0)) violate(`handshake ${accept ? 'refused' : 'ACCEPTED'} (status ${statusName(status)}, mutation ${m})`)
        if (status === 0) report.authAccepted++
        else report.authRefused++
        if (status !== 0) {
          if (!(await c.waitClosed(5000))) violate('the server kept a connection open after refusing its handshake')
        } else {
          const p = await c.read(32)
          if (!p.equals(proof(token, false, sn, auth.subarray(8, 40)))) violate('bad server proof')
          // An authenticated connection: a read with a good grant works.
          c.write(encodeReq({op: 1, id: 9n, offset: 0n, length: 16n, name: Buffer.from('seg'), grant: wireGrants[1]}))
          count()
          const h = await c.read(32)
          if (h.length < 32 || h.readInt32LE(16) !== 0) violate('a request after a good handshake failed')
        }
      } finally {
        c.destroy()
      }
    }

    async function slowFrame(): Promise<void> {
      // A valid READ, one byte at a time: within the I/O timeout it must succeed.
      const c = await openAuthed()
      try {
        const f = encodeReq({op: 1, id: 77n, offset: BigInt(r.int(W)), length: 32n, name: Buffer.from('seg'), grant: wireGrants[1]})
        const gap = Math.max(1, Math.floor(ioTimeoutMs / 4 / f.length))
        const t0 = Date.now()
        for (let i = 0; i < f.length; i++) {
          c.write(f.subarray(i, i + 1))
          await new Promise((res) => setTimeout(res, gap))
        }
        const took = Date.now() - t0
        count()
        report.slowFrames++
        kind('slow-frame')
        const h = await c.read(32)
        // Timers run late on a loaded machine: only a frame sent well within the timeout must pass.
        if ((h.length < 32 || h.readInt32LE(16) !== 0) && took < ioTimeoutMs * 0.7) {
          violate(`a slow but timely frame (sent in ${took} ms) failed (${h.length === 32 ? statusName(h.readInt32LE(16)) : 'closed'})`)
        }
      } finally {
        c.destroy()
      }
    }

    if (index === 0 && o.slowloris !== false) await slowFrame().catch((err: Error) => violate(`slow frame: ${err.message}`))
    while (sent < perWorker) {
      const what = r.weighted<string>([
        [92, 'batch'],
        [7.9, 'auth'],
        [o.slowloris === false ? 0 : 0.1, 'slow'],
      ])
      try {
        if (what === 'batch') await batch()
        else if (what === 'auth') await authFuzz()
        else await slowFrame()
      } catch (err) {
        if (!isAlive(owner.ready.pid)) {
          violate(`server died: ${owner.stderr().slice(-2000)}`)
          return
        }
        if ((err as Error).message !== 'server died') violate(`worker ${index}: ${(err as Error).message}`)
        conn?.destroy()
        conn = undefined
      }
      await maybeCheck()
      if (violations.length >= 50) return
    }
    conn?.destroy()
  }

  let lastLog = Date.now()
  const progress = setInterval(() => {
    const now = Date.now()
    if (now - lastLog >= 10_000) {
      lastLog = now
      log(`${report.frames} frames, ${((report.frames * 1000) / (now - started)).toFixed(0)}/s, ${violations.length} violations`)
    }
  }, 1000)
  try {
    await Promise.all(Array.from({length: concurrency}, (_, i) => worker(i)))
    report.seconds = (Date.now() - started) / 1000
    report.framesPerSecond = Math.round(report.frames / report.seconds)
    if (checking) await checking
    await check('at the end').catch(() => {})
    if (o.slowloris !== false) report.starvation = await starvationProbe()
    report.serverStats = (await Promise.race([owner.stats(), new Promise((res) => setTimeout(res, 5000))])) as Record<string, unknown>
  } finally {
    clearInterval(progress)
    await client.close().catch(() => {})
    await owner.kill()
  }
  report.peak = {rssMiB: Math.round((peak.rss / MiB) * 10) / 10, fds: peak.fds}
  report.baseline = {rssMiB: Math.round((baseline.rss / MiB) * 10) / 10, fds: baseline.fds}
  return report

  /**
   * As many stalled peers as the server has threads, each with a partial handshake or a partial
   * frame, then one legitimate read: it must not wait for the stalled peers' I/O timeout.
   */
  async function starvationProbe(): Promise<WireFuzzReport['starvation']> {
    const stalled: FuzzConn[] = []
    try {
      for (let i = 0; i < threads; i++) {
        const c = await FuzzConn.open(endpoint)
        await c.read(48)
        c.write(Buffer.from([0x4d])) // the first byte of an AUTH, and nothing more
        stalled.push(c)
      }
      await new Promise((res) => setTimeout(res, 50))
      const t0 = Date.now()
      const [res] = await client.submit([{op: 'read', local: back, peer: owner.ready.endpoints, segment: 'seg', offset: 0, length: 4096, grant: readGrant}], {transport: 'tcp', timeoutMs: ioTimeoutMs * 4})
      const validReadMs = Date.now() - t0
      if (!res!.ok) violate(`starvation: a legitimate read failed behind ${threads} stalled handshakes: ${res!.code}`)
      else if (validReadMs > ioTimeoutMs / 2) {
        // A known design limit of the native server (blocking reads per frame on a small thread
        // pool), reported apart from the violations: see docs/reliability.md.
        report.findings.push(`starvation: ${threads} stalled pre-auth handshakes (one byte each) held every server thread; a legitimate 4 KiB read took ${validReadMs} ms (ioTimeoutMs ${ioTimeoutMs})`)
      }
      return {stalledConnections: threads, serverThreads: threads, validReadMs, ioTimeoutMs}
    } finally {
      for (const c of stalled) c.destroy()
    }
  }
}

// ---------------------------------------------------------------------------------------------

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({
    options: {
      frames: {type: 'string', default: '1000000'},
      seed: {type: 'string', default: '1'},
      concurrency: {type: 'string', default: '6'},
      'check-every': {type: 'string', default: '20000'},
      'io-ms': {type: 'string', default: '1000'},
      'no-slowloris': {type: 'boolean', default: false},
      json: {type: 'boolean', default: false},
    },
  })
  const report = await runWireFuzz({
    frames: Number(values.frames),
    seed: Number(values.seed),
    concurrency: Number(values.concurrency),
    checkEvery: Number(values['check-every']),
    ioTimeoutMs: Number(values['io-ms']),
    slowloris: !values['no-slowloris'],
    log: (line) => process.stderr.write(line + '\n'),
  })
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
  else {
    const {violations, ...rest} = report
    process.stdout.write(JSON.stringify(rest, null, 2) + '\n')
    process.stdout.write(`${violations.length} violations\n${violations.map((v) => `  - ${v}`).join('\n')}\n`)
    process.stdout.write(`${report.findings.length} findings\n${report.findings.map((v) => `  - ${v}`).join('\n')}\n`)
  }
  process.exit(report.violations.length > 0 ? 1 : 0)
}
