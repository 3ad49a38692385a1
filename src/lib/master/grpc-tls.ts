/**
 * TLS of the master's gRPC port (--tls-cert / --tls-key, and --tls-ca: client certificates
 * required, as etcd's --client-cert-auth). A client without a certificate signed by the CA is not
 * cut off in the handshake (it would only see a reset connection, UNAVAILABLE, indistinguishable
 * from a master that is down): the handshake asks for a certificate without insisting, and every
 * call on a connection whose certificate did not verify is answered UNAUTHENTICATED before any
 * handler runs, naming what to pass. The admin HTTP port does the same (http.ts).
 */
import * as grpc from '@grpc/grpc-js'

import {MooncakeError} from '../errors.js'
import {toServiceError} from './grpc-errors.js'
import type {MasterTls} from './options.js'

const pem = (v: string | Buffer): Buffer => (typeof v === 'string' ? Buffer.from(v) : v)

export const CLIENT_CERT_REQUIRED =
  "this master requires a client certificate signed by its --tls-ca: pass --tls-cert / --tls-key (MOONCAKE_TLS_CERT / MOONCAKE_TLS_KEY) with a certificate that CA signed"

/** Refuses every call of a connection whose client certificate did not verify against the CA. */
const requireVerifiedClient: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, {
    start(next) {
      next({
        onReceiveMetadata(metadata, mdNext) {
          // getAuthContext() is empty unless the TLS socket is `authorized` (its peer verified).
          if (call.getAuthContext().transportSecurityType === 'ssl') {
            mdNext(metadata)
            return
          }
          const err = toServiceError(new MooncakeError('UNAUTHENTICATED', CLIENT_CERT_REQUIRED))
          call.sendStatus({code: err.code, details: err.details, metadata: err.metadata})
        },
      })
    },
  })

/** TLS that requests a client certificate, verifies it against `ca`, and lets the interceptor decide. */
class ClientCertServerCredentials extends grpc.ServerCredentials {
  constructor(tls: Required<MasterTls>) {
    super({requestCert: true, rejectUnauthorized: false}, {ca: pem(tls.ca), cert: [pem(tls.cert)], key: [pem(tls.key)]})
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this
  }

  override _getInterceptors(): grpc.ServerInterceptor[] {
    return [requireVerifiedClient]
  }
}

/** Plaintext, TLS with the certificate and key, or (with a CA) TLS requiring client certificates. */
export function serverCredentials(tls: MasterTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure()
  try {
    if (tls.ca !== undefined) return new ClientCertServerCredentials({cert: tls.cert, key: tls.key, ca: tls.ca})
    return grpc.ServerCredentials.createSsl(null, [{cert_chain: pem(tls.cert), private_key: pem(tls.key)}], false)
  } catch (err) {
    throw new MooncakeError('INVALID_PARAMS', `bad TLS certificate or key (--tls-cert, --tls-key, --tls-ca): ${(err as Error).message}`, {cause: err})
  }
}
