import {BaseCommand} from '../../cli/base-command.js'
import {segmentTable} from '../../cli/render.js'
import {segmentRows, type SegmentRow} from '../../lib/top/model.js'

export default class SegmentLs extends BaseCommand<typeof SegmentLs> {
  static override summary = 'list segments'
  static override description = `One row per mounted segment: its owner's data endpoint, capacity, bytes used, status (OK, DRAINING, UNMOUNTING) and how long ago its owner last pinged the master.
With --json: {"segments":[{"name","endpoint","capacity","used","status","lastPingMs"}]}, bytes as numbers, lastPingMs the milliseconds since the owner's last ping.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    {description: 'Machine-readable (bytes as numbers)', command: '<%= config.bin %> <%= command.id %> --json'},
    {description: 'Ask another master', command: '<%= config.bin %> <%= command.id %> --master 10.0.0.7:50051'},
  ]

  async run(): Promise<{segments: SegmentRow[]}> {
    const master = await this.connectMaster()
    const segments = segmentRows({now: Date.now(), segments: await master.getAllSegments()})
    if (segments.length === 0) this.notice('no segments mounted')
    else this.log(segmentTable(segments))
    return {segments}
  }
}
