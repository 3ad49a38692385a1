/**
 * The P2P store's view of the data plane, and the one adapter that knows the native transfer
 * engine (src/lib/transfer). Everything else in src/lib/p2p talks to `DataPlane` only.
 */

/** Memory this peer serves to others: one per local payload replica. */
export interface DataSegment {
  readonly name: string
  readonly size: number
  /** A Buffer view of [offset, offset+length) of the segment memory (no copy). */
  window(offset: number, length: number): Buffer
  /**
   * Stops serving the segment and releases its memory. Reads already being served finish (the
   * engine keeps the mapping alive while a session uses it); new reads are refused.
   */
  close(): Promise<void>
}

export interface ReadRequest {
  /** Data endpoints of the holder (`host:port`). */
  endpoints: string[]
  segment: string
  offset: number
  length: number
  /** Read grant (hex) when the holder's segment requires one. */
  grant?: string
  local: DataSegment
  localOffset: number
}

export interface DataPlane {
  /** `host:port` endpoints other peers use to reach this data server. */
  readonly endpoints: string[]
  createSegment(name: string, size: number): Promise<DataSegment>
  /** Reads a remote range into local segment memory; rejects with a MooncakeError on failure. */
  read(request: ReadRequest, timeoutMs: number): Promise<void>
  /** CRC32C (Castagnoli) of data, continuing seed. */
  crc32c(data: Uint8Array, seed?: number): number
  close(): Promise<void>
}

export interface NativeDataPlaneOptions {
  host: string
  port: number
  advertiseHost?: string
  token?: string
  insecure?: boolean
  /** 'tcp' forces the network even between peers on one host (benchmarks, tests). @default 'auto' */
  transport?: 'auto' | 'tcp'
}

/** Opens the native engine. Imported lazily so `p2p list` never loads the addon. */
export async function openNativeDataPlane(options: NativeDataPlaneOptions): Promise<DataPlane> {
  const {openEngineDataPlane} = await import('./native-plane.js')
  return openEngineDataPlane(options)
}
