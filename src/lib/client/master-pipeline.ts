/**
 * The client's end of the Pipeline rpc: unary calls sent as frames of one long-lived stream
 * (about 4x less latency and 6x less CPU per call than grpc-js unary calls here). A call's
 * outcome looks exactly like the unary call's: the response bytes, or a grpc ServiceError with
 * the same status, details and ErrorCode/leader metadata, so retries and error mapping do not
 * change. A broken stream fails the calls in flight as UNAVAILABLE without an ErrorCode (a
 * transport failure, as for unary calls) and the next call opens a new stream.
 */
import * as grpc from '@grpc/grpc-js'
import type {MethodDefinition} from '@grpc/proto-loader'

import type {CallSigner} from '../master/grpc-auth.js'
import {ERROR_CODE_METADATA, LEADER_METADATA} from '../master/grpc-metadata.js'
import type * as w from '../proto/generated/index.js'

export interface MasterPipelineOptions {
  /** The channel's client (shared with the unary calls). */
  client: grpc.Client
  /** The Pipeline method of the Master definition. */
  method: MethodDefinition<w.PipelineRequest, w.PipelineResponse, w.PipelineRequest__Output, w.PipelineResponse__Output>
  signer?: CallSigner
  /**
   * An idle stream is closed after this long without calls in flight, so that a process that
   * forgot to close its client still exits. @default 2000
   */
  idleMs?: number
}

interface Pending {
  resolve(body: Buffer): void
  reject(err: grpc.ServiceError): void
  timer: NodeJS.Timeout
  stream: Stream
}

type Stream = grpc.ClientDuplexStream<w.PipelineRequest, w.PipelineResponse__Output>

const PIPELINE_UNSUPPORTED = 'the master does not implement Pipeline'

/** True for the rejection of a call the master never saw because it has no Pipeline rpc (send it as a unary call). */
export function isPipelineUnsupported(err: unknown): boolean {
  const e = err as Partial<grpc.ServiceError>
  return e?.code === grpc.status.UNIMPLEMENTED && e.details === PIPELINE_UNSUPPORTED
}

function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  const err = new Error(`${code} ${grpc.status[code]}: ${details}`) as grpc.ServiceError
  err.code = code
  err.details = details
  err.metadata = metadata
  return err
}

function answerError(res: w.PipelineResponse__Output): grpc.ServiceError {
  const metadata = new grpc.Metadata()
  if (res.errorCode) metadata.set(ERROR_CODE_METADATA, res.errorCode)
  if (res.leader) metadata.set(LEADER_METADATA, res.leader)
  return serviceError(res.status, res.message, metadata)
}

export class MasterPipeline {
  readonly #options: MasterPipelineOptions
  readonly #pending = new Map<number, Pending>()
  #stream: Stream | undefined
  #nextId = 0
  #idleTimer: NodeJS.Timeout | undefined
  #closed = false
  #unsupported = false

  constructor(options: MasterPipelineOptions) {
    this.#options = options
  }

  /** False once the master turned out not to have the Pipeline rpc (use unary calls then). */
  get usable(): boolean {
    return !this.#unsupported && !this.#closed
  }

  /**
   * Sends one unary call of `path` (request already serialized); resolves with the serialized
   * response. Rejects with isPipelineUnsupported(err) when the master has no Pipeline rpc.
   */
  call(path: string, body: Buffer, deadline: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(serviceError(grpc.status.CANCELLED, 'the client was closed'))
        return
      }
      const wait = deadline - Date.now()
      if (wait <= 0) {
        reject(serviceError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'))
        return
      }
      const stream = this.#open()
      // Ids wrap at 2^32; far more calls than that are never in flight at once.
      let id = (this.#nextId = (this.#nextId + 1) >>> 0)
      while (this.#pending.has(id)) id = this.#nextId = (this.#nextId + 1) >>> 0
      const timer = setTimeout(() => {
        if (this.#pending.get(id)?.timer !== timer) return
        this.#settled(id)
        reject(serviceError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'))
      }, wait)
      this.#pending.set(id, {resolve, reject, timer, stream})
      const auth = this.#options.signer?.fields(path, Date.now(), body)
      stream.write({id, method: path, body, deadlineMs: deadline, authTs: auth?.ts ?? '', authNonce: auth?.nonce ?? '', authSig: auth?.sig ?? ''})
    })
  }

  /** Fails the calls in flight (CANCELLED) and ends the stream. */
  close(): void {
    this.#closed = true
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    this.#fail(this.#stream, serviceError(grpc.status.CANCELLED, 'the client was closed'))
  }

  #open(): Stream {
    if (this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer)
      this.#idleTimer = undefined
    }
    if (this.#stream !== undefined) return this.#stream
    const {client, method} = this.#options
    const stream: Stream = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, new grpc.Metadata(), {})
    this.#stream = stream
    stream.on('data', (res: w.PipelineResponse__Output) => {
      const p = this.#pending.get(res.id)
      if (p === undefined || p.stream !== stream) return // answered after its deadline
      this.#settled(res.id)
      if (res.status === grpc.status.OK) p.resolve(res.body)
      else p.reject(answerError(res))
    })
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.UNIMPLEMENTED) {
        // A master older than Pipeline: nothing was run; the caller sends these calls as unary ones.
        this.#unsupported = true
        this.#fail(stream, serviceError(grpc.status.UNIMPLEMENTED, PIPELINE_UNSUPPORTED))
        return
      }
      if (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED) {
        // The connection itself was refused (e.g. no client certificate for an mTLS master):
        // every call on it gets that answer, as each unary call would.
        this.#fail(stream, err)
        return
      }
      // Whatever else ended the stream (connection lost, master shutting down or cancelling it,
      // a message over the size limit), for the calls it carried it is a transport failure: each
      // may be retried where that is safe, as a unary call cut off the same way would be.
      this.#fail(stream, serviceError(grpc.status.UNAVAILABLE, `the call stream to the master failed: ${err.details ?? err.message}`))
    })
    stream.on('end', () => this.#fail(stream, serviceError(grpc.status.UNAVAILABLE, 'the master ended the call stream')))
    return stream
  }

  #settled(id: number): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    clearTimeout(p.timer)
    this.#pending.delete(id)
    if (this.#pending.size === 0 && this.#stream !== undefined && !this.#closed) {
      const idle = this.#stream
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined
        if (this.#stream === idle && this.#pending.size === 0) {
          this.#stream = undefined
          idle.end()
        }
      }, this.#options.idleMs ?? 2000)
      this.#idleTimer.unref()
    }
  }

  /** The stream is over: every call it carries fails with `err`. */
  #fail(stream: Stream | undefined, err: grpc.ServiceError): void {
    if (stream === undefined) return
    if (this.#stream === stream) this.#stream = undefined
    for (const [id, p] of this.#pending) {
      if (p.stream !== stream) continue
      clearTimeout(p.timer)
      this.#pending.delete(id)
      p.reject(err)
    }
    stream.cancel()
  }
}
