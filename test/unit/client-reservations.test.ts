// ReservationPool against a fake master: placement, growth, release, fallback.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {ReservationPool} from '../../src/lib/client/reservations.js'
import type {ReserveSpaceRequest, ReserveSpaceResult} from '../../src/lib/master/api.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {MooncakeClient} from '../../src/lib/client/client.js'
import {asyncMaster} from '../../src/lib/client/master-calls.js'
import {SegmentOwner} from '../../src/lib/client/segment-owner.js'
import type {ItemResult, MasterApi, PutCommitRequest} from '../../src/lib/master/api.js'
import {MasterService} from '../../src/lib/master/service.js'
import {FakeDataPath, FakeNetwork} from '../helpers/fake-data-path.js'

const KiB = 1024
const MiB = 1024 * KiB

function fakeMaster(opts: {lifeMs?: number; fail?: boolean} = {}) {
  const asked: ReserveSpaceRequest[] = []
  const released: number[] = []
  let next = 1
  let at = 0
  const pool = new ReservationPool({
    clientId: 'c',
    hostId: 'h',
    reserveBytes: 2 * MiB,
    retryAfterMs: 50,
    reserve: async (req) => {
      asked.push(req)
      if (opts.fail) throw new MooncakeError('NO_AVAILABLE_HANDLE', 'full')
      const r: ReserveSpaceResult = {reservationId: next++, memory: {segment: 's', endpoints: ['e:1'], hostId: 'h', offset: at, length: req.size, grant: new Uint8Array([9])}, alignment: 8, expiresAt: Date.now() + 2 * (opts.lifeMs ?? 60_000)}
      at += req.size
      return r
    },
    release: async (id) => void released.push(id),
  })
  return {pool, asked, released}
}

test('placements are consecutive and aligned inside one reservation, with its grant', async () => {
  const {pool, asked} = fakeMaster()
  const a = (await pool.place(10, false))!
  const b = pool.tryPlace(100)!
  const c = pool.tryPlace(8)!
  assert.equal([a.location.offset, b.location.offset, c.location.offset], [0, 16, 120])
  assert.equal([a.location.length, b.location.length], [10, 100])
  assert.equal(a.location.grant, new Uint8Array([9]))
  assert.is(new Set([a.reservationId, b.reservationId, c.reservationId]).size, 1)
  assert.equal(asked, [{clientId: 'c', size: 256 * KiB, minSize: 10, hostId: 'h', preferAllocInSameNode: false}])
})

test('a used-up reservation is released once its placements settle; the next one is twice as large', async () => {
  const {pool, asked, released} = fakeMaster()
  const first = (await pool.place(200 * KiB, false))!
  assert.is(pool.tryPlace(100 * KiB), undefined, 'no room left: the caller must wait for place()')
  const second = (await pool.place(100 * KiB, true))!
  assert.is.not(second.reservationId, first.reservationId)
  assert.equal(asked.map((r) => r.size), [256 * KiB, 512 * KiB])
  assert.is(asked[1]!.preferAllocInSameNode, true)
  assert.equal(released, [], 'the first still has a placement in flight')
  pool.settle(first, true)
  await Promise.resolve()
  assert.equal(released, [first.reservationId])
  // Growth stops at reserveBytes; a value larger than that gets a reservation of its own size.
  for (let i = 0; i < 6; i++) pool.settle((await pool.place(600 * KiB, false))!, true)
  assert.is(Math.max(...asked.map((r) => r.size)), 2 * MiB)
  await pool.place(3 * MiB, false)
  assert.is(asked.at(-1)!.size, 3 * MiB)
})

test('a reservation used up by committed placements is not released (the master dropped it with the last commit); one with an abandoned placement is', async () => {
  const {pool, released} = fakeMaster()
  const full = [(await pool.place(128 * KiB, false))!, pool.tryPlace(128 * KiB)!]
  assert.is(full[0]!.reservationId, full[1]!.reservationId)
  const next = (await pool.place(512 * KiB, false))!
  for (const p of full) pool.settle(p, true)
  await Promise.resolve()
  assert.equal(released, [], 'every byte of the first was committed')
  const last = (await pool.place(64 * KiB, false))!
  assert.is(last.reservationId, 3)
  pool.settle(next, false)
  await Promise.resolve()
  assert.equal(released, [next.reservationId], 'its range was abandoned: the master must get it back')
})

test('a master that cannot reserve: undefined (use PutStart) for retryAfterMs, then asked again', async () => {
  const {pool, asked} = fakeMaster({fail: true})
  assert.is(await pool.place(10, false), undefined)
  assert.is(await pool.place(10, false), undefined)
  assert.is(asked.length, 1)
  await new Promise((r) => setTimeout(r, 60))
  assert.is(await pool.place(10, false), undefined)
  assert.is(asked.length, 2)
})

test('an idle reservation is released when it stops taking placements; close() releases the rest', async () => {
  const {pool, released} = fakeMaster({lifeMs: 20})
  const p = (await pool.place(10, false))!
  pool.settle(p, false)
  await new Promise((r) => setTimeout(r, 60))
  assert.equal(released, [p.reservationId])
  const q = (await pool.place(10, false))!
  assert.is.not(q.reservationId, p.reservationId)
  const {pool: other, released: otherReleased} = fakeMaster()
  const r = (await other.place(10, false))!
  await other.close()
  assert.equal(otherReleased, [r.reservationId])
  assert.is(await other.place(10, false), undefined, 'closed')
})

/** A client and an owner on an in-process MasterService whose BatchPutCommit answers `commit` decides. */
async function withCommitFault(commit: (real: () => Promise<ItemResult<void>[]>, reqs: PutCommitRequest[], attempt: number) => Promise<ItemResult<void>[]>) {
  const svc = new MasterService()
  const base = asyncMaster(svc)
  let attempt = 0
  const master = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'batchPutCommit') return (reqs: PutCommitRequest[]) => commit(() => target.batchPutCommit(reqs), reqs, attempt++)
      return Reflect.get(target, prop, receiver)
    },
  }) as MasterApi
  const net = new FakeNetwork()
  const owner = await SegmentOwner.start({master, size: 16 * MiB, dataPath: new FakeDataPath(net), hostId: 'host-a', pingIntervalMs: 20})
  const client = await MooncakeClient.connect({master, dataPath: new FakeDataPath(net), hostId: 'client-host', timeoutMs: 5_000})
  return {svc, client, close: async () => (await client.close(), await owner.close())}
}

const notFound = (reqs: PutCommitRequest[]): ItemResult<void>[] => reqs.map(() => ({ok: false, code: 'OBJECT_NOT_FOUND', message: 'no reservation (a new leader)'}))

test('a commit whose answer was lost and that a master then does not know fails (it may have landed): never "already exists" for our own write', async () => {
  const {svc, client, close} = await withCommitFault(async (real, reqs, attempt) => {
    if (attempt === 0) {
      await real() // it lands...
      throw new MooncakeError('UNAVAILABLE', 'the answer was lost') // ...and the answer is lost
    }
    return notFound(reqs) // a new leader without the object yet
  })
  try {
    const [r] = await client.batchPut([{key: 'k', value: Buffer.from('mine')}])
    assert.equal(r!.ok ? 'ok' : r!.code, 'OBJECT_NOT_FOUND')
    assert.is(client.coalescingStats.putStart!.calls, 0, 'not sent down the PutStart path')
    assert.is(svc.existKey('k'), true, 'the first commit landed')
  } finally {
    await close()
  }
})

test('a commit a master answers "no such reservation" at the first try goes the PutStart way', async () => {
  const {client, close} = await withCommitFault(async (_real, reqs) => notFound(reqs))
  try {
    const res = await client.batchPut([{key: 'a', value: Buffer.from('x')}, {key: 'b', value: Buffer.from('y')}])
    assert.equal(res.map((r) => (r.ok ? 'ok' : r.code)), ['ok', 'ok'])
    assert.is(client.coalescingStats.putStart!.calls, 2)
    assert.is((await client.get('b')).toString(), 'y')
  } finally {
    await close()
  }
})

test.run()
