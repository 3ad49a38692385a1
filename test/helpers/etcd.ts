/**
 * A real etcd (Debian's etcd-server) for integration tests: started on free loopback ports with
 * a temporary data dir and fast election timing (~85 ms start-up), stopped by pid. With `tls` the
 * client port serves https only and requires client certificates signed by `tls.ca`
 * (--client-cert-auth); the peer port stays plaintext (one member, loopback).
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import os from 'node:os'
import path from 'node:path'

import {freePort} from './processes.js'

// Importers of freePort from here keep working; the one definition is in processes.ts.
export {freePort}

/** Paths of PEM files (e.g. from test/helpers/certs.ts). */
export interface EtcdTls {
  /** The server's certificate and key; also presented by the health probe as its client certificate. */
  cert: string
  key: string
  /** CA that signs client certificates (--trusted-ca-file); the probe also verifies the server with it. */
  ca: string
}

export interface EtcdServer {
  /** `127.0.0.1:PORT` of the client listener. */
  endpoint: string
  /** The client URL: `http://127.0.0.1:PORT`, or `https://...` with TLS. */
  url: string
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

async function waitHealthy(endpoint: string, child: ChildProcess, timeoutMs: number, log: () => string, secure?: EtcdTls): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const port = Number(endpoint.split(':')[1])
  const material = secure && {ca: readFileSync(secure.ca), cert: readFileSync(secure.cert), key: readFileSync(secure.key)}
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const req = material ? tls.connect({port, host: '127.0.0.1', ...material}) : net.connect(port, '127.0.0.1')
      req.setTimeout(500)
      req.on(material ? 'secureConnect' : 'connect', () => {
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

export async function startEtcd(options: {timeoutMs?: number; tls?: EtcdTls} = {}): Promise<EtcdServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-etcd-'))
  const clientPort = await freePort()
  const peerPort = await freePort()
  const endpoint = `127.0.0.1:${clientPort}`
  const secure = options.tls
  const url = `${secure ? 'https' : 'http'}://${endpoint}`
  const tlsArgs = secure ? ['--cert-file', secure.cert, '--key-file', secure.key, '--trusted-ca-file', secure.ca, '--client-cert-auth'] : []
  let output = ''
  const launch = (): ChildProcess => {
    const child = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', dataDir,
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        ...tlsArgs,
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
    url,
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
      await waitHealthy(endpoint, server.process, options.timeoutMs ?? 10_000, () => output, secure)
    },
    async stop() {
      await server.kill('SIGTERM')
      rmSync(dataDir, {recursive: true, force: true})
    },
  }
  await waitHealthy(endpoint, server.process, options.timeoutMs ?? 10_000, () => output, secure)
  return server
}
