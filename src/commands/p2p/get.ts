import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {P2P_PEER_FLAGS, parseDurationFlag} from '../../cli/flags.js'
import {formatBytes} from '../../lib/units.js'

export default class P2PGet extends BaseCommand<typeof P2PGet> {
  static override summary = 'download a P2P payload (and serve it to others while doing so)'
  static override description = `Downloads payload NAME from the peers that hold it, shards in parallel from the least-loaded holders, and serves every shard to other peers as soon as it has landed.
DEST is a file for a one-file payload, or a directory for several files (named as registered); files are written atomically (temporary file, fsync, rename).
With --seed it keeps serving the replica after the download (printing a ready line) until SIGINT/SIGTERM or \`p2p delete-replica NAME\`; without it, it stops serving and exits when the download is done.
--timeout bounds the whole command, download included, as for every command (default 30 s): give large payloads --timeout 0 (no deadline) or a longer one; --stall-timeout still fails a download during which no shard lands.
Needs --etcd (or MOONCAKE_ETCD).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> llama/step-1000 ./ckpt/ --etcd 10.0.0.2:2379',
    {description: 'Keep serving the copy afterwards', command: '<%= config.bin %> <%= command.id %> ckpt ./ckpt.bin --seed --peer node-7 --host 10.0.0.7'},
  ]
  static override args = {
    name: Args.string({description: 'payload name', required: true}),
    dest: Args.string({description: 'destination file, or directory for a several-file payload', required: true}),
  }
  static override flags = {
    seed: Flags.boolean({summary: 'keep serving the replica after the download, until stopped'}),
    // The peer flags one by one rather than spread: the usage line lists flags in this order,
    // and concurrency and stall-timeout have always sat among them.
    peer: P2P_PEER_FLAGS.peer,
    host: P2P_PEER_FLAGS.host,
    port: P2P_PEER_FLAGS.port,
    concurrency: Flags.integer({summary: 'shards downloaded at the same time', default: 4, env: 'MOONCAKE_CONCURRENCY', min: 1, max: 64}),
    'lease-ttl': P2P_PEER_FLAGS['lease-ttl'],
    'stall-timeout': Flags.string({summary: 'fail when no shard lands for this long', default: '30s', env: 'MOONCAKE_STALL_TIMEOUT', helpValue: 'DURATION'}),
    insecure: P2P_PEER_FLAGS.insecure,
  }

  async run(): Promise<{name: string; bytes: number; seconds: number} | undefined> {
    const {resolveDestinations} = await import('../../lib/p2p/cli-support.js')
    const {MooncakeError} = await import('../../lib/errors.js')
    const {name, dest} = this.args
    // Before etcd is contacted: a typo must not cost a connection or a deadline.
    const stallTimeoutMs = parseDurationFlag('stall-timeout', this.flags['stall-timeout'])
    let replicaGone: (() => void) | undefined
    const deleted = new Promise<string>((resolve) => (replicaGone = () => resolve('deleted')))
    const store = await this.openP2PStore({...this.flags, leaseTtl: this.flags['lease-ttl']}, (event) => {
      if (event.type === 'released' && event.name === name && event.reason === 'delete-replica') replicaGone?.()
    })
    const record = await this.deadline.race(store.info(name))
    if (!record) throw new MooncakeError('PAYLOAD_NOT_FOUND', `payload "${name}" is not registered`)
    const {destinations, files} = await resolveDestinations(record, dest)
    const bar = this.progress(name, record.totalSize)
    const remaining = this.deadline.remaining()
    let result
    try {
      result = await this.deadline.race(
        store.getReplica(name, destinations, {
          timeoutMs: Number.isFinite(remaining) ? Math.max(1, remaining) : undefined,
          stallTimeoutMs,
          signal: this.deadline.signal,
          onProgress: (done) => bar.update(done),
        }),
      )
    } finally {
      bar.done()
    }
    const summary = {name, bytes: result.bytes, seconds: result.seconds}
    const rate = result.seconds > 0 ? `${formatBytes(result.bytes / result.seconds)}/s` : ''
    if (!this.flags.seed) {
      this.log(`downloaded ${name}: ${formatBytes(result.bytes)} in ${result.seconds.toFixed(2)} s (${rate}) to ${files.join(', ')}`)
      return summary
    }
    const endpoint = store.endpoints[0] ?? ''
    this.ready(`ready p2p ${name} ${result.bytes} bytes as ${store.peerName} at ${endpoint}`, {
      ...summary,
      peer: store.peerName,
      endpoint,
      endpoints: store.endpoints,
      files,
    })
    this.notice(`downloaded ${formatBytes(result.bytes)} in ${result.seconds.toFixed(2)} s (${rate}); seeding until stopped`)
    // A seeding get is a server from here on: SIGINT (through untilStopped) and SIGTERM stop it
    // cleanly, exit 0.
    const stopped = new Promise<string>((resolve) => {
      const onTerm = (): void => resolve('SIGTERM')
      process.once('SIGTERM', onTerm)
      this.onCleanup(() => process.off('SIGTERM', onTerm))
      void this.untilStopped().then(resolve)
    })
    const why = await Promise.race([stopped, deleted])
    this.logger.info(why === 'deleted' ? `replica of "${name}" deleted, exiting` : `${why}: stopping`)
    return undefined
  }
}
