/**
 * The master's end of the Pipeline rpc: each frame is one unary call, run through the very
 * handler the unary rpc uses (authentication, validation, HA gating, the same errors) with a
 * stand-in for grpc-js's call object. Only the transport differs: a frame instead of an HTTP/2
 * stream with its headers and trailers, which is most of a unary call's cost in grpc-js.
 */
import * as grpc from '@grpc/grpc-js'

import {MooncakeError} from '../errors.js'
import type * as w from '../proto/generated/index.js'
import type {CallSignature, CallVerifier} from './grpc-auth.js'
import {ERROR_CODE_METADATA, LEADER_METADATA, toServiceError} from './grpc-errors.js'
import {PIPELINE_MAX_BODY} from './grpc-metadata.js'
import {malformedReason} from './grpc-validate.js'

/** What a unary handler reads of its call; a frame provides the same. */
export interface FrameCall {
  request: unknown
  metadata: grpc.Metadata
  /** The frame's signature fields (checked instead of metadata). */
  signature?: Partial<CallSignature>
  cancelled: boolean
  getDeadline(): number
  getPeer(): string
}

type UnaryHandler = (call: FrameCall, callback: (err: grpc.ServiceError | null, res?: unknown) => void) => void

interface UnaryMethod {
  name: string
  requestDeserialize(buf: Buffer): unknown
  responseSerialize(res: unknown): Buffer
  handler: UnaryHandler
}

const NO_METADATA = new grpc.Metadata()


function failure(id: number, err: grpc.ServiceError): w.PipelineResponse {
  const code = err.metadata?.get(ERROR_CODE_METADATA)[0]
  const leader = err.metadata?.get(LEADER_METADATA)[0]
  return {
    id,
    status: err.code ?? grpc.status.UNKNOWN,
    message: err.details ?? err.message,
    errorCode: typeof code === 'string' ? code : '',
    leader: typeof leader === 'string' ? leader : '',
  }
}

/**
 * The Pipeline handler over `handlers` (the unary ones of masterHandlers) and `definition`
 * (strictMasterDefinition's codecs, so frames decode exactly as unary requests do).
 */
export function pipelineHandler(
  definition: grpc.ServiceDefinition,
  handlers: Record<string, unknown>,
  verifier: CallVerifier | undefined,
  signal?: AbortSignal,
): grpc.handleBidiStreamingCall<w.PipelineRequest__Output, w.PipelineResponse> {
  // Shutdown: every stream stops taking frames and ends once its calls in flight are answered,
  // so the server's graceful shutdown is not held until its force timeout.
  const draining = new Set<() => void>()
  signal?.addEventListener('abort', () => {
    for (const drain of draining) drain()
  })
  const byPath = new Map<string, UnaryMethod>()
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream || method.responseStream) continue
    const handler = handlers[name]
    if (typeof handler !== 'function') continue
    byPath.set(method.path, {
      name,
      requestDeserialize: method.requestDeserialize as (buf: Buffer) => unknown,
      responseSerialize: method.responseSerialize as (res: unknown) => Buffer,
      handler: handler as UnaryHandler,
    })
  }

  return (stream) => {
    const inflight = new Set<FrameCall>()
    let clientDone = false
    let closed = false
    const peer = stream.getPeer()
    const maybeEnd = () => {
      if (clientDone && inflight.size === 0 && !closed) {
        closed = true
        draining.delete(drain)
        stream.end()
      }
    }
    const drain = () => {
      clientDone = true
      maybeEnd()
    }
    if (signal?.aborted) drain()
    else draining.add(drain)
    const answer = (res: w.PipelineResponse) => {
      if (!closed) stream.write(res)
    }
    const refuse = (frame: w.PipelineRequest__Output, err: unknown) => answer(failure(frame.id, toServiceError(err)))

    stream.on('data', (frame: w.PipelineRequest__Output) => {
      if (closed) return
      if (clientDone) {
        // Shutting down: not run; for the client a transport failure (retried elsewhere where safe).
        answer({id: frame.id, status: grpc.status.UNAVAILABLE, message: 'the master is shutting down', errorCode: '', leader: ''})
        return
      }
      const bad = malformedReason(frame)
      if (bad !== undefined) {
        // A frame that cannot be answered by id ends the stream (its other calls fail as a transport failure would).
        abandon()
        stream.emit('error', toServiceError(new MooncakeError('INVALID_PARAMS', `malformed Pipeline frame: ${bad}`)))
        return
      }
      const method = byPath.get(frame.method)
      const signature = {ts: frame.authTs, nonce: frame.authNonce, sig: frame.authSig}
      // Refused before any handler runs: as the unary handlers do, an unsigned or wrongly signed
      // frame learns only that it must sign, not what else is wrong with it.
      const refuseSigned = (err: MooncakeError) => {
        try {
          verifier?.verifySignature(frame.method, signature, frame.body)
        } catch (authErr) {
          refuse(frame, authErr)
          return
        }
        refuse(frame, err)
      }
      if (method === undefined) {
        refuseSigned(new MooncakeError('NOT_SUPPORTED', `the master has no unary rpc ${JSON.stringify(frame.method)} to run over Pipeline (a newer client than this master?)`))
        return
      }
      let request: unknown
      try {
        request = method.requestDeserialize(frame.body)
      } catch (err) {
        // The strict decoders mark a bad body rather than throw; a throw must not end the stream.
        refuseSigned(new MooncakeError('INVALID_PARAMS', `malformed ${method.name} request: ${err instanceof Error ? err.message : String(err)}`))
        return
      }
      const deadline = frame.deadlineMs > 0 ? frame.deadlineMs : Infinity
      const call: FrameCall = {
        request,
        metadata: NO_METADATA,
        signature,
        cancelled: false,
        getDeadline: () => deadline,
        getPeer: () => peer,
      }
      inflight.add(call)
      method.handler(call, (err, res) => {
        inflight.delete(call)
        if (err) answer(failure(frame.id, err))
        else {
          let body: Buffer
          try {
            body = method.responseSerialize(res)
          } catch (encodeErr) {
            answer(failure(frame.id, toServiceError(encodeErr)))
            maybeEnd()
            return
          }
          // What grpc-js answers a unary call whose answer is over the limit (no ErrorCode: the client says "send smaller batches").
          if (body.length > PIPELINE_MAX_BODY) {
            answer({id: frame.id, status: grpc.status.RESOURCE_EXHAUSTED, message: `the answer (${body.length} bytes) is larger than ${PIPELINE_MAX_BODY} bytes`, errorCode: '', leader: ''})
          } else answer({id: frame.id, status: grpc.status.OK, body})
        }
        maybeEnd()
      })
    })
    stream.on('end', () => {
      clientDone = true
      maybeEnd()
    })
    const abandon = () => {
      closed = true
      draining.delete(drain)
      for (const call of inflight) call.cancelled = true
    }
    stream.on('cancelled', abandon)
    stream.on('error', abandon)
  }
}
