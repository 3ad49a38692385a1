/**
 * The Master gRPC service: each handler decodes (and validates) the wire request, calls the
 * synchronous MasterCalls, and encodes the answer. Every handler first refuses malformed and
 * unauthenticated calls, so nothing unchecked reaches the state machine.
 */
import {setImmediate as yieldToLoop, setTimeout as sleep} from 'node:timers/promises'

import * as grpc from '@grpc/grpc-js'

import type {ItemResult, MasterCalls, PutCommitRequest, PutEndRequest, PutStartRequest} from './api.js'
import {MooncakeError} from '../errors.js'
import type * as w from '../proto/generated/index.js'
import type {MasterDefinition, MasterHandlers} from '../proto/generated/mooncake/v1/Master.js'
import {loadMasterDefinition, masterMethodPath} from '../proto/loader.js'
import type {CallVerifier} from './grpc-auth.js'
import * as codec from './grpc-codec.js'
import {decodeDiskResults, encodeDiskTask} from './disk-codec.js'
import {driveRegexScan, isRegexScanner, REGEX_SCAN_SLICE_MS, type RegexScanChunk, type RegexScanner, type RegexScanOptions} from './regex-scan.js'
import {toServiceError} from './grpc-errors.js'
import {type FrameCall, pipelineHandler} from './grpc-pipeline.js'
import {
  BatchResults,
  decodeBatchPutCommitRequest,
  decodeBatchPutEndRequest,
  decodeBatchPutStartRequest,
  DecodedBatch,
  encodeBatchPutStartResults,
  encodeBatchVoidResults,
} from './grpc-batch-wire.js'
import {batch, invalid, key, malformedReason, strictDeserializer, text} from './grpc-validate.js'

export interface HandlerContext {
  service: MasterCalls
  /** Present when the cluster has a token. */
  verifier?: CallVerifier
  /** Aborted when the server closes: long waits (drain, streams) give up. */
  signal: AbortSignal
  /** How often a drain wait looks at the segment. @default 50 */
  drainPollMs?: number
  /**
   * HA / journal (src/lib/master/ha): runs every call; refuses it (NOT_LEADER) on a master that
   * is not the serving leader, and holds the reply until the changes it made are durable.
   */
  around?: <T>(rpc: string, run: () => T | Promise<T>) => T | Promise<T>
}

/** The raw bytes a request was decoded from, kept on the decoded object for the signature check. */
const REQUEST_BYTES = Symbol('mooncake.requestBytes')

/**
 * The service definition with strict request decoding (see strictDeserializer); each decoded
 * request keeps (a reference to) the bytes it came from, whose digest signed calls cover.
 */
export function strictMasterDefinition(def: MasterDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  // The hot batch rpcs decode straight into api.ts types and encode straight from ItemResults
  // (grpc-batch-wire.ts), unless the reflection codec is asked for (the "before" of the benchmarks).
  const fast = process.env['MOONCAKE_PROTO_CODEC'] !== 'reflection'
  for (const [name, method] of Object.entries(def) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    const batchWire = fast ? BATCH_WIRE[name] : undefined
    const decode = batchWire?.decode ?? strictDeserializer(method.requestDeserialize)
    const encode = method.responseSerialize
    out[name] = {
      ...method,
      requestDeserialize: (buf: Buffer) => {
        const msg = decode(buf)
        if (msg !== null && typeof msg === 'object') Object.defineProperty(msg, REQUEST_BYTES, {value: buf})
        return msg
      },
      responseSerialize: batchWire
        ? (res: unknown) => (res instanceof BatchResults ? batchWire.encode(res.items as ItemResult<never>[]) : encode(res))
        : encode,
    }
  }
  return out as grpc.ServiceDefinition
}

interface BatchWire {
  decode(buf: Buffer): unknown
  encode(items: ItemResult<any>[]): Buffer // eslint-disable-line @typescript-eslint/no-explicit-any
}

const BATCH_WIRE: Record<string, BatchWire | undefined> = {
  BatchPutStart: {decode: decodeBatchPutStartRequest, encode: encodeBatchPutStartResults},
  BatchPutEnd: {decode: decodeBatchPutEndRequest, encode: encodeBatchVoidResults},
  BatchPutCommit: {decode: decodeBatchPutCommitRequest, encode: encodeBatchVoidResults},
}

function requestBytes(request: unknown): Uint8Array | undefined {
  return request !== null && typeof request === 'object' ? (request as {[REQUEST_BYTES]?: Uint8Array})[REQUEST_BYTES] : undefined
}

type Call = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>

function admit(ctx: HandlerContext, rpc: string, call: Call): void {
  // Authentication first: an unauthenticated caller learns nothing, not even that its request is malformed.
  if (ctx.verifier !== undefined) {
    const body = requestBytes(call.request)
    // Without the bytes (a definition not made by strictMasterDefinition) no signature can match.
    if (body === undefined) throw new MooncakeError('UNAUTHENTICATED', 'cannot check the signature of this call: the request bytes are unknown')
    const signature = (call as Partial<FrameCall>).signature
    if (signature !== undefined) ctx.verifier.verifySignature(masterMethodPath(rpc), signature, body)
    else ctx.verifier.verify(masterMethodPath(rpc), call.metadata, body)
  }
  const reason = malformedReason(call.request)
  if (reason !== undefined) throw invalid(reason)
}

function unary<Req, Res>(
  ctx: HandlerContext,
  rpc: string,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const fail = (err: unknown) => callback(toServiceError(err))
    try {
      admit(ctx, rpc, call as Call)
      const out = ctx.around ? ctx.around(rpc, () => fn(call.request, call)) : fn(call.request, call)
      if (out instanceof Promise) out.then((res) => callback(null, res), fail)
      else callback(null, out)
    } catch (err) {
      fail(err)
    }
  }
}

const EMPTY: w.Empty = {}

/** Milliseconds left before the call's deadline, minus a margin to answer in time. */
function timeLeft(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline()
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  return Number.isFinite(at) ? at - Date.now() - 100 : Infinity
}

/** Room left before a scan's deadline to send its answer (or its DEADLINE_EXCEEDED) in time. */
const SCAN_DEADLINE_MARGIN_MS = 250

/**
 * A regex scan in chunks of a few milliseconds with the event loop free in between (pings and
 * other calls go on), ending with DEADLINE_EXCEEDED at the call's deadline. (The handlers call a
 * service without `regexScan`, a test double, synchronously in one go instead.)
 */
async function chunkedScan(
  scanner: RegexScanner,
  ctx: HandlerContext,
  call: grpc.ServerUnaryCall<unknown, unknown>,
  pattern: string,
  options: Omit<RegexScanOptions, 'cursor' | 'budgetMs' | 'maxKeys'>,
  onChunk: (chunk: RegexScanChunk) => void,
): Promise<void> {
  const deadline = call.getDeadline()
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  await driveRegexScan(scanner, pattern, options, onChunk, {
    deadline: Number.isFinite(at) ? at - SCAN_DEADLINE_MARGIN_MS : undefined,
    cancelled: () => call.cancelled,
    signal: ctx.signal,
  })
}

async function waitForDrain(
  ctx: HandlerContext,
  name: string,
  drainTimeoutMs: number,
  call: grpc.ServerUnaryCall<unknown, unknown>,
): Promise<void> {
  // The service unmounts a draining segment by itself, at the latest when drainTimeoutMs runs out;
  // allow a little beyond that for the tick that does it.
  const giveUpAt = Date.now() + Math.min(drainTimeoutMs + 1_000, timeLeft(call))
  const poll = ctx.drainPollMs ?? 50
  for (;;) {
    if (!ctx.service.getAllSegments().some((s) => s.name === name)) return
    if (ctx.signal.aborted) throw new MooncakeError('UNAVAILABLE', 'the master is shutting down; the segment is still draining')
    if (call.cancelled) return
    if (Date.now() >= giveUpAt) {
      throw new MooncakeError(
        'DEADLINE_EXCEEDED',
        `segment ${name} is still draining (leases are held on its objects); it will be unmounted when they expire or after the drain timeout`,
      )
    }
    await sleep(poll, undefined, {signal: ctx.signal}).catch(() => {})
  }
}

async function streamKeys(ctx: HandlerContext, call: grpc.ServerWritableStream<w.GetAllKeysRequest__Output, w.KeyPage>) {
  const req = codec.decodeGetAllKeysRequest(call.request)
  let remaining = req.limit
  let after = req.after
  while (remaining > 0 && !call.cancelled && !ctx.signal.aborted) {
    const page = ctx.service.listKeys({
      prefix: req.prefix,
      regex: req.regex,
      after,
      limit: Math.min(req.pageSize, remaining),
      // A regex costs per key: list in slices, with the event loop free in between.
      budgetMs: req.regex !== undefined ? REGEX_SCAN_SLICE_MS : undefined,
    })
    if (page.keys.length > 0) {
      remaining -= page.keys.length
      if (!call.write({keys: page.keys})) {
        // Flow control: the client reads slower than we list; wait rather than buffer.
        await new Promise<void>((resolve) => {
          const done = () => {
            call.off('drain', done)
            call.off('cancelled', done)
            call.off('close', done)
            resolve()
          }
          call.on('drain', done)
          call.on('cancelled', done)
          call.on('close', done)
        })
      } else {
        // Let other calls in between pages.
        await yieldToLoop()
      }
    } else if (page.next !== undefined) await yieldToLoop()
    if (page.next === undefined) break
    after = page.next
  }
  if (!call.cancelled) call.end()
}

/**
 * The Master service's handlers. `definition` is the one the server registers (its codecs decode
 * the frames of Pipeline, which runs each frame through the unary handler of its rpc).
 */
export function masterHandlers(ctx: HandlerContext, definition: grpc.ServiceDefinition = strictMasterDefinition(loadMasterDefinition())): MasterHandlers {
  const s = ctx.service
  const handlers: MasterHandlers = {
    Pipeline: (stream) => pipeline(stream),

    PutStart: unary(ctx, 'PutStart', (req: w.PutStartRequest__Output) =>
      codec.encodePutStartResult(s.putStart(codec.decodePutStartRequest(req))),
    ),
    PutEnd: unary(ctx, 'PutEnd', (req: w.PutEndRequest__Output) => (s.putEnd(codec.decodePutEndRequest(req)), EMPTY)),
    PutRevoke: unary(ctx, 'PutRevoke', (req: w.PutRevokeRequest__Output) => (s.putRevoke(codec.decodePutRevokeRequest(req)), EMPTY)),
    BatchPutStart: unary(ctx, 'BatchPutStart', (req: w.BatchPutStartRequest__Output | DecodedBatch<PutStartRequest>) => {
      if (req instanceof DecodedBatch) return new BatchResults(s.batchPutStart(req.items)) as unknown as w.BatchPutStartResponse
      const items = batch<w.PutStartRequest__Output>(req.items, 'items').map((r) => codec.decodePutStartRequest(r, false))
      return codec.encodeItems(s.batchPutStart(items), codec.encodePutStartResult) as w.BatchPutStartResponse
    }),
    BatchPutEnd: unary(ctx, 'BatchPutEnd', (req: w.BatchPutEndRequest__Output | DecodedBatch<PutEndRequest>) => {
      if (req instanceof DecodedBatch) return new BatchResults(s.batchPutEnd(req.items)) as unknown as w.BatchVoidResponse
      const items = batch<w.PutEndRequest__Output>(req.items, 'items').map((r) => codec.decodePutEndRequest(r, false))
      return codec.encodeVoidItems(s.batchPutEnd(items))
    }),
    BatchPutRevoke: unary(ctx, 'BatchPutRevoke', (req: w.BatchPutRevokeRequest__Output) => {
      const items = batch<w.PutRevokeRequest__Output>(req.items, 'items').map((r) => codec.decodePutRevokeRequest(r, false))
      return codec.encodeVoidItems(s.batchPutRevoke(items))
    }),

    ReserveSpace: unary(ctx, 'ReserveSpace', (req: w.ReserveSpaceRequest__Output) =>
      codec.encodeReserveSpaceResult(s.reserveSpace(codec.decodeReserveSpaceRequest(req))),
    ),
    BatchPutCommit: unary(ctx, 'BatchPutCommit', (req: w.BatchPutCommitRequest__Output | DecodedBatch<PutCommitRequest>) => {
      if (req instanceof DecodedBatch) return new BatchResults(s.batchPutCommit(req.items)) as unknown as w.BatchVoidResponse
      const items = batch<w.PutCommitRequest__Output>(req.items, 'items').map(codec.decodePutCommitRequest)
      return codec.encodeVoidItems(s.batchPutCommit(items))
    }),
    ReleaseSpace: unary(ctx, 'ReleaseSpace', (req: w.ReleaseSpaceRequest__Output) => (s.releaseSpace(codec.decodeReleaseSpaceRequest(req)), EMPTY)),

    UpsertStart: unary(ctx, 'UpsertStart', (req: w.PutStartRequest__Output) =>
      codec.encodePutStartResult(s.upsertStart(codec.decodePutStartRequest(req))),
    ),
    UpsertEnd: unary(ctx, 'UpsertEnd', (req: w.PutEndRequest__Output) => (s.upsertEnd(codec.decodePutEndRequest(req)), EMPTY)),
    UpsertRevoke: unary(ctx, 'UpsertRevoke', (req: w.PutRevokeRequest__Output) => (s.upsertRevoke(codec.decodePutRevokeRequest(req)), EMPTY)),

    GetReplicaList: unary(ctx, 'GetReplicaList', (req: w.KeyRequest__Output) =>
      codec.encodeReplicaList(s.getReplicaList(key(req.key))),
    ),
    BatchGetReplicaList: unary(ctx, 'BatchGetReplicaList', (req: w.KeysRequest__Output) =>
      codec.encodeItems(s.batchGetReplicaList(codec.decodeKeysRequest(req)), codec.encodeReplicaList) as w.BatchGetReplicaListResponse,
    ),
    GetReplicaListByRegex: unary(ctx, 'GetReplicaListByRegex', async (req: w.RegexRequest__Output, call) => {
      const regex = text(req.regex, 'regex')
      const entries: w.KeyedReplicaList[] = []
      if (!isRegexScanner(s)) {
        for (const [k, v] of s.getReplicaListByRegex(regex)) entries.push({key: k, value: codec.encodeReplicaList(v)})
        return {entries}
      }
      await chunkedScan(s, ctx, call, regex, {mode: 'replicas'}, (chunk) => {
        chunk.keys.forEach((k, i) => entries.push({key: k, value: codec.encodeReplicaList(chunk.replicas[i]!)}))
      })
      return {entries}
    }),
    ExistKey: unary(ctx, 'ExistKey', (req: w.KeyRequest__Output) => ({exists: s.existKey(key(req.key))})),
    BatchExistKey: unary(ctx, 'BatchExistKey', (req: w.KeysRequest__Output) => ({
      exists: s.batchExistKey(codec.decodeKeysRequest(req)),
    })),

    Query: unary(ctx, 'Query', (req: w.KeyRequest__Output) => codec.encodeObjectInfo(s.query(key(req.key)))),
    BatchQuery: unary(ctx, 'BatchQuery', (req: w.KeysRequest__Output) =>
      codec.encodeItems(s.batchQuery(codec.decodeKeysRequest(req)), codec.encodeObjectInfo) as w.BatchQueryResponse,
    ),
    QueryByRegex: unary(ctx, 'QueryByRegex', async (req: w.RegexRequest__Output, call) => {
      const regex = text(req.regex, 'regex')
      if (!isRegexScanner(s)) return {objects: s.queryByRegex(regex).map(codec.encodeObjectInfo)}
      const objects: w.ObjectInfo[] = []
      await chunkedScan(s, ctx, call, regex, {mode: 'query'}, (chunk) => {
        for (const o of chunk.objects) objects.push(codec.encodeObjectInfo(o))
      })
      return {objects}
    }),
    GetAllKeys: (call) => {
      try {
        admit(ctx, 'GetAllKeys', call as Call)
        ctx.around?.('GetAllKeys', () => undefined)
      } catch (err) {
        call.emit('error', toServiceError(err))
        return
      }
      streamKeys(ctx, call).catch((err: unknown) => {
        if (!call.cancelled) call.emit('error', toServiceError(err))
      })
    },

    Remove: unary(ctx, 'Remove', (req: w.RemoveRequest__Output) => (s.remove({key: key(req.key), force: req.force}), EMPTY)),
    BatchRemove: unary(ctx, 'BatchRemove', (req: w.BatchRemoveRequest__Output) =>
      codec.encodeVoidItems(s.batchRemove(batch<string>(req.keys, 'keys'), req.force)),
    ),
    RemoveByRegex: unary(ctx, 'RemoveByRegex', async (req: w.RemoveByRegexRequest__Output, call) => {
      const regex = text(req.regex, 'regex')
      if (!isRegexScanner(s)) return s.removeByRegex({regex, force: req.force, dryRun: req.dryRun})
      const keys: string[] = []
      let skipped = 0
      await chunkedScan(s, ctx, call, regex, {mode: 'remove', force: req.force === true, dryRun: req.dryRun === true}, (chunk) => {
        for (const k of chunk.keys) keys.push(k)
        skipped += chunk.skipped
      })
      return {removed: keys.length, skipped, keys}
    }),
    RemoveAll: unary(ctx, 'RemoveAll', (req: w.RemoveAllRequest__Output) => s.removeAll({force: req.force, dryRun: req.dryRun})),

    MountSegment: unary(ctx, 'MountSegment', (req: w.MountSegmentRequest__Output) =>
      s.mountSegment(codec.decodeMountSegmentRequest(req)),
    ),
    ReMountSegment: unary(ctx, 'ReMountSegment', (req: w.ReMountSegmentRequest__Output) => (
      s.reMountSegment(codec.decodeReMountSegmentRequest(req)), EMPTY
    )),
    UnmountSegment: unary(ctx, 'UnmountSegment', async (req: w.UnmountSegmentRequest__Output, call) => {
      const decoded = codec.decodeUnmountSegmentRequest(req)
      s.unmountSegment(decoded)
      if (decoded.drain) await waitForDrain(ctx, decoded.name, decoded.drainTimeoutMs ?? codec.DEFAULT_DRAIN_TIMEOUT_MS, call)
      return EMPTY
    }),
    GetAllSegments: unary(ctx, 'GetAllSegments', () => ({segments: s.getAllSegments().map(codec.encodeSegmentInfo)})),
    QuerySegments: unary(ctx, 'QuerySegments', (req: w.QuerySegmentsRequest__Output) => s.querySegments(text(req.name, 'name'))),
    Ping: unary(ctx, 'Ping', (req: w.PingRequest__Output) => {
      const res = s.ping({clientId: text(req.clientId, 'clientId'), diskResults: decodeDiskResults(req.diskResults)})
      return {viewVersion: res.viewVersion, status: codec.encodeClientStatus(res.status), diskTasks: res.diskTasks?.map(encodeDiskTask) ?? []}
    }),

    ServiceReady: unary(ctx, 'ServiceReady', () => s.serviceReady()),
    Stats: unary(ctx, 'Stats', () => s.stats()),
  }
  const pipeline = pipelineHandler(definition, handlers, ctx.verifier, ctx.signal)
  return handlers
}
