import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {formatBytes, renderTable} from '../../cli/render.js'
import type {PayloadInfo} from '../../lib/p2p/types.js'

export default class P2PList extends BaseCommand<typeof P2PList> {
  static override summary = 'list P2P payloads'
  static override description = `One row per registered payload whose name starts with PREFIX: total size, shard size and the size of each part. Needs --etcd (or MOONCAKE_ETCD).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --etcd 127.0.0.1:2379',
    {description: 'Only one family, machine-readable', command: '<%= config.bin %> <%= command.id %> llama/ --json'},
  ]
  static override args = {
    prefix: Args.string({description: 'name prefix (all payloads when omitted)', required: false}),
  }

  async run(): Promise<PayloadInfo[]> {
    const admin = await this.connectP2PAdmin()
    this.deadline.waitingFor = `etcd ${this.settings.etcd?.join(',')}`
    const payloads = await this.deadline.race(admin.list(this.args.prefix ?? ''))
    this.deadline.waitingFor = undefined
    if (payloads.length === 0) this.notice(this.args.prefix ? `no payload starts with "${this.args.prefix}"` : 'no payloads registered')
    else
      this.log(
        renderTable(
          [
            {header: 'NAME', get: (p) => p.name},
            {header: 'SIZE', get: (p) => formatBytes(p.totalSize), align: 'right'},
            {header: 'SHARD', get: (p) => formatBytes(p.maxShardSize), align: 'right'},
            {header: 'PARTS', get: (p) => p.sizeList.length, align: 'right'},
          ],
          payloads,
        ),
      )
    return payloads
  }
}
