// Shared by the master-grpc integration tests: error assertions, raw (unvalidated) gRPC calls, and
// a master in a child process.
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import path from 'node:path'
import {createInterface} from 'node:readline'

import * as grpc from '@grpc/grpc-js'

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
