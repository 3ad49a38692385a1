// MooncakeClient and SegmentOwner record into the ClientMetrics given in their options: the
// values are read back from the Prometheus text after known sequences of real puts and gets
// (fake data path and master, see client.test.ts). Real processes and the native engine:
// test/integration/client-metrics.test.ts.
import {randomBytes} from 'node:crypto'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import {MooncakeError} from '../../src/lib/errors.js'
import type {MasterApi} from '../../src/lib/master/api.js'
import {ClientMetrics} from '../../src/lib/metrics/client.js'
import {parsePrometheusText} from '../../src/lib/metrics/parse.js'
import {FakeDataPath, FakeNetwork} from '../helpers/fake-data-path.js'
import {FakeMaster} from '../helpers/fake-master.js'

const MiB = 2 ** 20

async function scrape(m: ClientMetrics) {
  return parsePrometheusText(await m.text())
}

async function setup(client: {hostId?: string; transport?: 'auto' | 'tcp'; master?: (m: MasterApi) => MasterApi} = {}) {
  const net = new FakeNetwork()
  const fm = new FakeMaster()
  const api = fm.api()
  const ownerMetrics = new ClientMetrics({labels: {role: 'segment'}})
  const owners: SegmentOwner[] = []
  for (let i = 0; i < 2; i++) {
    owners.push(await SegmentOwner.start({master: api, size: 16 * MiB, name: `seg${i}`, dataPath: new FakeDataPath(net), hostId: `host-${i}`, pingIntervalMs: 10, metrics: ownerMetrics}))
  }
  const metrics = new ClientMetrics({labels: {role: 'client'}})
  const c = await MooncakeClient.connect({
    master: client.master ? client.master(api) : api,
    dataPath: new FakeDataPath(net),
    hostId: client.hostId ?? 'client-host',
    transport: client.transport ?? 'auto',
    sliceSize: 64 * 1024,
    stagingBytes: MiB,
    coalesce: false,
    metrics,
  })
  return {
    net,
    fm,
    owners,
    client: c,
    metrics,
    ownerMetrics,
    close: async () => {
      await c.close()
      for (const o of owners) await o.close()
    },
  }
}

test('operations by op and result, value bytes by path, sizes once per value', async () => {
  // Same host as seg0: its replicas take the local path, seg1's the TCP path.
  const {client, metrics, close} = await setup({hostId: 'host-0'})
  try {
    const a = randomBytes(100_000)
    const b = randomBytes(300_000)
    await client.put('a', a, {replicaNum: 2}) // one replica on each segment
    await client.put('b', b, {replicaNum: 1})
    // Where b landed decides its path (the fake master ignores preferences).
    const bLocal = (await client.master.getReplicaList('b')).replicas[0].memory!.segment === 'seg0'
    assert.ok((await client.get('a')).equals(a)) // read from seg0 (same host first)
    assert.ok((await client.get('b')).equals(b))
    await client.get('missing').catch(() => {})
    assert.is(await client.isExist('a'), true)
    await client.query('b')
    const listed: string[] = []
    for await (const k of client.getAllKeys()) listed.push(k)
    assert.equal(listed.sort(), ['a', 'b'])
    const batch = await client.batchGet(['a', 'b', 'nope'])
    assert.equal(batch.map((r) => r.ok), [true, true, false])
    await client.remove('b', {force: true})

    const m = await scrape(metrics)
    const ops = (op: string, result = 'ok') => m.get('mooncake_client_operations_total', {op, result}) ?? 0
    assert.is(ops('put'), 2)
    assert.is(ops('get'), 3, 'two gets and one batchGet')
    assert.is(ops('get', 'OBJECT_NOT_FOUND'), 1)
    assert.is(ops('exist'), 1)
    assert.is(ops('query'), 1)
    assert.is(ops('list'), 1)
    assert.is(ops('remove'), 1)
    assert.is(m.get('mooncake_client_operation_duration_seconds_count', {op: 'put'}), 2)
    // put: a to seg0 (local) and seg1 (tcp), b to one of them. get: a twice from seg0 (same host first), b twice.
    assert.is(m.get('mooncake_client_bytes_total', {op: 'put', path: 'local'}), a.length + (bLocal ? b.length : 0))
    assert.is(m.get('mooncake_client_bytes_total', {op: 'put', path: 'tcp'}), a.length + (bLocal ? 0 : b.length))
    assert.is(m.get('mooncake_client_bytes_total', {op: 'get', path: 'local'}), 2 * a.length + (bLocal ? 2 * b.length : 0))
    assert.is(m.get('mooncake_client_bytes_total', {op: 'get', path: 'tcp'}) ?? 0, bLocal ? 0 : 2 * b.length)
    // One size observation per value, not per replica or slice.
    assert.is(m.get('mooncake_client_value_size_bytes_count', {op: 'put'}), 2)
    assert.is(m.get('mooncake_client_value_size_bytes_sum', {op: 'put'}), a.length + b.length)
    assert.is(m.get('mooncake_client_value_size_bytes_count', {op: 'get'}), 4)
    assert.is(m.get('mooncake_client_value_size_bytes_sum', {op: 'get'}), 2 * (a.length + b.length))
    assert.is(m.get('mooncake_client_replica_fallbacks_total'), undefined, 'no fallback happened')
  } finally {
    await close()
  }
})

test('replica fallbacks by code: a corrupt replica and an unreachable one', async () => {
  const {client, metrics, net, owners, close} = await setup()
  try {
    const v = randomBytes(5000)
    await client.put('c', v, {replicaNum: 2})
    const first = (await client.master.getReplicaList('c')).replicas[0].memory!
    ;(net.segments.get(first.segment) as Buffer).fill(0xee, first.offset, first.offset + 10)
    assert.ok((await client.get('c')).equals(v))
    let m = await scrape(metrics)
    assert.is(m.get('mooncake_client_replica_fallbacks_total', {code: 'CHECKSUM_MISMATCH'}), 1)

    const w = randomBytes(5000)
    await client.put('d', w, {replicaNum: 2})
    net.failing.add(owners[0].name)
    assert.ok((await client.get('d')).equals(w))
    m = await scrape(metrics)
    assert.is(m.get('mooncake_client_replica_fallbacks_total', {code: 'TRANSFER_FAIL'}), 1)
    assert.is(m.get('mooncake_client_operations_total', {op: 'get', result: 'ok'}), 2)
  } finally {
    await close()
  }
})

test('a PutStart whose reply was lost is retried once and counted', async () => {
  let lose = 1
  const {client, metrics, close} = await setup({
    master: (api) =>
      new Proxy(api, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown
          if (prop !== 'putStart' || typeof v !== 'function') return v
          return async (...args: unknown[]) => {
            const res = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args)
            if (lose-- > 0) throw new MooncakeError('UNAVAILABLE', 'the reply was lost')
            return res
          }
        },
      }),
  })
  try {
    const v = randomBytes(1000)
    await client.put('r', v)
    assert.ok((await client.get('r')).equals(v))
    const m = await scrape(metrics)
    assert.is(m.get('mooncake_client_retries_total', {op: 'put', code: 'UNAVAILABLE'}), 1)
    assert.is(m.get('mooncake_client_operations_total', {op: 'put', result: 'ok'}), 1)
  } finally {
    await close()
  }
})

test('segment owners record pings by status and re-mounts', async () => {
  const {fm, ownerMetrics, close} = await setup()
  try {
    const pings = async () => (await scrape(ownerMetrics)).get('mooncake_segment_pings_total', {result: 'OK'}) ?? 0
    const until = Date.now() + 5000
    while ((await pings()) < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
    assert.ok((await pings()) >= 4)
    let m = await scrape(ownerMetrics)
    assert.is(m.get('mooncake_segment_remounts_total'), 0)
    fm.status = 'NEED_REMOUNT'
    while ((fm.status as string) !== 'OK' && Date.now() < until + 5000) await new Promise((r) => setTimeout(r, 10))
    m = await scrape(ownerMetrics)
    assert.ok((m.get('mooncake_segment_pings_total', {result: 'NEED_REMOUNT'}) ?? 0) >= 1)
    assert.ok((m.get('mooncake_segment_remounts_total') ?? 0) >= 1)
    assert.is(m.get('mooncake_segment_ping_duration_seconds_count'), (m.all('mooncake_segment_pings_total') ?? []).reduce((s, x) => s + x.value, 0))
  } finally {
    await close()
  }
})

test('without metrics nothing is recorded and nothing breaks', async () => {
  const net = new FakeNetwork()
  const fm = new FakeMaster()
  const owner = await SegmentOwner.start({master: fm.api(), size: 4 * MiB, dataPath: new FakeDataPath(net), hostId: 'h', pingIntervalMs: 10})
  const c = await MooncakeClient.connect({master: fm.api(), dataPath: new FakeDataPath(net), hostId: 'c', sliceSize: 64 * 1024, stagingBytes: MiB})
  try {
    const v = randomBytes(70_000)
    await c.put('x', v)
    assert.ok((await c.get('x')).equals(v))
  } finally {
    await c.close()
    await owner.close()
  }
})

test.run()
