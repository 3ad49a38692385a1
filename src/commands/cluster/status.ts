import {BaseCommand} from '../../cli/base-command.js'

export interface ClusterStatusJson {
  leader: string | null
  standbys: string[]
  viewVersion: number
  etcd: Record<string, unknown>
}

export default class ClusterStatus extends BaseCommand<typeof ClusterStatus> {
  static override summary = 'show the leader master, the standbys, the view version and etcd health'
  static override description = `With --etcd: reads the HA state of --cluster-id from etcd: the leader (mooncake/<cluster>/master), the standbys (masters registered under mooncake/<cluster>/masters/), the view version (the create revision of the leader key, which the leader reports in Ping) and etcd's health. Without --etcd: asks the single master (--master).
With --json: {"leader":"HOST:PORT","standbys":[...],"viewVersion":N,"etcd":{...}}. Exit 5 when etcd (or the master) does not answer within --timeout.`
  static override examples = [
    {description: 'An HA group', command: '<%= config.bin %> <%= command.id %> --etcd 10.0.0.5:2379 --cluster-id prod'},
    {description: 'Machine-readable', command: '<%= config.bin %> <%= command.id %> --etcd 127.0.0.1:2379 --json'},
  ]

  async run(): Promise<ClusterStatusJson> {
    const {etcd, clusterId} = this.settings
    let status: ClusterStatusJson
    if (etcd && etcd.length > 0) {
      const {clusterStatus} = await import('../../lib/master/ha/status.js')
      this.deadline.waitingFor = `etcd ${etcd.join(',')}`
      status = (await this.deadline.race(clusterStatus({etcd, clusterId, timeoutMs: this.deadline.remainingMs()}))) as unknown as ClusterStatusJson
      this.deadline.waitingFor = undefined
    } else {
      const master = await this.connectMaster()
      const ready = await master.serviceReady()
      status = {leader: master.address, standbys: [], viewVersion: ready.viewVersion, etcd: {enabled: false}}
    }
    this.log(`leader       ${status.leader ?? '(none elected)'}`)
    this.log(`standbys     ${status.standbys.length > 0 ? status.standbys.join(', ') : '(none)'}`)
    this.log(`view version ${status.viewVersion}`)
    const e = status.etcd
    if (e.enabled === false) this.log('etcd         not used (single master)')
    else this.log(`etcd         ${e.healthy ? 'healthy' : 'unhealthy'} ${String(e.version ?? '')} at ${(e.endpoints as string[]).join(',')} (revision ${String(e.revision)}, db ${String(e.dbSize)} bytes)`)
    return status
  }
}
