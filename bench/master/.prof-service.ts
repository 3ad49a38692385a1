import {MasterService} from '../../src/lib/master/service.js'
const service = new MasterService()
service.mountSegment({clientId: 'b', segment: {id: 'b', name: 'b', endpoints: ['127.0.0.1:1'], size: 2 ** 50, hostId: 'h'}})
const N = Number(process.argv[2] ?? 1_000_000)
const t0 = performance.now()
const c0 = process.cpuUsage()
for (let i = 0; i < N / 128; i++) {
  const reqs = []
  for (let j = 0; j < 128; j++) { const key = Buffer.from(`b0/${i % 64}/${i}/${j}`).toString(); reqs.push({clientId: 'bench', requestId: key, key, size: 4096}) }
  service.batchPutStart(reqs)
  service.batchPutEnd(reqs.map((r) => ({clientId: 'bench', key: r.key})))
}
const c = process.cpuUsage(c0)
console.log('µs/key', ((c.user + c.system) / N).toFixed(2), 'wall ms', (performance.now() - t0).toFixed(0))
