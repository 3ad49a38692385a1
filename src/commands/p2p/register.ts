import path from 'node:path'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {P2P_PEER_FLAGS} from '../../cli/flags.js'
import {MooncakeError} from '../../lib/errors.js'
import {MAX_SHARD_SIZE_LIMIT, MIN_SHARD_SIZE, shardSizeInRange} from '../../lib/p2p/shards.js'
import {formatBytes, parseSize} from '../../lib/units.js'

export default class P2PRegister extends BaseCommand<typeof P2PRegister> {
  static override summary = 'serve files as one P2P payload until stopped'
  static override description = `Publishes FILE... (in order) as payload NAME in the P2P store and serves it to other peers until SIGINT/SIGTERM, or until \`p2p unregister NAME\` asks it to stop; then it unregisters and exits 0.
Nothing is sent to anyone at registration: the files are read once into this process's shared memory, and peers download shards from it (and from each other).
Prints one ready line on stdout when it serves (a JSON object with --json). Needs --etcd (or MOONCAKE_ETCD).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> llama/step-1000 model-00001.safetensors model-00002.safetensors --etcd 10.0.0.2:2379',
    {description: 'Smaller shards, a fixed peer name and a data address other hosts reach', command: '<%= config.bin %> <%= command.id %> ckpt ./ckpt.bin --shard-size 16MiB --peer trainer-0 --host 10.0.0.5 --etcd 10.0.0.2:2379'},
  ]
  static override strict = false
  static override server = true
  static override args = {
    name: Args.string({description: 'payload name, unique in the cluster', required: true}),
    file: Args.string({description: 'files of the payload, in order (one or more)', required: true}),
  }
  static override flags = {
    'shard-size': Flags.string({summary: 'shard size: the unit of download and re-serving (4KiB to 64MiB)', default: '64MiB', env: 'MOONCAKE_SHARD_SIZE', helpValue: 'SIZE'}),
    ...P2P_PEER_FLAGS,
  }

  async run(): Promise<void> {
    // strict=false: every positional (NAME FILE...) is in argv.
    const [name, ...files] = (await this.parse(P2PRegister)).argv as string[]
    const maxShardSize = parseSize(this.flags['shard-size'])
    // Checked before etcd is reached: a bad flag is a usage error, whatever the cluster's state.
    if (!shardSizeInRange(maxShardSize)) {
      throw new MooncakeError('USAGE', `--shard-size ${this.flags['shard-size']} is out of range: use ${MIN_SHARD_SIZE / 1024}KiB to ${MAX_SHARD_SIZE_LIMIT / 2 ** 20}MiB`)
    }
    let stopReason: ((why: string) => void) | undefined
    const released = new Promise<string>((resolve) => (stopReason = resolve))
    const store = await this.openP2PStore({...this.flags, leaseTtl: this.flags['lease-ttl']}, (event) => {
      if (event.type === 'released' && event.name === name && event.reason === 'unregister') stopReason?.('unregistered')
    })
    const info = await this.deadline.race(
      store.register(name, files.map((file) => ({file})), {maxShardSize, partNames: files.map((f) => path.basename(f))}),
    )
    const endpoint = store.endpoints[0] ?? ''
    this.ready(`ready p2p ${name} ${info.totalSize} bytes as ${store.peerName} at ${endpoint}`, {
      name,
      bytes: info.totalSize,
      sizeList: info.sizeList,
      maxShardSize: info.maxShardSize,
      peer: store.peerName,
      endpoint,
      endpoints: store.endpoints,
    })
    this.logger.info(`serving "${name}" (${formatBytes(info.totalSize)} in ${files.length} file(s)) as ${store.peerName} at ${store.endpoints.join(',')}`)
    const why = await Promise.race([this.untilStopped(), released])
    this.logger.info(why === 'unregistered' ? `"${name}" was unregistered, exiting` : `${why}: unregistering "${name}"`)
  }
}
