// Shared by the master-grpc integration tests: error assertions, raw (unvalidated) gRPC calls, and
// a master in a child process.
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import path from 'node:path'
import {createInterface} from 'node:readline'

import * as grpc from '@grpc/grpc-js'

import type * as w from '../../src/lib/proto/generated/index.js'
import {loadMooncakeProto} from '../../src/lib/proto/loader.js'
export {rejects} from '../helpers/assert-code.js'

export const segment = (name: string, size = 1 << 20) => ({
  id: `id-${name}`,
  name,
  endpoints: ['127.0.0.1:1'],
  size,
  hostId: 'host-a',
})

/** A raw call with hand-made bytes, bypassing every client-side encoder. */
export function rawCall(address: string, rpc: string, body: Buffer, metadata = new grpc.Metadata()): Promise<{err: grpc.ServiceError | null; res?: unknown}> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure())
  const method = (loadMooncakeProto().master as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>)[rpc]!
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method.path,
      (b: Buffer) => b,
      method.responseDeserialize,
      body,
      metadata,
      {deadline: Date.now() + 5_000},
      (err, res) => {
        client.close()
        resolve({err, res})
      },
    )
  })
}

/** One frame of the Pipeline rpc with hand-made bytes; the answer frame (status 0 = OK). */
export function rawFrame(address: string, rpc: string, body: Buffer, signature: {ts?: string; nonce?: string; sig?: string} = {}): Promise<w.PipelineResponse__Output> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure())
  const methods = loadMooncakeProto().master
  const pipeline = methods.Pipeline
  const stream = client.makeBidiStreamRequest(pipeline.path, pipeline.requestSerialize, pipeline.responseDeserialize, new grpc.Metadata(), {deadline: Date.now() + 5_000})
  const path = (methods as unknown as Record<string, {path: string} | undefined>)[rpc]?.path ?? rpc
  return new Promise((resolve, reject) => {
    stream.on('data', (res: w.PipelineResponse__Output) => {
      stream.end()
      client.close()
      resolve(res)
    })
    stream.on('error', (err) => (client.close(), reject(err)))
    stream.write({id: 7, method: path, body, deadlineMs: Date.now() + 5_000, authTs: signature.ts ?? '', authNonce: signature.nonce ?? '', authSig: signature.sig ?? ''})
  })
}

export function errorCodeOf(err: grpc.ServiceError | null): string | undefined {
  return err?.metadata.get('mooncake-error-code')[0] as string | undefined
}

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..')

export interface MasterProcess {
  address: string
  httpAddress: string
  child: ChildProcess
  stop(signal?: NodeJS.Signals): Promise<void>
}

/** Starts test/integration/fixtures/master.ts in its own node process; resolves on its ready line. */
export async function spawnMaster(options: Record<string, unknown> = {}): Promise<MasterProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/integration/fixtures/master.ts'), JSON.stringify(options)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({input: child.stdout!})
  const ready = await Promise.race([
    once(lines, 'line').then(([line]) => JSON.parse(line as string) as {address: string; httpAddress: string}),
    once(child, 'exit').then(([code]) => {
      throw new Error(`master fixture exited with ${String(code)} before it was ready`)
    }),
  ])
  return {
    ...ready,
    child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    },
  }
}
