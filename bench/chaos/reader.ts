/**
 * Final reads of the chaos check, in their own process (the native addon has crashed at process
 * exit after MooncakeClient.close(); keeping it out of the checker keeps a test run's exit code
 * clean). argv[2] = JSON {masterAddress, etcd?, clusterId?, keysFile, outFile} (with etcd, the
 * leader is found through etcd). Reads every key of keysFile (a JSON
 * array), writes {key: version | 0 (not found) | "bad: why" | "error: message"} to outFile, then
 * prints {"ready":"reader","done":true}.
 */
import {readFileSync, writeFileSync} from 'node:fs'

import {MooncakeClient} from '../../src/lib/client/client.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {connectHaMaster} from './ha-connect.js'
import {verifyValue} from './values.js'

const o = JSON.parse(process.argv[2] ?? '{}') as {masterAddress: string; etcd?: string[]; clusterId?: string; keysFile: string; outFile: string}
const keys = JSON.parse(readFileSync(o.keysFile, 'utf8')) as string[]
const out: Record<string, number | string> = {}
const master = o.etcd ? await connectHaMaster({etcd: o.etcd, clusterId: o.clusterId, timeoutMs: 10_000}) : undefined
const client = await MooncakeClient.connect({masterAddress: o.masterAddress, master, transport: 'tcp', timeoutMs: 10_000})
let next = 0
const reader = async () => {
  while (next < keys.length) {
    const key = keys[next++]
    try {
      const v = verifyValue(key, await client.get(key))
      out[key] = v.ok ? v.version : `bad: ${v.why}`
    } catch (err) {
      out[key] = err instanceof MooncakeError && err.code === 'OBJECT_NOT_FOUND' ? 0 : `error: ${String(err)}`
    }
  }
}
await Promise.all(Array.from({length: 8}, reader))
await client.close()
master?.close()
writeFileSync(o.outFile, JSON.stringify(out))
process.stdout.write(`${JSON.stringify({ready: 'reader', done: true})}\n`, () => process.exit(0))
