import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'

export default class P2PDeleteReplica extends BaseCommand<typeof P2PDeleteReplica> {
  static override summary = 'ask a peer to stop serving its downloaded replica'
  static override description = `Asks the process that serves a downloaded replica of NAME (\`p2p get --seed\`) to stop serving it, through etcd, and waits for its acknowledgement (bounded by --timeout); that process then exits 0.
With several such peers, choose one with --peer. Needs --etcd (or MOONCAKE_ETCD).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> llama/step-1000 --etcd 127.0.0.1:2379',
    {description: 'One peer among several', command: '<%= config.bin %> <%= command.id %> llama/step-1000 --peer node-7'},
  ]
  static override args = {
    name: Args.string({description: 'payload name', required: true}),
  }
  static override flags = {
    peer: Flags.string({summary: 'the peer whose replica goes [default: the only one serving a replica]'}),
  }

  async run(): Promise<{name: string; ok: true}> {
    const admin = await this.connectP2PAdmin()
    const {name} = this.args
    const {peer} = await this.deadline.race(admin.deleteReplica(name, {peer: this.flags.peer, timeoutMs: this.deadline.remainingMs(600_000)}))
    this.log(`deleted the replica of ${name} on peer ${peer}`)
    return {name, ok: true}
  }
}
