import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {MASTER_HTTP_FLAGS, parseDurationFlag} from '../cli/flags.js'
import {clientTls} from '../lib/config.js'
import type {Check} from '../lib/doctor/checks.js'

export default class Doctor extends BaseCommand<typeof Doctor> {
  static override summary = 'check the cluster and this machine, and say what to fix'
  static override description = `Checks, each on one line with ok or FAIL and, when it failed, what to fix:
  master        the master answers ServiceReady (--master, or the leader named in etcd with --etcd)
  version       the master runs the same mooncake version and protocol as this client
  master-http   the master's HTTP port answers /health (--http, default: the --master host, port 9003; https with --tls-ca / --tls-cert)
  clock         the master's clock (from /health) is within 500 ms of ours
  segment NAME  each mounted segment's data port accepts a TCP connection (1 s)
  etcd HOST     with --etcd: each endpoint is healthy, and the leader key mooncake/<cluster-id>/master exists
  node, native, shm   Node.js >= 20.17, the native transfer engine is built, /dev/shm is writable
Nothing is changed and no lease is taken.
With --json: {"checks":[{"name","ok","detail","fix"}]}.
Exit codes: 0 when every check passed, 1 when any failed (the output says which), 2 on bad flags.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    {description: 'For a script or a support ticket', command: '<%= config.bin %> <%= command.id %> --json'},
    {description: 'An HA cluster', command: '<%= config.bin %> <%= command.id %> --etcd 10.0.0.5:2379 --cluster-id prod'},
  ]
  static override flags = {
    ...MASTER_HTTP_FLAGS,
    'probe-timeout': Flags.string({summary: 'bound of each network probe', default: '2s', helpValue: 'DURATION'}),
  }

  async run(): Promise<{checks: Check[]}> {
    const {formatCheck, runDoctor} = await import('../lib/doctor/checks.js')
    const probeTimeoutMs = parseDurationFlag('probe-timeout', this.flags['probe-timeout'])
    const checks = await runDoctor({
      master: this.settings.master,
      http: this.flags.http,
      etcd: this.settings.etcd,
      clusterId: this.settings.clusterId,
      token: this.clusterToken(),
      // The same TLS towards the master as every other command (connectMaster).
      tls: clientTls(this.settings),
      version: this.config.version,
      probeTimeoutMs: Math.min(probeTimeoutMs, this.deadline.remainingMs()),
    })
    const width = Math.min(28, Math.max(...checks.map((c) => c.name.length)))
    for (const c of checks) this.log(formatCheck(c, width))
    const failed = checks.filter((c) => !c.ok).length
    if (failed > 0) {
      if (!this.jsonEnabled()) process.stderr.write(`mooncake: doctor: ${failed} of ${checks.length} checks failed\n`)
      process.exitCode = 1
    }
    return {checks}
  }
}
