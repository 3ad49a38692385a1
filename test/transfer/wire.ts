// A raw client for the transfer protocol (docs/transfer-protocol.md), to send hostile frames.
import {createHmac} from 'node:crypto'
import net from 'node:net'

import {crc32c} from '../../src/lib/transfer/index.js'

export const MAGIC = {hello: 0x4854434d, auth: 0x4154434d, request: 0x5154434d, response: 0x5254434d}

export interface RawRequest {
  magic?: number
  version?: number
  op: number
  flags?: number
  id?: bigint
  offset: bigint
  length: bigint
  segment: string
  nameLength?: number
  grant?: Buffer
  badCrc?: boolean
}

export function encodeRequest(r: RawRequest): Buffer {
  const name = Buffer.from(r.segment)
  const tail = Buffer.concat([name, r.grant ?? Buffer.alloc(0)])
  const head = Buffer.alloc(40)
  head.writeUInt32LE(r.magic ?? MAGIC.request, 0)
  head[4] = r.version ?? 1
  head[5] = r.op
  head.writeUInt16LE(r.flags ?? (r.grant ? 1 : 0), 6)
  head.writeBigUInt64LE(r.id ?? 1n, 8)
  head.writeBigUInt64LE(r.offset, 16)
  head.writeBigUInt64LE(r.length, 24)
  head.writeUInt16LE(r.nameLength ?? name.length, 32)
  const crc = crc32c(tail, crc32c(head, 0, 0, 36))
  head.writeUInt32LE(r.badCrc ? (crc ^ 1) >>> 0 : crc, 36)
  return Buffer.concat([head, tail])
}

export interface RawResponse {
  op: number
  id: bigint
  status: number
  payload: Buffer
}

/** A connection that has completed the handshake (optionally with a token). */
export class RawConn {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #waiters: Array<() => void> = []
  closed = false

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake()
    })
    socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
    socket.on('error', () => {})
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  static async open(endpoint: string): Promise<RawConn> {
    const [host, port] = endpoint.split(':')
    const socket = net.connect(Number(port), host)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawConn(socket)
  }

  /** Resolves with n bytes, or with what arrived before the peer closed. */
  async read(n: number): Promise<Buffer> {
    while (this.#buf.length < n && !this.closed) await new Promise<void>((r) => this.#waiters.push(r))
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(out.length)
    return out
  }

  /** Resolves once the peer has closed the connection. */
  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.#waiters.push(r))
  }

  write(data: Uint8Array): void {
    this.socket.write(data)
  }

  async handshake(token?: string): Promise<RawResponse> {
    const hello = await this.read(48)
    if (hello.readUInt32LE(0) !== MAGIC.hello) throw new Error('no greeting')
    const serverNonce = hello.subarray(8, 40)
    const auth = Buffer.alloc(80)
    auth.writeUInt32LE(MAGIC.auth, 0)
    auth[4] = 1
    const clientNonce = Buffer.alloc(32, 9)
    clientNonce.copy(auth, 8)
    if (token) {
      auth[5] = 1
      const label = Buffer.alloc(32)
      label.write('mooncake-te/1 client')
      createHmac('sha256', token).update(Buffer.concat([label, serverNonce, clientNonce])).digest().copy(auth, 40)
    }
    auth.writeUInt32LE(crc32c(auth, 0, 0, 76), 76)
    this.write(auth)
    return this.response()
  }

  async response(): Promise<RawResponse> {
    const head = await this.read(32)
    if (head.length < 32) throw new Error('connection closed before a response')
    if (head.readUInt32LE(0) !== MAGIC.response) throw new Error('bad response magic')
    if (head.readUInt32LE(28) !== crc32c(head, 0, 0, 28)) throw new Error('bad response crc')
    const length = head.readUInt32LE(20)
    const status = head.readInt32LE(16)
    const payload = await this.read(length)
    return {op: head[5], id: head.readBigUInt64LE(8), status, payload}
  }

  close(): void {
    this.socket.destroy()
  }
}
