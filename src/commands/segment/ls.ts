import {BaseCommand} from '../../cli/base-command.js'
import {formatAgo, formatBytes, renderTable} from '../../cli/render.js'

export interface SegmentRow {
  name: string
  endpoint: string
  capacity: number
  used: number
  status: string
  /** Milliseconds since the owner's last ping. */
  lastPingMs: number
}

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
    const now = Date.now()
    const segments = (await master.getAllSegments()).map((s) => ({
      name: s.name,
      endpoint: s.endpoints[0] ?? '',
      capacity: s.capacity,
      used: s.used,
      status: s.status,
      lastPingMs: Math.max(0, now - s.lastPingAt),
    }))
    if (segments.length === 0) this.notice('no segments mounted')
    else
      this.log(
        renderTable(
          [
            {header: 'NAME', get: (s) => s.name},
            {header: 'ENDPOINT', get: (s) => s.endpoint},
            {header: 'CAPACITY', get: (s) => formatBytes(s.capacity), align: 'right'},
            {header: 'USED', get: (s) => formatBytes(s.used), align: 'right'},
            {header: 'STATUS', get: (s) => s.status},
            {header: 'LAST PING', get: (s) => formatAgo(s.lastPingMs)},
          ],
          segments,
        ),
      )
    return {segments}
  }
}
