import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'

export default class SegmentUnmount extends BaseCommand<typeof SegmentUnmount> {
  static override summary = 'unmount a segment'
  static override description = `Drops the segment and, at once, every replica on it (leases notwithstanding); an object left without a replica disappears.
With --drain the master first stops new allocations on it and waits (bounded by --timeout) until no read lease is held on its objects.
The owning process stops re-mounting it and exits 0.
With --json: {"name":"NAME","unmounted":true}. An unknown NAME is SEGMENT_NOT_FOUND (exit 3).`
  static override examples = [
    '<%= config.bin %> <%= command.id %> 10.0.0.8:41234',
    {description: 'Let readers finish first', command: '<%= config.bin %> <%= command.id %> seg1 --drain'},
  ]
  static override args = {
    name: Args.string({description: 'segment name (as `segment ls` shows it)', required: true}),
  }
  static override flags = {
    drain: Flags.boolean({summary: 'stop new allocations and wait until no lease is held, then unmount'}),
  }

  async run(): Promise<{name: string; unmounted: true}> {
    const master = await this.connectMaster()
    const {name} = this.args
    // Leave the drain a tenth of the deadline to report back before the RPC itself times out.
    const drainTimeoutMs = Math.floor(this.deadline.remainingMs() * 0.9)
    await master.unmountSegment({name, drain: this.flags.drain, drainTimeoutMs})
    this.log(`unmounted ${name}`)
    return {name, unmounted: true}
  }
}
