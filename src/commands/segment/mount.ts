import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {MooncakeError} from '../../lib/errors.js'
import {parseSize} from '../../lib/units.js'

export default class SegmentMount extends BaseCommand<typeof SegmentMount> {
  static override summary = 'contribute memory to the cluster until stopped'
  static override description = `Allocates SIZE bytes of shared memory (pre-faulted), serves them to clients over TCP (and shared memory on the same host), and mounts them on the master as a segment. Pings the master every second and re-mounts after a master restart or failover.
Prints one ready line on stdout when mounted, \`ready segment NAME SIZE bytes at HOST:PORT\`, or with --json {"ready":true,"role":"segment","name","size","endpoint","master"}; logs go to stderr.
SIGINT or SIGTERM unmounts the segment (its replicas are dropped at once) and exits 0; so does an operator's \`mooncake segment unmount NAME\`.
NAME defaults to the data endpoint HOST:PORT and must be unique in the cluster (SEGMENT_ALREADY_EXISTS, exit 1). Binding another address than loopback needs a cluster token (MOONCAKE_TOKEN_FILE).
--timeout bounds only the start (reaching the master and mounting): exit 5 if the master is unreachable.
With --metrics-port, the owner's metrics (pings by result, re-mounts, bytes served to other clients over TCP) are served in Prometheus text at http://HOST:PORT/metrics on --host (the --json ready object then also holds "metricsAddress"); without it nothing is recorded or served.`
  static override examples = [
    {description: 'Contribute 1 GiB on a free port', command: '<%= config.bin %> <%= command.id %> --size 1GiB'},
    {description: 'Named, to a remote master, on a fixed port of a NIC', command: '<%= config.bin %> <%= command.id %> --size 16GiB --name node7-seg0 --host 10.0.0.7 --port 15000 --master 10.0.0.5:50051'},
    {description: 'Read the name and endpoint from the ready line', command: '<%= config.bin %> <%= command.id %> --size 64MiB --json'},
    {description: 'Serve its metrics for Prometheus on port 9004', command: '<%= config.bin %> <%= command.id %> --size 1GiB --metrics-port 9004'},
  ]
  static override flags = {
    size: Flags.string({summary: 'bytes to contribute (at least 1 MiB), e.g. 1GiB', helpValue: 'SIZE', required: true}),
    name: Flags.string({summary: 'segment name, unique in the cluster [default: HOST:PORT of the data endpoint]', helpValue: 'NAME'}),
    host: Flags.string({summary: 'address the data server binds', helpValue: 'HOST', default: '127.0.0.1'}),
    port: Flags.integer({summary: 'port of the data server (0 picks a free one)', min: 0, max: 65_535, default: 0}),
    'metrics-port': Flags.integer({
      summary: "serve the owner's metrics at /metrics on this port (0 picks a free one) [default: none, no metrics]",
      env: 'MOONCAKE_SEGMENT_METRICS_PORT',
      helpValue: 'PORT',
      min: 0,
      max: 65_535,
    }),
  }
  static override server = true

  async run(): Promise<void> {
    const size = parseSize(this.flags.size)
    if (size < 2 ** 20) throw new MooncakeError('USAGE', `--size ${this.flags.size}: a segment holds at least 1 MiB`)
    const master = await this.connectMaster()
    const {SegmentOwner} = await import('../../lib/client/segment-owner.js')
    const metricsPort = this.flags['metrics-port']
    const metrics = metricsPort === undefined ? undefined : new (await import('../../lib/metrics/client.js')).ClientMetrics({labels: {role: 'segment'}})
    const owner = await this.deadline.race(
      SegmentOwner.start({master, size, name: this.flags.name, host: this.flags.host, port: this.flags.port, token: this.clusterToken(), metrics}),
    )
    // Registered after connectMaster's: cleanups run in reverse, so the unmount goes first.
    this.onCleanup(() => owner.close())
    owner.on('warning', (err: MooncakeError) => this.logger.warn(`${err.code}: ${err.message}`))
    owner.on('remounting', () => this.logger.debug(`re-mounting segment ${owner.name}`))
    const unmounted = new Promise<void>((resolve) => owner.once('unmounted', resolve))
    let metricsAddress: string | undefined
    if (metrics !== undefined) {
      const {startMetricsServer} = await import('../../lib/metrics/client.js')
      const http = await this.deadline.race(startMetricsServer(metrics, this.flags.host, metricsPort))
      this.onCleanup(() => http.close())
      metricsAddress = http.address
      this.logger.info(`metrics at http://${metricsAddress}/metrics`)
    }
    const endpoint = owner.endpoints[0] ?? ''
    this.ready(`ready segment ${owner.name} ${size} bytes at ${endpoint}`, {
      role: 'segment',
      name: owner.name,
      size,
      endpoint,
      master: this.settings.master,
      ...(metricsAddress === undefined ? {} : {metricsAddress}),
    })
    this.logger.info(`segment ${owner.name} mounted (${size} bytes at ${endpoint})`)
    const why = await Promise.race([this.untilStopped(), unmounted.then(() => 'unmounted' as const)])
    this.logger.info(why === 'unmounted' ? `segment ${owner.name} was unmounted by an operator, exiting` : `unmounting segment ${owner.name}`)
  }
}
