// Shared by the transfer tests: spawning segment owners in child processes.
import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {createHash} from 'node:crypto'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const ROOT = path.resolve(here, '..', '..')

export interface OwnerReady {
  pid: number
  endpoints: string[]
  segment: string
  size: number
  path: string
  grantKey?: string
}

export interface Owner {
  proc: ChildProcessWithoutNullStreams
  ready: OwnerReady
  grantKey: Buffer
  command<T = Record<string, unknown>>(cmd: string, args?: Record<string, unknown>): Promise<T>
  exited: Promise<void>
  kill(signal?: NodeJS.Signals): Promise<void>
}

const live = new Set<Owner>()

/**
 * A child process (`node --import tsx SCRIPT`) that speaks JSON lines: its first line with
 * `ready` is its ready object, later lines answer commands `{id, cmd, ...}` by id.
 */
export interface LineChild<R> {
  proc: ChildProcessWithoutNullStreams
  ready: R
  stderr(): string
  exited: Promise<void>
  command<T = Record<string, unknown>>(cmd: string, args?: Record<string, unknown>): Promise<T>
  kill(signal?: NodeJS.Signals): Promise<void>
}

export async function spawnLineChild<R>(script: string, args: string[], what: string): Promise<LineChild<R>> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe']})
  let stderr = ''
  proc.stderr.on('data', (d) => {
    stderr += d
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000)
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const waiting = new Map<number, (v: Record<string, unknown>) => void>()
  let nextId = 1
  const ready = await new Promise<R>((resolve, reject) => {
    const lines = createInterface({input: proc.stdout})
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>
      if (msg.ready) resolve(msg as unknown as R)
      else waiting.get(msg.id as number)?.(msg)
    })
    proc.once('exit', (code) => reject(new Error(`${what} exited early (${code}): ${stderr}`)))
  })
  return {
    proc,
    ready,
    stderr: () => stderr,
    exited,
    command: (cmd, extra = {}) =>
      new Promise((resolve, reject) => {
        const id = nextId++
        waiting.set(id, (msg) => {
          waiting.delete(id)
          if (msg.error) reject(new Error(String(msg.error)))
          else resolve(msg as never)
        })
        proc.stdin.write(JSON.stringify({id, cmd, ...extra}) + '\n')
      }),
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      await exited
    },
  }
}

export async function spawnOwner(args: string[] = []): Promise<Owner> {
  const child = await spawnLineChild<OwnerReady>(path.join(here, 'fixtures', 'owner.ts'), args, 'owner')
  const owner: Owner = {
    proc: child.proc,
    ready: child.ready,
    grantKey: Buffer.from(child.ready.grantKey ?? '', 'hex'),
    exited: child.exited,
    command: child.command,
    async kill(signal = 'SIGKILL') {
      live.delete(owner)
      await child.kill(signal)
    },
  }
  live.add(owner)
  return owner
}

/** For `after` hooks: SIGKILL every owner still running. */
export async function killAllOwners(): Promise<void> {
  await Promise.all([...live].map((o) => o.kill('SIGKILL')))
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Fast deterministic pseudo-random bytes (crypto.randomBytes is slow for 256 MiB). */
export function pseudoRandom(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafeSlow(length)
  const words = new Uint32Array(out.buffer, out.byteOffset, Math.floor(length / 4))
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x
  }
  for (let i = words.length * 4; i < length; i++) out[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24
  return out
}

/** Same as the owner's "fill" command. */
export function fillPattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) out[i] = (i * 131 + seed) & 255
  return out
}
