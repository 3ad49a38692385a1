/**
 * Signed calls: with a cluster token, every call carries
 * HMAC-SHA256(token, "method|ts|nonce|sha256hex(body)") with the timestamp and nonce in clear,
 * where body is the serialized request message exactly as sent. The token never crosses the wire;
 * the master accepts a signature within +-60 s of its clock and each nonce once, so a captured
 * call cannot be replayed, and checks the digest against the bytes it received, so a held-back
 * call cannot be sent with another body (docs/reliability.md finding 5; docs/api.md).
 */
import {createHash, createHmac, randomBytes, timingSafeEqual} from 'node:crypto'

import type * as grpc from '@grpc/grpc-js'

import {MooncakeError} from '../errors.js'

export const AUTH_TS_METADATA = 'mooncake-auth-ts'
export const AUTH_NONCE_METADATA = 'mooncake-auth-nonce'
export const AUTH_SIG_METADATA = 'mooncake-auth-sig'

/** How far a signature's timestamp may be from the master's clock. */
export const AUTH_WINDOW_MS = 60_000

const EMPTY = new Uint8Array(0)

/** Lower-case hex SHA-256 of a serialized request message. */
export function bodyDigest(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex')
}

/** Hex HMAC-SHA256 of `method|timestampMs|nonce|bodySha256Hex` with the token as key. */
export function signCall(token: string, method: string, timestampMs: number, nonce: string, bodySha256Hex: string = bodyDigest(EMPTY)): string {
  return createHmac('sha256', token).update(`${method}|${timestampMs}|${nonce}|${bodySha256Hex}`).digest('hex')
}

/** Produces the auth metadata of each call; nonces are a random per-signer prefix plus a counter. */
export class CallSigner {
  readonly #token: string
  readonly #prefix = randomBytes(12).toString('hex')
  #counter = 0

  constructor(token: string) {
    this.#token = token
  }

  /** Signs a call of `method` whose serialized request message is `body` (empty by default). */
  sign(metadata: grpc.Metadata, method: string, now = Date.now(), body: Uint8Array = EMPTY): void {
    const f = this.fields(method, now, body)
    metadata.set(AUTH_TS_METADATA, f.ts)
    metadata.set(AUTH_NONCE_METADATA, f.nonce)
    metadata.set(AUTH_SIG_METADATA, f.sig)
  }

  /** The three signature values of a call, for a transport that carries them in its own fields (Pipeline frames). */
  fields(method: string, now = Date.now(), body: Uint8Array = EMPTY): CallSignature {
    const nonce = `${this.#prefix}.${(this.#counter++).toString(36)}`
    return {ts: String(now), nonce, sig: signCall(this.#token, method, now, nonce, bodyDigest(body))}
  }
}

/** What signs one call: the values of the mooncake-auth-ts / -nonce / -sig metadata. */
export interface CallSignature {
  ts: string
  nonce: string
  sig: string
}

function unauthenticated(message: string): MooncakeError {
  return new MooncakeError('UNAUTHENTICATED', message)
}

function one(metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0]
  return typeof value === 'string' ? value : undefined
}

/** Checks signed calls on the master. */
export class CallVerifier {
  readonly #token: string
  readonly #now: () => number
  /** nonce -> the moment its timestamp leaves the window; insertion order is roughly expiry order. */
  readonly #seen = new Map<string, number>()

  constructor(token: string, now: () => number = Date.now) {
    this.#token = token
    this.#now = now
  }

  /**
   * Throws UNAUTHENTICATED unless the call is signed with the cluster token, for this method and
   * this request body (the serialized message as received; empty by default), and not replayed.
   */
  verify(method: string, metadata: grpc.Metadata, body: Uint8Array = EMPTY): void {
    this.verifySignature(method, {ts: one(metadata, AUTH_TS_METADATA), nonce: one(metadata, AUTH_NONCE_METADATA), sig: one(metadata, AUTH_SIG_METADATA)}, body)
  }

  /** As verify, with the signature's values given directly (Pipeline frames). */
  verifySignature(method: string, signature: Partial<CallSignature>, body: Uint8Array = EMPTY): void {
    const {ts, nonce, sig} = signature
    if (!ts || !nonce || !sig) {
      throw unauthenticated(
        'this master requires the cluster token: set MOONCAKE_TOKEN (or MOONCAKE_TOKEN_FILE) to the token the master was started with',
      )
    }
    const timestamp = Number(ts)
    const now = this.#now()
    if (!Number.isSafeInteger(timestamp) || Math.abs(now - timestamp) > AUTH_WINDOW_MS) {
      throw unauthenticated(
        `call signed at ${ts}, more than ${AUTH_WINDOW_MS / 1000}s from the master's clock (${now}): check the clocks of both machines`,
      )
    }
    const expected = Buffer.from(signCall(this.#token, method, timestamp, nonce, bodyDigest(body)), 'hex')
    const given = Buffer.from(sig, 'hex')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw unauthenticated('bad call signature: MOONCAKE_TOKEN differs from the master\'s token (or the request was altered on the way)')
    }
    this.#forgetExpired(now)
    if (this.#seen.has(nonce)) throw unauthenticated('replayed call: this signature was already used')
    this.#seen.set(nonce, timestamp + AUTH_WINDOW_MS)
  }

  #forgetExpired(now: number): void {
    for (const [nonce, expiry] of this.#seen) {
      if (expiry >= now) break
      this.#seen.delete(nonce)
    }
  }

  /** Nonces remembered (for tests and metrics). */
  get remembered(): number {
    return this.#seen.size
  }
}
