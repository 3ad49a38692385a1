// Baseline: Node `net` between two processes. With no arguments it sends; as a child
// ("recv PORT TOTAL") it receives, timing first byte to last, and prints GB/s.
import {spawn} from 'node:child_process'
import net from 'node:net'
import {fileURLToPath} from 'node:url'

export async function nodePump(total: number, chunk: number): Promise<number> {
  const self = fileURLToPath(import.meta.url)
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  server.close()
  const child = spawn(process.execPath, ['--import', 'tsx', self, 'recv', String(port), String(total)], {stdio: ['ignore', 'pipe', 'inherit']})
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  await new Promise<void>((resolve) => {
    const wait = (): void => {
      if (out.includes('listening')) resolve()
      else setTimeout(wait, 5)
    }
    wait()
  })
  const buf = Buffer.alloc(Math.min(chunk, 4 << 20), 7)
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((r) => socket.once('connect', r))
  let sent = 0
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (sent < total) {
        sent += buf.length
        if (!socket.write(buf)) return void socket.once('drain', pump)
      }
      socket.end(resolve)
    }
    pump()
  })
  await new Promise((r) => child.once('exit', r))
  return Number(/GBps=([\d.]+)/.exec(out)?.[1] ?? 0)
}

if (process.argv[2] === 'recv') {
  const port = Number(process.argv[3])
  const total = Number(process.argv[4])
  const server = net.createServer((socket) => {
    let got = 0
    let t0 = 0n
    socket.on('data', (d) => {
      if (got === 0) t0 = process.hrtime.bigint()
      got += d.length
      if (got >= total) {
        const sec = Number(process.hrtime.bigint() - t0) / 1e9
        process.stdout.write(`GBps=${(got / sec / 1e9).toFixed(4)}\n`)
        socket.destroy()
        server.close()
      }
    })
  })
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'))
}
