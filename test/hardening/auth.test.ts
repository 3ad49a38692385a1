// With MOONCAKE_TOKEN on the master, the segment owner and the clients: without the right token
// every gRPC method, every data connection (read and write, TCP and same-host), every P2P
// transfer and every CLI command is refused with UNAUTHENTICATED (CLI: exit 6); the admin HTTP
// port has no mutation; with the token everything works. The token never crosses the wire (two
// recording TCP proxies sit between the clients and the master / the owner) and never reaches
// the servers' debug logs.
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import * as grpc from '@grpc/grpc-js'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {connectMaster} from '../../src/lib/client/master-client.js'
import {isMooncakeError} from '../../src/lib/errors.js'
import {CallSigner} from '../../src/lib/master/grpc-auth.js'
import {openNativeDataPlane} from '../../src/lib/p2p/engine.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
import {TransferEngine, type TransferTransport} from '../../src/lib/transfer/index.js'
import {cleanup, run, startServer, type Server} from '../cli/helpers.js'
import {errorCodeOf, rawCall, rawFrame} from '../integration/master-grpc-helpers.js'

const TOKEN = 'hardening-Secret-7f3a9c1e5b'
const FORMS = [
  TOKEN,
  Buffer.from(TOKEN).toString('hex'),
  Buffer.from(TOKEN).toString('base64'),
  Buffer.from(TOKEN).toString('base64url'),
  Buffer.from(TOKEN, 'utf16le').toString('latin1'),
]
const def = loadMooncakeProto().master as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>
const MiB = 1 << 20

interface Proxy {
  address: string
  bytes(): Buffer
  close(): void
}

/** A TCP relay that records every byte in both directions. */
async function recordingProxy(target: string): Promise<Proxy> {
  const i = target.lastIndexOf(':')
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))]
  const chunks: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((a) => {
    const b = net.connect(port, host)
    for (const s of [a, b]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    a.on('data', (d) => chunks.push(Buffer.from(d)))
    b.on('data', (d) => chunks.push(Buffer.from(d)))
    a.pipe(b)
    b.pipe(a)
    a.on('close', () => b.destroy())
    b.on('close', () => a.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    bytes: () => Buffer.concat(chunks),
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

let master: Server
let owner: Server
let masterProxy: Proxy
let ownerProxy: Proxy
let masterAddress: string
let httpAddress: string
let ownerEndpoint: string
const engines: TransferEngine[] = []
const closers: Array<() => Promise<void> | void> = []
const dir = mkdtempSync(path.join(os.tmpdir(), 'mc-auth-'))

test.before(async () => {
  master = await startServer(['master', '--port', '0', '--metrics-port', '0', '--log-level', 'debug'], {
    env: {MOONCAKE_TOKEN: TOKEN},
    readyTimeoutMs: 30_000,
  })
  const m = /^ready master (\S+) \(http (\S+)\)/.exec(master.ready)
  assert.ok(m, master.ready)
  masterAddress = m![1]!
  httpAddress = m![2]!
  masterProxy = await recordingProxy(masterAddress)
  owner = await startServer(['segment', 'mount', '--size', '16MiB', '--name', 's1', '--master', masterProxy.address, '--log-level', 'debug'], {
    env: {MOONCAKE_TOKEN: TOKEN},
    readyTimeoutMs: 30_000,
  })
  ownerEndpoint = /at (\S+)$/.exec(owner.ready)![1]!
  ownerProxy = await recordingProxy(ownerEndpoint)
})

test.after(async () => {
  for (const e of engines) await e.close().catch(() => {})
  for (const c of closers) await c()
  masterProxy?.close()
  ownerProxy?.close()
  cleanup()
  rmSync(dir, {recursive: true, force: true})
})

async function engine(token?: string): Promise<TransferEngine> {
  const e = new TransferEngine({listenHosts: [], token})
  await e.start()
  engines.push(e)
  return e
}

test('gRPC: every method refuses unsigned and wrongly signed calls (through the proxy)', async () => {
  const rpcs = Object.keys(def).filter((rpc) => rpc !== 'Pipeline')
  assert.is(rpcs.length, 33)
  const wrong = new CallSigner('not-the-token')
  for (const rpc of rpcs) {
    for (const signer of [undefined, wrong]) {
      if (!def[rpc]!.responseStream) {
        // The same call as a frame of the Pipeline stream.
        const res = await rawFrame(masterProxy.address, rpc, Buffer.alloc(0), signer?.fields(def[rpc]!.path))
        assert.is(res.errorCode, 'UNAUTHENTICATED', `${rpc} over Pipeline: ${res.message}`)
      }
      const md = new grpc.Metadata()
      signer?.sign(md, def[rpc]!.path)
      let err: grpc.ServiceError | null
      if (def[rpc]!.responseStream) {
        const client = new grpc.Client(masterProxy.address, grpc.credentials.createInsecure())
        const stream = client.makeServerStreamRequest(def[rpc]!.path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, {deadline: Date.now() + 5000})
        err = await new Promise((resolve) => {
          stream.on('data', () => {})
          stream.on('error', (e: grpc.ServiceError) => resolve(e))
          stream.on('end', () => resolve(null))
        })
        client.close()
      } else {
        err = (await rawCall(masterProxy.address, rpc, Buffer.alloc(0), md)).err
      }
      assert.ok(err, `${rpc} answered without the token`)
      assert.is(err!.code, grpc.status.UNAUTHENTICATED, `${rpc}: ${err!.details}`)
      assert.is(errorCodeOf(err), 'UNAUTHENTICATED', rpc)
    }
  }
})

test('admin HTTP: no mutation is served, whatever the method', async () => {
  const [host, port] = [httpAddress.slice(0, httpAddress.lastIndexOf(':')), Number(httpAddress.slice(httpAddress.lastIndexOf(':') + 1))]
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    for (const p of ['/', '/health', '/metrics', '/admin', '/segments', '/keys']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({host, port, method, path: p, agent: false}, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        })
        req.on('error', reject)
        req.end('{}')
      })
      assert.ok(status === 404 || status === 405, `${method} ${p} -> ${status}`)
    }
  }
})

test('library: no or wrong token is UNAUTHENTICATED; the right token puts and gets', async () => {
  for (const token of [undefined, 'wrong-token']) {
    try {
      const c = await connectMaster({address: masterProxy.address, token})
      c.close()
      assert.unreachable(`connectMaster with ${token ?? 'no token'} succeeded`)
    } catch (err) {
      assert.ok(isMooncakeError(err) && err.code === 'UNAUTHENTICATED', String(err))
    }
    try {
      const c = await MooncakeClient.connect({masterAddress: masterProxy.address, token, timeoutMs: 10_000})
      await c.close()
      assert.unreachable(`MooncakeClient with ${token ?? 'no token'} connected`)
    } catch (err) {
      assert.ok(isMooncakeError(err) && err.code === 'UNAUTHENTICATED', String(err))
    }
  }
  const client = await MooncakeClient.connect({masterAddress: masterProxy.address, token: TOKEN, transport: 'tcp', timeoutMs: 20_000})
  closers.push(() => client.close())
  const value = randomBytes(3 * MiB)
  await client.put('lib-key', value)
  assert.ok((await client.get('lib-key')).equals(value))
})

test('data plane: read and write without or with a wrong token are refused (TCP and memcpy)', async () => {
  const buf = Buffer.alloc(MiB)
  const cases: Array<[string, string, TransferTransport]> = [
    ['proxied tcp', ownerProxy.address, 'tcp'],
    ['direct tcp', ownerEndpoint, 'tcp'],
    ['same host', ownerEndpoint, 'memcpy'],
  ]
  for (const token of [undefined, 'wrong-token']) {
    const e = await engine(token)
    e.registerLocalMemory(buf)
    for (const [what, peer, transport] of cases) {
      for (const op of ['read', 'write'] as const) {
        const [r] = await e.submit([{op, local: buf, peer: [peer], segment: 's1', offset: 0, length: 4096}], {transport, timeoutMs: 10_000})
        assert.is(r!.ok ? 'ok' : r!.code, 'UNAUTHENTICATED', `${what} ${op} with ${token ?? 'no token'}`)
      }
    }
  }
  // With the token the handshake passes, and the segment's grants still apply.
  const e = await engine(TOKEN)
  const b2 = Buffer.alloc(4096)
  e.registerLocalMemory(b2)
  const [r] = await e.submit([{op: 'write', local: b2, peer: [ownerProxy.address], segment: 's1', offset: 0, length: 4096}], {transport: 'tcp'})
  assert.is(r!.ok ? 'ok' : r!.code, 'ACCESS_DENIED')
})

test('P2P data plane: a peer without or with a wrong token cannot download; with it, it can', async () => {
  const seeder = await openNativeDataPlane({host: '127.0.0.1', port: 0, token: TOKEN, transport: 'tcp'})
  closers.push(() => seeder.close())
  const src = await seeder.createSegment('payload-0', MiB)
  src.window(0, MiB).fill(7)
  for (const token of [undefined, 'wrong-token', TOKEN]) {
    const peer = await openNativeDataPlane({host: '127.0.0.1', port: 0, token, transport: 'tcp'})
    closers.push(() => peer.close())
    const local = await peer.createSegment(`dst-${token ?? 'none'}`, MiB)
    const read = peer.read({endpoints: seeder.endpoints, segment: 'payload-0', offset: 0, length: MiB, local, localOffset: 0}, 10_000)
    if (token === TOKEN) {
      await read
      assert.is(local.window(0, MiB)[MiB - 1], 7)
    } else {
      try {
        await read
        assert.unreachable(`a P2P read with ${token ?? 'no token'} succeeded`)
      } catch (err) {
        assert.ok(isMooncakeError(err) && err.code === 'UNAUTHENTICATED', String(err))
      }
    }
  }
})

test('CLI: every data and admin command without or with a wrong token exits 6 with UNAUTHENTICATED', async () => {
  const file = path.join(dir, 'in.bin')
  writeFileSync(file, randomBytes(100_000))
  const commands = [
    ['put', 'cli-key', file],
    ['get', 'lib-key', path.join(dir, 'out.bin')],
    ['ls'],
    ['rm', 'lib-key'],
    ['rm', '--all', '--force'],
    ['query', 'lib-key'],
    ['exists', 'lib-key'],
    ['segment', 'ls'],
    ['segment', 'unmount', 's1'],
  ]
  for (const env of [{}, {MOONCAKE_TOKEN: 'wrong-token'}] as Array<Record<string, string>>) {
    const results = await Promise.all(commands.map((args) => run([...args, '--master', masterProxy.address], {env})))
    results.forEach((res, i) => {
      const what = `${commands[i]!.join(' ')} with ${'MOONCAKE_TOKEN' in env ? 'a wrong token' : 'no token'}`
      assert.is(res.code, 6, `${what}: exit ${res.code}, ${res.stderr}`)
      assert.match(res.stderr, /^mooncake: UNAUTHENTICATED: /m, what)
    })
  }
  // With the token: put, then get the same bytes back.
  const env = {MOONCAKE_TOKEN: TOKEN}
  const put = await run(['put', 'cli-key', file, '--master', masterProxy.address], {env})
  assert.is(put.code, 0, put.stderr)
  const out = path.join(dir, 'back.bin')
  const get = await run(['get', 'cli-key', out, '--master', masterProxy.address], {env})
  assert.is(get.code, 0, get.stderr)
  assert.ok(readFileSync(out).equals(readFileSync(file)))
  // The segment is still mounted: the refused unmounts did nothing.
  const ls = await run(['segment', 'ls', '--json', '--master', masterProxy.address], {env})
  assert.is(ls.code, 0, ls.stderr)
  assert.match(ls.stdout, '"s1"')
})

test('the token never crossed the wire and never reached the logs', async () => {
  const wire = {master: masterProxy.bytes(), owner: ownerProxy.bytes()}
  assert.ok(wire.master.length > 10_000, `little gRPC traffic recorded (${wire.master.length} bytes)`)
  assert.ok(wire.owner.length > 4_000, `little data-plane traffic recorded (${wire.owner.length} bytes)`)
  for (const [where, bytes] of Object.entries(wire)) {
    for (const form of FORMS) assert.is(bytes.indexOf(Buffer.from(form, form === FORMS[4] ? 'latin1' : 'utf8')), -1, `the token (${form}) crossed the ${where} wire`)
  }
  const logs = {master: master.stderr(), owner: owner.stderr()}
  assert.ok(logs.master.length > 0, 'the master logged nothing at debug level')
  for (const [who, text] of Object.entries(logs)) {
    for (const form of FORMS) assert.not.ok(text.includes(form), `the token (${form}) is in the ${who}'s log`)
  }
})

test.run()
