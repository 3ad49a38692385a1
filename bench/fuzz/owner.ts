// The target of the wire fuzzer: a transfer server in its own process with two segments,
//   "seg"  (grants; filled with a known pattern: byte i = (i * 131 + 7) & 255)
//   "open" (no grants; zeros)
//   node --import tsx bench/fuzz/owner.ts [--seg-size N] [--open-size N] [--token T]
//        [--io-ms N] [--idle-ms N] [--threads N] [--max-connections N]
// Prints one JSON line {"ready":true,...}; then answers JSON commands on stdin
// ({"id":1,"cmd":"stats"}); exits when stdin closes.
import {createInterface} from 'node:readline'
import {parseArgs} from 'node:util'

import {TransferEngine} from '../../src/lib/transfer/index.js'

const {values} = parseArgs({
  options: {
    'seg-size': {type: 'string', default: String(4 << 20)},
    'open-size': {type: 'string', default: String(1 << 20)},
    token: {type: 'string'},
    'io-ms': {type: 'string', default: '1000'},
    'idle-ms': {type: 'string', default: '60000'},
    threads: {type: 'string', default: '4'},
    'max-connections': {type: 'string', default: '1024'},
  },
})

const engine = new TransferEngine({
  listenHosts: ['127.0.0.1'],
  token: values.token,
  ioTimeoutMs: Number(values['io-ms']),
  idleTimeoutMs: Number(values['idle-ms']),
  serverThreads: Number(values.threads),
  maxConnections: Number(values['max-connections']),
  sweepOnStart: false,
})
const {endpoints} = await engine.start()
const seg = engine.createSegment('seg', Number(values['seg-size']), {grants: true})
const open = engine.createSegment('open', Number(values['open-size']), {grants: false})
const w = seg.window(0, seg.size)
for (let i = 0; i < w.length; i++) w[i] = (i * 131 + 7) & 255

const reply = (obj: object): void => {
  process.stdout.write(JSON.stringify(obj) + '\n')
}
reply({
  ready: true,
  pid: process.pid,
  endpoints,
  seg: {name: seg.name, size: seg.size, path: seg.path, grantKey: seg.grantKey!.toString('hex')},
  open: {name: open.name, size: open.size, path: open.path},
})

const lines = createInterface({input: process.stdin})
lines.on('line', (line) => {
  const msg = JSON.parse(line) as {id: number; cmd: string}
  if (msg.cmd === 'stats') reply({id: msg.id, stats: engine.stats()})
  else reply({id: msg.id, error: `unknown command ${msg.cmd}`})
})
lines.on('close', () => {
  void engine.close().then(() => process.exit(0))
})
