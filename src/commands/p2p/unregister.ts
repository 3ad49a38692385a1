import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'

export default class P2PUnregister extends BaseCommand<typeof P2PUnregister> {
  static override summary = 'ask the peer serving a payload to unregister it'
  static override description = `Asks the process that registered NAME (through etcd) to stop serving it, and waits for its acknowledgement (bounded by --timeout). That process lets reads in flight finish, removes the payload once no peer serves it, and (\`p2p register\`) exits 0.
Peers that downloaded a replica keep serving theirs until \`p2p delete-replica\`. A payload whose owner is gone is simply removed once nobody serves it. Needs --etcd (or MOONCAKE_ETCD).`
  static override examples = ['<%= config.bin %> <%= command.id %> llama/step-1000 --etcd 127.0.0.1:2379']
  static override args = {
    name: Args.string({description: 'payload name', required: true}),
  }

  async run(): Promise<{name: string; ok: true}> {
    const admin = await this.connectP2PAdmin()
    const {name} = this.args
    const {peer} = await this.deadline.race(admin.unregister(name, {timeoutMs: this.deadline.remainingMs(600_000)}))
    this.log(peer ? `unregistered ${name} (peer ${peer} stopped serving it)` : `unregistered ${name} (its owner was gone)`)
    return {name, ok: true}
  }
}
