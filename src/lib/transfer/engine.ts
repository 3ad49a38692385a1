import {codeName, MooncakeError} from '../errors.js'
import {encodeGrant, type Grant, grantWireProblem} from './grant.js'
import {callNative, fromNative} from './native-call.js'
import {loadNative, type NativeBinding, type NativeSubmitResult} from './native.js'
import {MAX_SLICE_SIZE, MIN_SLICE_SIZE, resolveTransferOptions, type ResolvedTransferEngineOptions, type TransferEngineOptions} from './options.js'
import {Segment} from './segment.js'
import type {CreateSegmentOptions, SubmitOptions, TransferEngineState, TransferEngineStats, TransferRequest, TransferResult, TransferTransport} from './types.js'

const TRANSPORT_CODE: Record<TransferTransport, number> = {auto: 0, tcp: 1, memcpy: 2}
const ENDPOINT = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/
/** Endpoints already seen to be well formed (bounded: a cache, not a registry). */
const goodEndpoints = new Set<string>()
function validEndpoint(e: unknown): boolean {
  if (typeof e !== 'string') return false
  if (goodEndpoints.has(e)) return true
  if (!ENDPOINT.test(e)) return false
  if (goodEndpoints.size > 4096) goodEndpoints.clear()
  goodEndpoints.add(e)
  return true
}
/** Numbers per request row of the native submit table. */
const ROW_WIDTH = 8
/** Shared, frozen success results (a batch of many requests allocates nothing per success). */
const OK_TCP: TransferResult = Object.freeze({ok: true, via: 'tcp'} as const)
const OK_MEMCPY: TransferResult = Object.freeze({ok: true, via: 'memcpy'} as const)

/** A request refused before it reaches the engine. */
function refused(code: 'INVALID_PARAMS' | 'BUFFER_OVERFLOW', message: string): TransferResult {
  return {ok: false, code, message}
}

interface Registration {
  buffer: Uint8Array
  start: number
  end: number
  /** Being unregistered: new requests on it are refused. */
  closing: boolean
}

/**
 * The native data plane: owns segments and serves them over TCP, and moves batches of
 * requests to and from other engines' segments (TCP lanes, or memcpy on the same host).
 */
export class TransferEngine {
  #state: TransferEngineState = 'created'
  readonly #options: ResolvedTransferEngineOptions
  #native: NativeBinding | undefined
  #id: number | undefined
  #endpoints: string[] = []
  readonly #segments = new Map<string, Segment>()
  /** Registered buffers by their ArrayBuffer, to check request ranges before native does. */
  readonly #registered = new Map<ArrayBufferLike, Registration[]>()
  readonly #inflight = new Set<Promise<unknown>>()

  constructor(options: TransferEngineOptions = {}) {
    this.#options = resolveTransferOptions(options)
  }

  get state(): TransferEngineState {
    return this.#state
  }

  /** The server's "ip:port" endpoints (empty before start and for client-only engines). */
  get endpoints(): string[] {
    return [...this.#endpoints]
  }

  get options(): Readonly<ResolvedTransferEngineOptions> {
    return this.#options
  }

  /** Starts the server threads (if listenHosts is not empty) and the client threads. */
  async start(): Promise<{endpoints: string[]}> {
    if (this.#state !== 'created') throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', `cannot start a transfer engine that is ${this.#state}`)
    const native = loadNative()
    if (this.#options.sweepOnStart) native.sweepSegments()
    const o = this.#options
    const id = callNative(() =>
      native.engineCreate({
        listenHosts: o.listenHosts,
        port: o.port,
        token: o.token,
        lanesPerPeer: o.lanesPerPeer,
        clientThreads: o.clientThreads,
        serverThreads: o.serverThreads,
        maxConnections: o.maxConnections,
        idleTimeoutMs: o.idleTimeoutMs,
        ioTimeoutMs: o.ioTimeoutMs,
        connectTimeoutMs: o.connectTimeoutMs,
        cooldownMs: o.cooldownMs,
        batchScheduling: o.batchScheduling,
      }),
    )
    try {
      this.#endpoints = native.engineStart(id)
    } catch (err) {
      native.engineClose(id)
      throw fromNative(err)
    }
    this.#native = native
    this.#id = id
    this.#state = 'running'
    return {endpoints: this.endpoints}
  }

  #running(): {native: NativeBinding; id: number} {
    if (this.#state !== 'running' || this.#native === undefined || this.#id === undefined) {
      throw new MooncakeError('UNAVAILABLE_IN_CURRENT_STATUS', `the transfer engine is ${this.#state}, not running`)
    }
    return {native: this.#native, id: this.#id}
  }

  /** Creates a pre-faulted shared-memory segment of `size` bytes and serves it under `name`. */
  createSegment(name: string, size: number, options: CreateSegmentOptions = {}): Segment {
    const {native, id} = this.#running()
    const bytes = Buffer.byteLength(String(name), 'utf8')
    if (typeof name !== 'string' || bytes === 0 || bytes > 255) throw new MooncakeError('INVALID_PARAMS', 'a segment name is 1 to 255 bytes of UTF-8')
    if (!Number.isSafeInteger(size) || size <= 0) throw new MooncakeError('INVALID_PARAMS', `segment size must be a positive integer (got ${size})`)
    if (this.#segments.has(name)) throw new MooncakeError('SEGMENT_ALREADY_EXISTS', `segment '${name}' already exists`)
    const created = callNative(() => native.segmentCreate(id, name, size, options.grants ?? true))
    const segment = new Segment({
      name,
      size,
      handle: created.handle,
      path: created.path,
      grantKey: created.grantKey,
      onClose: (s) => {
        if (this.#segments.get(s.name) === s) this.#segments.delete(s.name)
      },
    })
    this.#segments.set(name, segment)
    return segment
  }

  /** Stops serving a segment and deletes its shared-memory file. */
  closeSegment(segment: Segment | string): void {
    const s = typeof segment === 'string' ? this.#segments.get(segment) : segment
    if (!s) throw new MooncakeError('SEGMENT_NOT_FOUND', `no segment '${String(segment)}' in this engine`)
    s.close()
  }

  getSegment(name: string): Segment | undefined {
    return this.#segments.get(name)
  }

  /** Lets transfers read and write `buffer` in place. Empty or overlapping registrations are refused. */
  registerLocalMemory(buffer: Uint8Array): void {
    const {native, id} = this.#running()
    if (!(buffer instanceof Uint8Array)) throw new MooncakeError('INVALID_PARAMS', 'registerLocalMemory expects a Buffer or Uint8Array')
    if (buffer.length === 0) throw new MooncakeError('INVALID_PARAMS', 'cannot register an empty buffer')
    callNative(() => native.memoryRegister(id, buffer))
    const list = this.#registered.get(buffer.buffer) ?? []
    list.push({buffer, start: buffer.byteOffset, end: buffer.byteOffset + buffer.length, closing: false})
    this.#registered.set(buffer.buffer, list)
  }

  /** Removes a registration, first waiting for the batches in flight that use it. */
  async unregisterLocalMemory(buffer: Uint8Array): Promise<void> {
    const list = this.#registered.get(buffer.buffer)
    const index = list?.findIndex((r) => r.buffer === buffer || (r.start === buffer.byteOffset && r.end === buffer.byteOffset + buffer.length)) ?? -1
    if (!list || index < 0) throw new MooncakeError('INVALID_PARAMS', 'the buffer is not registered with this engine')
    const registration = list[index]
    registration.closing = true
    const {native, id} = this.#running()
    while (!callNative(() => native.memoryUnregister(id, registration.buffer))) {
      await Promise.allSettled([...this.#inflight])
    }
    list.splice(list.indexOf(registration), 1)
    if (list.length === 0) this.#registered.delete(buffer.buffer)
  }

  /**
   * Checks a request's local range: an error message, or the registration holding it (a buffer
   * local) or null (a local segment of this engine).
   */
  #localCheck(r: TransferRequest): string | Registration | null {
    const localOffset = r.localOffset ?? 0
    if (!Number.isSafeInteger(localOffset) || localOffset < 0) return 'localOffset must be a non-negative integer'
    if (r.local instanceof Segment) {
      if (r.local.closed || this.#segments.get(r.local.name) !== r.local) return `local segment '${r.local.name}' is not open in this engine`
      if (localOffset + r.length > r.local.size) return `local range [${localOffset}, +${r.length}) is outside local segment '${r.local.name}'`
      return null
    }
    if (!(r.local instanceof Uint8Array)) return 'local must be a registered Buffer or a Segment'
    if (localOffset + r.length > r.local.length) return `local range [${localOffset}, +${r.length}) is outside the local buffer of ${r.local.length} bytes`
    const start = r.local.byteOffset + localOffset
    const regs = this.#registered.get(r.local.buffer)
    const reg = regs?.find((g) => start >= g.start && start + r.length <= g.end)
    if (!reg) return 'local memory is not inside a registered buffer (registerLocalMemory)'
    if (reg.closing) return 'the registered buffer is being unregistered'
    return reg
  }

  /**
   * Moves a batch. Resolves once every request has finished, with one result per request
   * (never rejects for a request's failure); throws only for a malformed call or a stopped engine.
   */
  async submit(requests: readonly TransferRequest[], options: SubmitOptions = {}): Promise<TransferResult[]> {
    const {native, id} = this.#running()
    if (!Array.isArray(requests)) throw new MooncakeError('INVALID_PARAMS', 'submit expects an array of requests')
    const transport = options.transport ?? 'auto'
    if (!(transport in TRANSPORT_CODE)) throw new MooncakeError('INVALID_PARAMS', `unknown transport ${String(transport)}`)
    const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new MooncakeError('INVALID_PARAMS', 'timeoutMs must be a positive integer')
    const sliceSize = options.sliceSize ?? this.#options.sliceSize
    if (!Number.isInteger(sliceSize) || sliceSize < MIN_SLICE_SIZE || sliceSize > MAX_SLICE_SIZE) {
      throw new MooncakeError('INVALID_PARAMS', `sliceSize must be from ${MIN_SLICE_SIZE} to ${MAX_SLICE_SIZE}`)
    }

    const n = requests.length
    const results: TransferResult[] = new Array(n)
    // Packed for the addon (see native.ts NativeSubmit): per-call tables of distinct peers,
    // segment names, locals and grants, and one row of numbers per request. The checks below
    // cache their verdicts per distinct value, so a batch of many small requests costs little.
    const peers: string[][] = []
    const peerByArray = new Map<readonly string[], number>()
    const peerByKey = new Map<string, number>()
    const segments: string[] = []
    const segmentIndex = new Map<string, number>()
    const locals: Array<Uint8Array | number> = []
    const localIndex = new Map<Uint8Array | Segment, number>()
    const grantIndex = new Map<Grant | Uint8Array, number>()
    const grantBytes: Uint8Array[] = []
    const rows = new Float64Array(n * ROW_WIDTH)
    const rowOf = new Int32Array(n)
    let count = 0
    for (let i = 0; i < n; i++) {
      const r = requests[i]
      if (r === null || typeof r !== 'object') {
        results[i] = refused('INVALID_PARAMS', 'a request must be an object')
        continue
      }
      if (r.op !== 'read' && r.op !== 'write') {
        results[i] = refused('INVALID_PARAMS', `op must be 'read' or 'write'`)
        continue
      }
      if (!Number.isSafeInteger(r.length) || r.length <= 0) {
        results[i] = refused('INVALID_PARAMS', `length must be a positive integer (got ${r.length})`)
        continue
      }
      if (!Number.isSafeInteger(r.offset) || r.offset < 0) {
        results[i] = refused('INVALID_PARAMS', `offset must be a non-negative integer (got ${r.offset})`)
        continue
      }
      if (!Number.isSafeInteger(r.offset + r.length)) {
        results[i] = refused('BUFFER_OVERFLOW', 'offset + length overflows')
        continue
      }
      let seg = segmentIndex.get(r.segment)
      if (seg === undefined) {
        const nameBytes = typeof r.segment === 'string' ? Buffer.byteLength(r.segment, 'utf8') : 0
        if (nameBytes === 0 || nameBytes > 255) {
          results[i] = refused('INVALID_PARAMS', 'segment must be a name of 1 to 255 bytes')
          continue
        }
        seg = segments.length
        segments.push(r.segment)
        segmentIndex.set(r.segment, seg)
      }
      let p = Array.isArray(r.peer) ? peerByArray.get(r.peer) : undefined
      if (p === undefined) {
        if (!Array.isArray(r.peer) || r.peer.length === 0 || r.peer.length > 64 || !r.peer.every(validEndpoint)) {
          results[i] = refused('INVALID_PARAMS', 'peer must list 1 to 64 "ip:port" endpoints')
          continue
        }
        const key = r.peer.join(',')
        p = peerByKey.get(key)
        if (p === undefined) {
          p = peers.length
          peers.push([...r.peer])
          peerByKey.set(key, p)
        }
        peerByArray.set(r.peer, p)
      }
      const local = this.#localCheck(r)
      if (typeof local === 'string') {
        results[i] = refused(local.includes('outside') ? 'BUFFER_OVERFLOW' : 'INVALID_PARAMS', local)
        continue
      }
      let g = -1
      if (r.grantWire !== undefined) {
        // Requests placed in one reservation share its grant: sent (and checked) once.
        const known = grantIndex.get(r.grantWire)
        if (known !== undefined) g = known
        else {
          const reason = grantWireProblem(r.grantWire)
          if (reason !== undefined) {
            results[i] = refused('INVALID_PARAMS', reason)
            continue
          }
          grantBytes.push(r.grantWire)
          g = grantBytes.length - 1
          grantIndex.set(r.grantWire, g)
        }
      } else if (r.grant !== undefined) {
        if (r.grant.segment !== r.segment) {
          results[i] = refused('INVALID_PARAMS', `the grant is for segment '${r.grant.segment}', not '${r.segment}'`)
          continue
        }
        const known = grantIndex.get(r.grant)
        if (known !== undefined) g = known
        else {
          try {
            grantBytes.push(encodeGrant(r.grant))
          } catch (err) {
            results[i] = refused('INVALID_PARAMS', (err as Error).message)
            continue
          }
          g = grantBytes.length - 1
          grantIndex.set(r.grant, g)
        }
      }
      // Buffer locals go as their registration plus an offset: the views of one registered
      // buffer (a staging area, a caller's arena) share one entry, one lookup and one pin.
      const holder = local === null ? (r.local as Segment) : local.buffer
      let l = localIndex.get(holder)
      if (l === undefined) {
        l = locals.length
        locals.push(local === null ? (r.local as Segment).nativeHandle() : local.buffer)
        localIndex.set(holder, l)
      }
      const localOffset = local === null ? (r.localOffset ?? 0) : (r.local as Uint8Array).byteOffset + (r.localOffset ?? 0) - local.start
      const o = count * ROW_WIDTH
      // Bit 2 of the op asks the engine for the CRC32C of the local bytes.
      rows[o] = (r.op === 'read' ? 1 : 2) | (r.crc === true ? 4 : 0)
      rows[o + 1] = p
      rows[o + 2] = seg
      rows[o + 3] = l
      rows[o + 4] = localOffset
      rows[o + 5] = r.offset
      rows[o + 6] = r.length
      rows[o + 7] = g
      rowOf[count++] = i
    }
    if (count === 0) return results

    let pending: Promise<NativeSubmitResult>
    try {
      pending = native.submit(
        id,
        peers,
        segments,
        locals,
        grantBytes.length > 0 ? Buffer.concat(grantBytes) : undefined,
        count === n ? rows : rows.subarray(0, count * ROW_WIDTH),
        sliceSize,
        timeoutMs,
        TRANSPORT_CODE[transport],
      )
    } catch (err) {
      throw fromNative(err)
    }
    this.#inflight.add(pending)
    try {
      const [status, via, messages, crcs] = await pending
      for (let k = 0; k < count; k++) {
        const st = status[k]
        const i = rowOf[k]
        if (st !== 0) results[i] = {ok: false, code: codeName(st), message: messages?.[k] ?? ''}
        else if (requests[i].crc === true) results[i] = {ok: true, via: via[k] ? 'memcpy' : 'tcp', crc: crcs[k]}
        else results[i] = via[k] ? OK_MEMCPY : OK_TCP
      }
      return results
    } finally {
      this.#inflight.delete(pending)
    }
  }

  /** Counters of the client and the server. */
  stats(): TransferEngineStats {
    const {native, id} = this.#running()
    const s = native.engineStats(id)
    return {
      transferredBytes: s.client?.transferredBytes ?? 0,
      memcpyBytes: s.client?.memcpyBytes ?? 0,
      retries: s.client?.retries ?? 0,
      connectionsOpened: s.client?.connectionsOpened ?? 0,
      batchesInFlight: s.client?.batchesInFlight ?? 0,
      ...(s.server ? {server: s.server} : {}),
    }
  }

  /**
   * Stops listening on one address and drops its connections, as if that NIC went down
   * (operations and failover tests). Returns false when no such listener is open.
   */
  closeListener(host: string): boolean {
    const {native, id} = this.#running()
    return native.engineCloseListener(id, host)
  }

  /**
   * Stops the server, fails queued transfers (TRANSFER_FAIL), waits for batches in flight,
   * releases registered buffers and deletes the segments' files.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return
    if (this.#state === 'created') {
      this.#state = 'closed'
      return
    }
    this.#state = 'closing'
    const native = this.#native!
    native.engineClose(this.#id!)
    await Promise.allSettled([...this.#inflight])
    for (const segment of [...this.#segments.values()]) segment.close()
    native.engineRelease(this.#id!)
    this.#registered.clear()
    this.#state = 'closed'
  }
}

/** Deletes shared-memory segment files left by processes that died without cleaning up. */
export function sweepStaleSegments(): number {
  return loadNative().sweepSegments()
}
