import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {settingFlag} from '../cli/flags.js'
import {DEFAULT_MASTER_ADDRESS, MASTER_SETTINGS, resolveMasterOptions} from '../lib/config.js'
import {MooncakeError} from '../lib/errors.js'
import {parseSize} from '../lib/units.js'

export default class Up extends BaseCommand<typeof Up> {
  static override summary = 'run a master and one segment in one process (no etcd): a store to try things on'
  static override description = `Starts a master and mounts one segment of SIZE bytes in the same process, then serves until SIGINT or SIGTERM (unmount, stop, exit 0). No etcd: --etcd is ignored.
Prints one ready line on stdout when it serves, \`ready up HOST:PORT (segment NAME, SIZE bytes); try: echo hello | mooncake put greeting -\` (the example names --master when the port is not the default), or with --json {"ready":true,"role":"up","address","httpAddress","segment":{"name","size","endpoint"}}; logs go to stderr.
The HTTP port (--metrics-port) serves the master's /metrics, /health, ... as \`mooncake master\` does, plus the segment's own metrics (pings, re-mounts, bytes served over TCP) at /metrics/segment.
The master's other settings (lease TTL, eviction, ...) come from their MOONCAKE_* environment variables or the config file, as for \`mooncake master\`.`
  static override examples = [
    {description: 'A 1 GiB store on the default port; then, in another shell, put and get', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'Smaller, on free ports (read the address from the ready line)', command: '<%= config.bin %> <%= command.id %> --size 256MiB --port 0 --metrics-port 0 --json'},
  ]
  static override flags = {
    size: Flags.string({summary: 'bytes of the segment (at least 1 MiB)', helpValue: 'SIZE', default: '1GiB'}),
    port: settingFlag(MASTER_SETTINGS.port),
    'metrics-port': settingFlag(MASTER_SETTINGS.metricsPort),
  }
  static override server = true

  async run(): Promise<void> {
    const size = parseSize(this.flags.size)
    if (size < 2 ** 20) throw new MooncakeError('USAGE', `--size ${this.flags.size}: a segment holds at least 1 MiB`)
    if (this.settings.etcd) this.logger.warn('up runs without etcd: --etcd / MOONCAKE_ETCD ignored')
    const options = resolveMasterOptions(this.configInput, this.resolved)
    const {startEmbedded} = await import('../lib/client/embedded.js')
    const store = await this.deadline.race(startEmbedded({...options, etcd: undefined, size, onNotice: (message) => this.logger.warn(message)}))
    this.onCleanup(() => store.close())
    const {owner} = store
    const endpoint = owner.endpoints[0] ?? ''
    const master = store.address === DEFAULT_MASTER_ADDRESS ? '' : ` --master ${store.address}`
    this.ready(`ready up ${store.address} (segment ${owner.name}, ${size} bytes); try: echo hello | mooncake put greeting -${master}`, {
      role: 'up',
      address: store.address,
      httpAddress: store.httpAddress ?? null,
      segment: {name: owner.name, size, endpoint},
    })
    this.logger.info(`master serving at ${store.address}${store.httpAddress ? ` (http ${store.httpAddress})` : ''}, segment ${owner.name} mounted`)
    await this.untilStopped()
  }
}
