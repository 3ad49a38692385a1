/**
 * Runs the BUILT cli (`node bin/run.js`, so `npm run build` first) as real processes, the way
 * scripts do, with an environment cleaned of the caller's MOONCAKE_* settings and config file.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin/run.js')

/** A private XDG_CONFIG_HOME/HOME so no real config file leaks into a test. */
export const SANDBOX = mkdtempSync(path.join(os.tmpdir(), 'mooncake-cli-'))

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MOONCAKE_') && k !== 'DEBUG') env[k] = v
  return {...env, HOME: SANDBOX, XDG_CONFIG_HOME: path.join(SANDBOX, '.config'), NO_COLOR: '1', ...extra}
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Wall time, ms. */
  ms: number
}

const children = new Set<ChildProcess>()

/** Runs `mooncake ARGS` to completion (killed after `killAfterMs`). */
export function run(args: string[], options: {env?: Record<string, string>; killAfterMs?: number} = {}): Promise<RunResult> {
  const started = Date.now()
  const child = spawn(process.execPath, [BIN, ...args], {cwd: ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe']})
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 20_000)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({code, signal, stdout, stderr, ms: Date.now() - started})
    })
  })
}

export interface Server {
  child: ChildProcess
  /** The ready line (or JSON object) as printed. */
  ready: string
  stderr(): string
  /** Resolves with the exit code (or signal) once the process is gone. */
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string}>
}

/** Starts a long-running command and waits for its ready line on stdout. */
export function startServer(args: string[], options: {env?: Record<string, string>; readyTimeoutMs?: number} = {}): Promise<Server> {
  const child = spawn(process.execPath, [BIN, ...args], {cwd: ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe']})
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string}>((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child)
      resolve({code, signal, stdout})
    }),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`no ready line within ${options.readyTimeoutMs ?? 15_000} ms; stderr:\n${stderr}`))
    }, options.readyTimeoutMs ?? 15_000)
    child.stdout!.on('data', (d) => {
      stdout += d
      const newline = stdout.indexOf('\n')
      if (newline >= 0) {
        clearTimeout(timer)
        resolve({child, ready: stdout.slice(0, newline), stderr: () => stderr, exited})
      }
    })
    exited.then(({code, signal}) => {
      clearTimeout(timer)
      reject(new Error(`exited (${code ?? signal}) before its ready line; stderr:\n${stderr}`))
    })
  })
}

/** `ready master 127.0.0.1:41234 (http 127.0.0.1:41235)` -> `127.0.0.1:41234`. */
export function addressFromReady(line: string): string {
  const match = /^ready master (\S+)/.exec(line)
  if (!match) throw new Error(`not a master ready line: ${line}`)
  return match[1]
}

/** Kills every process this file spawned, and removes the sandbox: call from test.after. */
export function cleanup(): void {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
  rmSync(SANDBOX, {recursive: true, force: true})
}

/** stderr lines, without empty ones. */
export function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '')
}
