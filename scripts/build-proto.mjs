// Precompiles mooncake.proto for the CLI (run by `npm run build`, after tsc and copy-assets):
// writes dist/lib/proto/mooncake.codec.cjs, the compiled codec of every message and the rpcs of the
// Master service, so that a command talking to the master neither loads protobufjs nor parses the
// .proto at start-up (src/lib/proto/loader.ts reads it when its sha256 matches the .proto beside it).
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {pathToFileURL} from 'node:url'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const protoDir = path.join(root, 'dist/lib/proto')
const {codecModuleSource, loadProtoRoot} = await import(pathToFileURL(path.join(protoDir, 'fast-codec.js')).href)
const {MASTER_SERVICE, MOONCAKE_CODEC_PATH, MOONCAKE_PROTO_PATH, sha256} = await import(pathToFileURL(path.join(protoDir, 'loader.js')).href)

const source = codecModuleSource(loadProtoRoot(MOONCAKE_PROTO_PATH), [MASTER_SERVICE], sha256(readFileSync(MOONCAKE_PROTO_PATH)))
writeFileSync(MOONCAKE_CODEC_PATH, source)
console.log(`wrote ${path.relative(root, MOONCAKE_CODEC_PATH)} (${source.length} bytes)`)
