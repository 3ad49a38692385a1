import {BaseCommand} from '../cli/base-command.js'
import {settingFlags} from '../cli/flags.js'
import {MASTER_SETTINGS, resolveMasterOptions} from '../lib/config.js'

export default class Master extends BaseCommand<typeof Master> {
  static override summary = 'run a master (metadata server)'
  static override description = `Serves the control plane (gRPC) and /metrics and /health (HTTP) until SIGINT or SIGTERM, then exits 0.
Prints one ready line on stdout when it serves, \`ready master HOST:PORT (http HOST:PORT)\`, or with --json {"ready":true,"role":"master","address":"HOST:PORT","httpAddress":"HOST:PORT"}; logs go to stderr.
Every setting below can also come from its MOONCAKE_* environment variable or from the config file (see docs/configuration.md).
With --etcd the master joins the HA election of --cluster-id. Binding another address than loopback needs a token (MOONCAKE_TOKEN_FILE) or --insecure.`
  static override examples = [
    {description: 'Run a master on the default ports (gRPC 50051, HTTP 9003)', command: '<%= config.bin %> <%= command.id %>'},
    {
      description: 'Pick free ports and read the address from the ready line (tests, scripts)',
      command: '<%= config.bin %> <%= command.id %> --port 0 --metrics-port 0 --json',
    },
    {
      description: 'Short TTLs, e.g. for a test cluster',
      command: '<%= config.bin %> <%= command.id %> --lease-ttl 500ms --client-ttl 2s',
    },
    {
      description: 'Join an HA group through etcd, with a journal',
      command: '<%= config.bin %> <%= command.id %> --etcd 10.0.0.5:2379 --host 0.0.0.0 --advertise 10.0.0.7:50051 --data-dir /var/lib/mooncake',
    },
  ]
  static override flags = settingFlags(MASTER_SETTINGS)
  static override server = true

  async run(): Promise<void> {
    const options = resolveMasterOptions(this.configInput, this.resolved)
    const {startMasterServer} = await import('../lib/master/server.js')
    const server = await startMasterServer({
      ...options,
      onError: (err) => this.logger.error(`background work failed: ${err instanceof Error ? err.message : String(err)}`),
      onNotice: (message) => this.logger.warn(message),
    })
    this.onCleanup(() => server.close())
    const http = server.httpAddress ? ` (http ${server.httpAddress})` : ''
    this.ready(`ready master ${server.address}${http}`, {
      role: 'master',
      address: server.address,
      httpAddress: server.httpAddress ?? null,
    })
    this.logger.info(`master serving at ${server.address}${http}`)
    await this.untilStopped()
  }
}
