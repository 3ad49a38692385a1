/**
 * A userspace TCP proxy for fault injection on loopback (netem is not available): forwards
 * connections to a target and can cut every connection (RST), drop traffic silently for a while
 * (a partition: connections stay open, bytes vanish, so deadlines must fire), or delay each chunk.
 */
import net from 'node:net'

export class ChaosProxy {
  readonly server: net.Server
  readonly sockets = new Set<net.Socket>()
  dropping = false
  delayMs = 0
  cuts = 0
  droppedChunks = 0
  delayedChunks = 0
  port = 0

  private constructor(readonly target: {host: string; port: number}) {
    this.server = net.createServer((client) => this.accept(client))
  }

  static async start(target: string, port = 0): Promise<ChaosProxy> {
    const [host, p] = target.split(':')
    const proxy = new ChaosProxy({host, port: Number(p)})
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject)
      proxy.server.listen(port, '127.0.0.1', () => resolve())
    })
    proxy.port = (proxy.server.address() as net.AddressInfo).port
    return proxy
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host)
    this.sockets.add(client)
    this.sockets.add(upstream)
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (this.dropping) {
          this.droppedChunks++
          return
        }
        if (this.delayMs > 0) {
          this.delayedChunks++
          from.pause()
          setTimeout(() => {
            if (!to.destroyed) to.write(chunk)
            from.resume()
          }, this.delayMs)
        } else if (!to.destroyed) to.write(chunk)
      })
      from.on('end', () => to.end())
      from.on('error', () => to.destroy())
      from.on('close', () => {
        this.sockets.delete(from)
        to.destroy()
      })
    }
    pipe(client, upstream)
    pipe(upstream, client)
  }

  /** Resets every open connection (both sides). */
  cut(): number {
    const n = this.sockets.size / 2
    for (const s of this.sockets) s.resetAndDestroy()
    this.sockets.clear()
    this.cuts++
    return n
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
