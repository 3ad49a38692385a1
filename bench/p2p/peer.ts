/**
 * One peer of the P2P benchmark, run inside its network namespace by bench/p2p/run.ts.
 * Argument: JSON {etcd, clusterId, peer, host, token, action: 'register'|'get', name, file?,
 * shardSize?, advertise?, concurrency?}. Prints JSON lines: {"ready":...} once it can start,
 * {"done":...} after a download. A get waits for a line on stdin before it starts, so every
 * peer of a run starts at the same moment. SIGTERM closes the store and exits 0.
 */
import {createInterface} from 'node:readline'

import {toMooncakeError} from '../../src/lib/errors.js'
import {P2PStore} from '../../src/lib/p2p/store.js'

interface Config {
  etcd: string
  clusterId: string
  peer: string
  host: string
  token: string
  action: 'register' | 'get'
  name: string
  file?: string
  shardSize?: number
  advertise?: boolean
  concurrency?: number
}

const config = JSON.parse(process.argv[2]) as Config
const out = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

let store: P2PStore | undefined
async function shutdown(code: number): Promise<never> {
  await store?.close().catch(() => {})
  process.exit(code)
}
process.on('SIGTERM', () => void shutdown(0))

try {
  store = await P2PStore.open({
    etcd: config.etcd,
    clusterId: config.clusterId,
    peerName: config.peer,
    host: config.host,
    token: config.token,
    transport: 'tcp',
    leaseTtlMs: 5_000,
    concurrency: config.concurrency ?? 4,
    readTimeoutMs: 120_000,
  })
  if (config.action === 'register') {
    const t0 = Date.now()
    const info = await store.register(config.name, [{file: config.file!}], {maxShardSize: config.shardSize})
    out({ready: {...info, endpoints: store.endpoints, loadSeconds: (Date.now() - t0) / 1000}})
  } else {
    // Each peer's memory is allocated before the start: on real hosts that runs in parallel on
    // each host's own CPUs; here all peers share 2 vCPUs, which would charge N times for it.
    await store.prepare(config.name)
    out({ready: {peer: store.peerName, endpoints: store.endpoints}})
    await new Promise<void>((resolve) => createInterface({input: process.stdin}).once('line', () => resolve()))
    const started = Date.now()
    const result = await store.getReplica(config.name, null, {advertise: config.advertise ?? true, stallTimeoutMs: 120_000})
    out({done: {peer: store.peerName, seconds: (Date.now() - started) / 1000, finishedAt: Date.now(), bytesByHolder: result.bytesByHolder, retries: result.retries}})
  }
} catch (err) {
  const e = toMooncakeError(err)
  out({error: {code: e.code, message: e.message}})
  await shutdown(1)
}
