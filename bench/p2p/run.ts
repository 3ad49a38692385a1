/**
 * P2P distribution benchmark (run as root, Linux; about 6 minutes with the defaults):
 *
 *   sudo node --import tsx bench/p2p/run.ts
 *
 * Builds one network namespace per host on a bridge (all in namespaces it creates, addresses
 * 10.200.0.0/24, nothing left in the root namespace): etcd (unshaped), a seeder and up to 8
 * peers, each host's link capped with tbf on egress and ifb + tbf on ingress. Then distributes
 * one payload from the seeder to 1, 2, 4 and 8 peers twice in the same run:
 *   - p2p:      every peer serves each shard as soon as it has it (the P2P store as shipped);
 *   - baseline: peers serve nobody, so every byte comes from the seeder (single source).
 * A run's time is from the moment every peer is told to start to the last peer's finish.
 * Peers keep the replica in memory (no destination file, so the disk is not measured); every
 * shard is verified with CRC32C. Prints a table, writes bench/p2p/results/{results.json,
 * p2p-distribution.svg}, and exits 1 when 8 peers take more than 1.5x the time of 1 peer.
 *
 * Environment: P2P_BENCH_RATE (tc rate per direction, default 500mbit), P2P_BENCH_SIZE (1GiB),
 * P2P_BENCH_SHARD (8MiB), P2P_BENCH_PEERS (1,2,4,8), P2P_BENCH_CONCURRENCY (4).
 */
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {randomFillSync} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {parseSize} from '../../src/lib/units.js'
import {renderSvg} from './svg.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..', '..')
const RESULTS = path.join(HERE, 'results')
const RATE = process.env.P2P_BENCH_RATE ?? '500mbit'
const SIZE = parseSize(process.env.P2P_BENCH_SIZE ?? '1GiB')
const SHARD = parseSize(process.env.P2P_BENCH_SHARD ?? '8MiB')
const COUNTS = (process.env.P2P_BENCH_PEERS ?? '1,2,4,8').split(',').map(Number)
const CONCURRENCY = Number(process.env.P2P_BENCH_CONCURRENCY ?? 4)
const MTU = process.env.P2P_BENCH_MTU ?? '1500'
const MODES = (process.env.P2P_BENCH_MODES ?? 'p2p,baseline').split(',') as Array<'p2p' | 'baseline'>
const MAX_PEERS = Math.max(...COUNTS)
const PREFIX = 'mcp2p'
const BRIDGE_NS = `${PREFIX}-br`
const ETCD_NS = `${PREFIX}-etcd`
const ETCD_IP = '10.200.0.254'
const TOKEN = 'p2p-bench-token'
const WORK = path.join(os.tmpdir(), 'mooncake-p2p-bench')
const hostNs = (i: number): string => `${PREFIX}-h${i}`
const hostIp = (i: number): string => `10.200.0.${10 + i}`

const children = new Set<ChildProcess>()

function sh(cmd: string, args: string[], quiet = false): string {
  try {
    return execFileSync(cmd, args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  } catch (err) {
    if (quiet) return ''
    const e = err as {stderr?: string; message: string}
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`)
  }
}

function succeeds(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, {stdio: 'ignore', timeout: 5_000})
    return true
  } catch {
    return false
  }
}

function namespaces(): string[] {
  return sh('ip', ['netns', 'list'], true)
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(`${PREFIX}-`))
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
  for (const ns of namespaces()) sh('ip', ['netns', 'del', ns], true)
}

function addHost(ns: string, ip: string, index: number, shaped: boolean): void {
  const inner = `${PREFIX}v${index}`
  const outer = `${PREFIX}b${index}`
  sh('ip', ['netns', 'add', ns])
  sh('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer])
  sh('ip', ['link', 'set', inner, 'netns', ns])
  sh('ip', ['link', 'set', outer, 'netns', BRIDGE_NS])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'set', outer, 'master', 'br0'])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'set', outer, 'up'])
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  sh('ip', ['-n', ns, 'link', 'set', inner, 'name', 'eth0'])
  sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'set', outer, 'mtu', MTU])
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'mtu', MTU])
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
  if (!shaped) return
  const tbf = ['tbf', 'rate', RATE, 'burst', '1mb', 'latency', '100ms']
  sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', ...tbf])
  sh('ip', ['-n', ns, 'link', 'add', 'ifb0', 'type', 'ifb'])
  sh('ip', ['-n', ns, 'link', 'set', 'ifb0', 'mtu', MTU])
  sh('ip', ['-n', ns, 'link', 'set', 'ifb0', 'up'])
  sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'handle', 'ffff:', 'ingress'])
  sh('ip', ['netns', 'exec', ns, 'tc', 'filter', 'add', 'dev', 'eth0', 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'ifb0'])
  sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'ifb0', 'root', ...tbf])
}

function setupNetwork(): void {
  sh('ip', ['netns', 'add', BRIDGE_NS])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'add', 'br0', 'type', 'bridge'])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'set', 'br0', 'up'])
  addHost(ETCD_NS, ETCD_IP, 99, false)
  for (let i = 0; i <= MAX_PEERS; i++) addHost(hostNs(i), hostIp(i), i, true)
}

interface Proc {
  child: ChildProcess
  next(key: string, timeoutMs: number): Promise<Record<string, unknown>>
  exited: Promise<number | null>
}

function inNs(ns: string, args: string[], name: string): Proc {
  const child = spawn('ip', ['netns', 'exec', ns, ...args], {cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe']})
  children.add(child)
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  createInterface({input: child.stdout!}).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {}
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child)
      for (const w of waiters.splice(0)) w()
      resolve(code)
    }),
  )
  return {
    child,
    exited,
    async next(key, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const hit = lines.find((l) => key in l)
        if (hit) return hit
        const err = lines.find((l) => 'error' in l)
        if (err) throw new Error(`${name}: ${JSON.stringify(err.error)}`)
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}): ${stderr}`)
        if (Date.now() > deadline) throw new Error(`${name}: no "${key}" within ${timeoutMs} ms: ${stderr}`)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, deadline - Date.now()))
          waiters.push(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
    },
  }
}

async function startEtcd(): Promise<Proc> {
  const data = path.join(WORK, 'etcd-data')
  rmSync(data, {recursive: true, force: true})
  const etcd = inNs(
    ETCD_NS,
    ['etcd', '--name', 'bench', '--data-dir', data, '--listen-client-urls', `http://${ETCD_IP}:2379`, '--advertise-client-urls', `http://${ETCD_IP}:2379`,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'bench=http://127.0.0.1:2380',
      '--heartbeat-interval', '10', '--election-timeout', '100', '--log-level', 'error', '--logger', 'zap'],
    'etcd',
  )
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (succeeds('ip', ['netns', 'exec', ETCD_NS, 'etcdctl', '--endpoints', `${ETCD_IP}:2379`, 'endpoint', 'health'])) return etcd
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('etcd did not become healthy')
}

function payloadFile(): string {
  mkdirSync(WORK, {recursive: true})
  const file = path.join(WORK, `payload-${SIZE}.bin`)
  if (existsSync(file) && statSync(file).size === SIZE) return file
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(16 * 2 ** 20)
  for (let done = 0; done < SIZE; done += chunk.length) {
    randomFillSync(chunk)
    writeSync(fd, chunk, 0, Math.min(chunk.length, SIZE - done))
  }
  closeSync(fd)
  return file
}

function peerArgs(config: Record<string, unknown>): string[] {
  return [process.execPath, '--import', 'tsx', path.join(HERE, 'peer.ts'), JSON.stringify({etcd: `${ETCD_IP}:2379`, clusterId: 'bench', token: TOKEN, ...config})]
}

interface RunResult {
  mode: 'p2p' | 'baseline'
  peers: number
  seconds: number
  perPeer: number[]
  seederGiB: number
}

async function distribute(mode: 'p2p' | 'baseline', n: number): Promise<RunResult> {
  const peers = Array.from({length: n}, (_, k) => {
    const i = k + 1
    return inNs(hostNs(i), peerArgs({peer: `${mode}-${n}-${i}`, host: hostIp(i), action: 'get', name: 'ckpt', advertise: mode === 'p2p', concurrency: CONCURRENCY}), `${mode}-${n}-${i}`)
  })
  await Promise.all(peers.map((p) => p.next('ready', 60_000)))
  const t0 = Date.now()
  for (const p of peers) p.child.stdin!.write('go\n')
  const done = (await Promise.all(peers.map((p) => p.next('done', 600_000)))).map(
    (d) => d.done as {seconds: number; finishedAt: number; bytesByHolder: Record<string, number>},
  )
  const seconds = (Math.max(...done.map((d) => d.finishedAt)) - t0) / 1000
  const seederBytes = done.reduce((s, d) => s + (d.bytesByHolder.seeder ?? 0), 0)
  for (const p of peers) p.child.kill('SIGTERM')
  await Promise.all(peers.map((p) => p.exited))
  return {mode, peers: n, seconds, perPeer: done.map((d) => d.seconds), seederGiB: seederBytes / 2 ** 30}
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench/p2p/run.ts needs root (network namespaces, tc). Run: sudo node --import tsx bench/p2p/run.ts')
    return 2
  }
  for (const tool of ['ip', 'tc', 'etcd', 'etcdctl']) {
    if (!succeeds('sh', ['-c', `command -v ${tool}`])) {
      console.error(`missing ${tool}: apt-get install -y iproute2 etcd-server etcd-client`)
      return 2
    }
  }
  cleanup()
  const started = Date.now()
  const file = payloadFile()
  setupNetwork()
  await startEtcd()
  console.log(`P2P distribution: ${SIZE / 2 ** 20} MiB payload, ${SHARD / 2 ** 20} MiB shards, every host capped at ${RATE} each way, ${CONCURRENCY} shards in flight per peer`)
  const seeder = inNs(hostNs(0), peerArgs({peer: 'seeder', host: hostIp(0), action: 'register', name: 'ckpt', file, shardSize: SHARD}), 'seeder')
  const seeded = (await seeder.next('ready', 120_000)).ready as {loadSeconds: number}
  console.log(`seeder ready (file read into its segment in ${seeded.loadSeconds.toFixed(2)} s)`)

  const results: RunResult[] = []
  for (const mode of MODES) {
    for (const n of COUNTS) {
      const r = await distribute(mode, n)
      results.push(r)
      console.log(`  ${mode.padEnd(8)} ${String(n).padStart(2)} peer(s): ${r.seconds.toFixed(2)} s  (seeder sent ${r.seederGiB.toFixed(2)} GiB; per peer ${r.perPeer.map((s) => s.toFixed(1)).join(' ')})`)
    }
  }
  seeder.child.kill('SIGTERM')
  await seeder.exited
  if (MODES.length < 2) return 0

  const at = (mode: string, n: number): RunResult | undefined => results.find((r) => r.mode === mode && r.peers === n)
  const one = at('p2p', COUNTS[0])!.seconds
  const baseOne = at('baseline', COUNTS[0])!.seconds
  const ideal = SIZE / (parseRate(RATE) / 8)
  const rows = COUNTS.map((n) => {
    const p = at('p2p', n)!
    const b = at('baseline', n)!
    return `| ${n} | ${p.seconds.toFixed(2)} | ${(p.seconds / one).toFixed(2)}x | ${p.seederGiB.toFixed(2)} | ${b.seconds.toFixed(2)} | ${(b.seconds / baseOne).toFixed(2)}x |`
  })
  const table = [
    `| peers | P2P store (s) | vs 1 peer | seeder sent (GiB) | single source (s) | vs 1 peer |`,
    `|---:|---:|---:|---:|---:|---:|`,
    ...rows,
  ].join('\n')
  console.log(`\n${table}\n`)
  console.log(`one transfer at ${RATE}: ${ideal.toFixed(2)} s (ideal for any number of peers)`)
  mkdirSync(RESULTS, {recursive: true})
  const meta = {date: new Date().toISOString(), rate: RATE, size: SIZE, shard: SHARD, concurrency: CONCURRENCY, cpus: os.cpus().length, kernel: os.release(), idealSeconds: ideal}
  writeFileSync(path.join(RESULTS, 'results.json'), `${JSON.stringify({...meta, results}, null, 2)}\n`)
  writeFileSync(
    path.join(RESULTS, 'p2p-distribution.svg'),
    renderSvg({
      title: `Distributing ${SIZE / 2 ** 30} GiB to N peers (every link ${RATE})`,
      counts: COUNTS,
      series: [
        {label: 'P2P store', color: '#1f77b4', values: COUNTS.map((n) => at('p2p', n)!.seconds)},
        {label: 'single source', color: '#d62728', values: COUNTS.map((n) => at('baseline', n)!.seconds)},
      ],
      ideal,
    }),
  )
  console.log(`wrote ${path.relative(ROOT, RESULTS)}/results.json and p2p-distribution.svg; total ${((Date.now() - started) / 1000).toFixed(0)} s`)
  const last = at('p2p', MAX_PEERS)!.seconds
  const ok = last <= 1.5 * one
  console.log(`${ok ? 'PASS' : 'FAIL'}: ${MAX_PEERS} peers took ${(last / one).toFixed(2)}x the time of ${COUNTS[0]} (target <= 1.5x); single source took ${(at('baseline', MAX_PEERS)!.seconds / baseOne).toFixed(2)}x`)
  return ok ? 0 : 1
}

function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)?bit$/i.exec(rate)
  if (!m) return NaN
  return Number(m[1]) * {k: 1e3, m: 1e6, g: 1e9, '': 1}[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g' | '']
}

process.on('SIGINT', () => {
  cleanup()
  process.exit(130)
})

let code = 1
try {
  code = await main()
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? err}`)
} finally {
  cleanup()
}
process.exit(code)
