/**
 * The only file of the P2P store that knows the native transfer engine (src/lib/transfer):
 * segments without grants (peers are authenticated by the cluster token handshake, when a
 * token is set), one read request per shard (the engine slices it over its lanes).
 */
import {MooncakeError} from '../errors.js'
import {crc32c, TransferEngine, type Segment} from '../transfer/index.js'
import type {DataPlane, DataSegment, NativeDataPlaneOptions, ReadRequest} from './engine.js'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/

class EngineSegment implements DataSegment {
  constructor(readonly inner: Segment) {}
  get name(): string {
    return this.inner.name
  }
  get size(): number {
    return this.inner.size
  }
  window(offset: number, length: number): Buffer {
    return this.inner.window(offset, length)
  }
  async close(): Promise<void> {
    this.inner.close()
  }
}

class EnginePlane implements DataPlane {
  constructor(
    private readonly engine: TransferEngine,
    readonly endpoints: string[],
    private readonly transport: 'auto' | 'tcp',
  ) {}

  async createSegment(name: string, size: number): Promise<DataSegment> {
    return new EngineSegment(this.engine.createSegment(name, size, {grants: false}))
  }

  async read(request: ReadRequest, timeoutMs: number): Promise<void> {
    if (!(request.local instanceof EngineSegment)) throw new MooncakeError('INVALID_PARAMS', 'the local side of a read must be a segment of this data plane')
    const [result] = await this.engine.submit(
      [
        {
          op: 'read',
          local: request.local.inner,
          localOffset: request.localOffset,
          peer: request.endpoints,
          segment: request.segment,
          offset: request.offset,
          length: request.length,
        },
      ],
      {transport: this.transport, timeoutMs: Math.max(1, Math.ceil(timeoutMs))},
    )
    if (!result.ok) throw new MooncakeError(result.code, result.message)
  }

  crc32c(data: Uint8Array, seed = 0): number {
    return crc32c(data, seed)
  }

  async close(): Promise<void> {
    await this.engine.close()
  }
}

export async function openEngineDataPlane(options: NativeDataPlaneOptions): Promise<DataPlane> {
  if (!LOOPBACK.test(options.host) && !options.token && !options.insecure) {
    throw new MooncakeError(
      'INVALID_PARAMS',
      `refusing to serve on ${options.host} without a cluster token: set MOONCAKE_TOKEN (or MOONCAKE_TOKEN_FILE), or pass --insecure`,
    )
  }
  const engine = new TransferEngine({listenHosts: [options.host === 'localhost' ? '127.0.0.1' : options.host], port: options.port, token: options.token})
  const {endpoints} = await engine.start()
  const advertised = options.advertiseHost ? endpoints.map((e) => `${options.advertiseHost}:${e.slice(e.lastIndexOf(':') + 1)}`) : endpoints
  return new EnginePlane(engine, advertised, options.transport ?? 'auto')
}
