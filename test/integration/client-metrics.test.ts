/**
 * Client and segment-owner metrics with real processes and the native engine: a master and a
 * segment owner in their own processes, a second owner (with metrics) and two clients (auto and
 * tcp, with metrics) in this one. Byte counters by path (same-host shared memory vs TCP), served
 * bytes read from the engine's server counters, pings, and re-mounts after a master restart.
 */
import {randomBytes} from 'node:crypto'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import {ClientMetrics, startMetricsServer} from '../../src/lib/metrics/client.js'
import {parsePrometheusText} from '../../src/lib/metrics/parse.js'
import {freePort, killAll, startFixture, waitFor, type Fixture} from '../helpers/processes.js'

const MiB = 2 ** 20
const MASTER = 'test/integration/fixtures/client-master.ts'

interface Ctx {
  masterOptions: string
  master: Fixture<{address: string}>
  remote: Fixture<{name: string}>
  owner: SegmentOwner
  ownerMetrics: ClientMetrics
  auto: MooncakeClient
  autoMetrics: ClientMetrics
  tcp: MooncakeClient
  tcpMetrics: ClientMetrics
}

const t = suite<Ctx>('client metrics')

async function scrape(m: ClientMetrics) {
  return parsePrometheusText(await m.text())
}

t.before(async (ctx) => {
  ctx.masterOptions = JSON.stringify({port: await freePort(), clientTtlMs: 5000})
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  const masterAddress = ctx.master.ready.address
  ctx.remote = await startFixture('test/integration/fixtures/segment-owner.ts', [JSON.stringify({masterAddress, size: 32 * MiB, name: 'remote-seg'})], {timeoutMs: 60_000})
  ctx.ownerMetrics = new ClientMetrics({labels: {role: 'segment'}})
  ctx.owner = await SegmentOwner.start({masterAddress, size: 32 * MiB, name: 'local-seg', pingIntervalMs: 100, rpcTimeoutMs: 2000, metrics: ctx.ownerMetrics})
  ctx.autoMetrics = new ClientMetrics()
  ctx.tcpMetrics = new ClientMetrics()
  ctx.auto = await MooncakeClient.connect({masterAddress, transport: 'auto', timeoutMs: 20_000, metrics: ctx.autoMetrics})
  ctx.tcp = await MooncakeClient.connect({masterAddress, transport: 'tcp', timeoutMs: 20_000, metrics: ctx.tcpMetrics})
})

t.after(async (ctx) => {
  await ctx.auto?.close()
  await ctx.tcp?.close()
  await ctx.owner?.close()
  await killAll()
})

t('bytes by path: same-host shared memory with transport auto, TCP with transport tcp', async (ctx) => {
  const x = randomBytes(3 * MiB + 5)
  const y = randomBytes(2 * MiB + 7)
  await ctx.auto.put('x', x, {preferredSegment: 'remote-seg'})
  assert.ok((await ctx.auto.get('x')).equals(x))
  await ctx.tcp.put('y', y, {preferredSegment: 'remote-seg'})
  assert.ok((await ctx.tcp.get('y')).equals(y))
  assert.ok((await ctx.tcp.get('x')).equals(x))
  await ctx.tcp.get('missing').catch(() => {})

  const a = await scrape(ctx.autoMetrics)
  assert.is(a.get('mooncake_client_bytes_total', {op: 'put', path: 'local'}), x.length)
  assert.is(a.get('mooncake_client_bytes_total', {op: 'get', path: 'local'}), x.length)
  assert.is(a.get('mooncake_client_bytes_total', {op: 'put', path: 'tcp'}), undefined)
  assert.is(a.get('mooncake_client_operations_total', {op: 'put', result: 'ok'}), 1)
  assert.is(a.get('mooncake_client_operations_total', {op: 'get', result: 'ok'}), 1)

  const b = await scrape(ctx.tcpMetrics)
  assert.is(b.get('mooncake_client_bytes_total', {op: 'put', path: 'tcp'}), y.length)
  assert.is(b.get('mooncake_client_bytes_total', {op: 'get', path: 'tcp'}), x.length + y.length)
  assert.is(b.get('mooncake_client_bytes_total', {op: 'get', path: 'local'}), undefined)
  assert.is(b.get('mooncake_client_operations_total', {op: 'get', result: 'ok'}), 2)
  assert.is(b.get('mooncake_client_operations_total', {op: 'get', result: 'OBJECT_NOT_FOUND'}), 1)
  assert.is(b.get('mooncake_client_value_size_bytes_sum', {op: 'get'}), x.length + y.length)
})

t('a segment owner reports the bytes it served over TCP, and its pings', async (ctx) => {
  const z = randomBytes(4 * MiB + 9)
  const before = await scrape(ctx.ownerMetrics)
  const served = (m: typeof before, direction: string) => m.get('mooncake_segment_served_bytes_total', {direction}) ?? 0
  await ctx.tcp.put('z', z, {preferredSegment: 'local-seg'})
  assert.ok((await ctx.tcp.get('z')).equals(z))
  const after = await scrape(ctx.ownerMetrics)
  // Socket bytes: the value plus the protocol's framing (a few bytes per slice).
  const wrote = served(after, 'write') - served(before, 'write')
  const read = served(after, 'read') - served(before, 'read')
  assert.ok(wrote >= z.length && wrote < z.length + 64 * 1024, `written into the segment: ${wrote}`)
  assert.ok(read >= z.length && read < z.length + 64 * 1024, `read from the segment: ${read}`)
  assert.ok((after.get('mooncake_segment_served_requests_total') ?? 0) > (before.get('mooncake_segment_served_requests_total') ?? 0))
  assert.is(after.all('mooncake_segment_pings_total')[0]!.labels.role, 'segment')
  // The first ping after a mount asks for a re-mount; the ones after it (every 100 ms) are OK.
  await waitFor(async () => ((await scrape(ctx.ownerMetrics)).get('mooncake_segment_pings_total', {result: 'OK'}) ?? 0) >= 1, 10_000, 'an OK ping is counted')

  // The same text over HTTP (what Prometheus scrapes).
  const http = await startMetricsServer(ctx.ownerMetrics)
  try {
    const body = await (await fetch(`http://${http.address}/metrics`)).text()
    assert.ok((parsePrometheusText(body).get('mooncake_segment_served_bytes_total', {direction: 'read'}) ?? 0) >= read)
  } finally {
    await http.close()
  }
})

t('a master restart: the owner re-mounts and counts it', async (ctx) => {
  const remounts = async () => (await scrape(ctx.ownerMetrics)).get('mooncake_segment_remounts_total') ?? 0
  // (The master may already have asked for one right after the mount.)
  const before = await remounts()
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.is(await remounts(), before, 'no re-mount while the master runs')
  await ctx.master.kill('SIGTERM')
  ctx.master = await startFixture(MASTER, [ctx.masterOptions])
  await waitFor(async () => (await remounts()) > before, 20_000, 'the owner re-mounts')
  await waitFor(() => ctx.owner.state === 'mounted', 10_000, 'mounted again')
})

t.run()
