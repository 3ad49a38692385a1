// temporary probe (not part of the tree): first small same-host get from fresh clients
import {TransferEngine} from '../../src/lib/transfer/index.js'
import {killAllOwners, spawnOwner} from '../../test/transfer/helpers.js'
const size = Number(process.argv[2] ?? 1 << 30)
const owner = await spawnOwner(['--size', String(size), '--no-grants'])
const firsts: number[] = [], seconds: number[] = [], closes: number[] = []
for (let i = 0; i < 7; i++) {
  const e = new TransferEngine({listenHosts: [], sweepOnStart: false})
  await e.start()
  const buf = Buffer.alloc(4096)
  e.registerLocalMemory(buf)
  const req = [{op: 'read' as const, local: buf, peer: owner.ready.endpoints, segment: 'seg', offset: 12345 * 4096, length: 4096}]
  let t = process.hrtime.bigint()
  const [r] = await e.submit(req, {transport: 'memcpy'})
  if (!r!.ok) throw new Error(r!.message)
  firsts.push(Number(process.hrtime.bigint() - t) / 1e6)
  t = process.hrtime.bigint()
  await e.submit(req, {transport: 'memcpy'})
  seconds.push(Number(process.hrtime.bigint() - t) / 1e6)
  t = process.hrtime.bigint()
  await e.close()
  closes.push(Number(process.hrtime.bigint() - t) / 1e6)
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(2)
console.log(JSON.stringify({segMiB: size / 2 ** 20, firstGetMs: med(firsts), secondGetMs: med(seconds), closeMs: med(closes), firsts: firsts.map((x) => +x.toFixed(1))}))
await killAllOwners()
