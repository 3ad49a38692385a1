/**
 * Real processes for integration tests and benchmarks: spawn a TypeScript fixture with
 * `node --import tsx`, wait for its JSON ready line on stdout, send it JSON commands on stdin,
 * and kill everything that was started (killAll in after hooks; process exit kills stragglers).
 */
import {spawn, type ChildProcess} from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, host, () => {
      const {port} = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export interface Fixture<R = Record<string, unknown>> {
  child: ChildProcess
  pid: number
  /** The parsed JSON ready line. */
  ready: R
  /** Everything printed on stderr (for failure messages). */
  stderr(): string
  /** Sends one JSON command on stdin and resolves with the next JSON reply line. */
  command<T = Record<string, unknown>>(cmd: Record<string, unknown>, timeoutMs?: number): Promise<T>
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  kill(signal?: NodeJS.Signals): Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

const running = new Set<ChildProcess>()

process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
})

/** Starts `node --import tsx SCRIPT ARGS` and waits (up to timeoutMs) for a stdout line that parses as JSON. */
export async function startFixture<R = Record<string, unknown>>(
  script: string,
  args: string[] = [],
  options: {env?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[]} = {},
): Promise<Fixture<R>> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', path.resolve(ROOT, script), ...args], {
    cwd: ROOT,
    env: {...process.env, ...options.env},
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  running.add(child)
  let err = ''
  child.stderr!.on('data', (d) => {
    err += d
    if (err.length > 100_000) err = err.slice(-50_000)
  })
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child)
      resolve({code, signal})
    }),
  )
  const lines: string[] = []
  const lineWaiters: Array<(line: string) => void> = []
  let buf = ''
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      if (!line.startsWith('{')) continue
      const w = lineWaiters.shift()
      if (w) w(line)
      else lines.push(line)
    }
  })
  const nextLine = (timeoutMs: number, what: string) =>
    new Promise<string>((resolve, reject) => {
      const queued = lines.shift()
      if (queued !== undefined) return resolve(queued)
      const timer = setTimeout(() => reject(new Error(`${script}: no ${what} within ${timeoutMs} ms; stderr: ${err.slice(-2000)}`)), timeoutMs)
      const onExit = () => reject(new Error(`${script} exited before its ${what}; stderr: ${err.slice(-2000)}`))
      void exited.then(onExit)
      lineWaiters.push((line) => {
        clearTimeout(timer)
        resolve(line)
      })
    })
  let ready: R
  try {
    ready = JSON.parse(await nextLine(options.timeoutMs ?? 30_000, 'ready line')) as R
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  }
  return {
    child,
    pid: child.pid as number,
    ready,
    stderr: () => err,
    async command<T>(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
      child.stdin!.write(`${JSON.stringify(cmd)}\n`)
      return JSON.parse(await nextLine(timeoutMs, `reply to ${String(cmd.cmd)}`)) as T
    },
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/** SIGKILLs every fixture still running (use in after hooks). */
export async function killAll(): Promise<void> {
  const pending: Promise<unknown>[] = []
  for (const child of [...running]) {
    pending.push(new Promise((resolve) => child.once('exit', resolve)))
    try {
      child.kill('SIGKILL')
    } catch {}
  }
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 3000))])
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(check: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs: number, what: string, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
