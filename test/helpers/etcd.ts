/**
 * A real etcd (Debian's etcd-server) for integration tests: started on free loopback ports with
 * a temporary data dir and fast election timing (~85 ms start-up), stopped by pid.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export interface EtcdServer {
  /** `127.0.0.1:PORT` of the client listener. */
  endpoint: string
  clientPort: number
  peerPort: number
  dataDir: string
  process: ChildProcess
  /** SIGKILL (or signal) the server and wait until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Start again on the same ports and data dir (after kill). */
  restart(): Promise<void>
  /** Stop it and remove its data dir. */
  stop(): Promise<void>
}

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

async function waitHealthy(endpoint: string, child: ChildProcess, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const req = net.connect(Number(endpoint.split(':')[1]), '127.0.0.1')
      req.setTimeout(500)
      req.on('connect', () => {
        // A raw HTTP/1.1 request: etcd's client port also answers /health over HTTP.
        req.write(`GET /health HTTP/1.1\r\nHost: ${endpoint}\r\nConnection: close\r\n\r\n`)
      })
      let body = ''
      req.on('data', (d) => (body += d))
      req.on('end', () => resolve(body.includes('"health":"true"')))
      req.on('error', () => resolve(false))
      req.on('timeout', () => {
        req.destroy()
        resolve(false)
      })
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`etcd at ${endpoint} not healthy within ${timeoutMs} ms: ${log()}`)
}

export async function startEtcd(options: {timeoutMs?: number} = {}): Promise<EtcdServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-etcd-'))
  const clientPort = await freePort()
  const peerPort = await freePort()
  const endpoint = `127.0.0.1:${clientPort}`
  let output = ''
  const launch = (): ChildProcess => {
    const child = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', dataDir,
        '--listen-client-urls', `http://${endpoint}`,
        '--advertise-client-urls', `http://${endpoint}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
        '--initial-cluster-state', 'new',
        '--heartbeat-interval', '10',
        '--election-timeout', '100',
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'error',
      ],
      {stdio: ['ignore', 'ignore', 'pipe']},
    )
    child.stderr?.on('data', (d) => {
      output = (output + d).slice(-4000)
    })
    return child
  }
  const server: EtcdServer = {
    endpoint,
    clientPort,
    peerPort,
    dataDir,
    process: launch(),
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const child = server.process
      if (child.exitCode !== null || child.signalCode !== null) return
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill(signal)
      })
    },
    async restart() {
      await server.kill()
      server.process = launch()
      await waitHealthy(endpoint, server.process, options.timeoutMs ?? 10_000, () => output)
    },
    async stop() {
      await server.kill('SIGTERM')
      rmSync(dataDir, {recursive: true, force: true})
    },
  }
  await waitHealthy(endpoint, server.process, options.timeoutMs ?? 10_000, () => output)
  return server
}
