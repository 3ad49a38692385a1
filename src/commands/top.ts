import {writeSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'

import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {MASTER_HTTP_FLAGS, parseDurationFlag} from '../cli/flags.js'
import {formatBytes, jsonLine, segmentTable} from '../cli/render.js'
import {clientTls} from '../lib/config.js'
import {isMooncakeError, MooncakeError} from '../lib/errors.js'
import type {TopModel, TopSample, TopSnapshot} from '../lib/top/model.js'

/** Leave the alternate screen and show the cursor again. */
const RESTORE_SCREEN = '\x1b[?25h\x1b[?1049l'
/** Enter the alternate screen, clear it, hide the cursor. */
const ENTER_SCREEN = '\x1b[?1049h\x1b[2J\x1b[H\x1b[?25l'

export default class Top extends BaseCommand<typeof Top> {
  static override summary = 'live dashboard of the cluster'
  static override description = `Polls the master's HTTP port (/health, /get_all_segments, /metrics; nothing that grants a lease) every --interval and shows memory use, keys, ops/s with failure rates (from counter deltas), evictions and one row per segment; a row turns yellow when its owner's last ping passes half the client TTL and red past 80 %.
The HTTP port is --http HOST:PORT; by default the host of --master (with --etcd: of the leader named in etcd) with port 9003 (the master's --metrics-port default). A master started with --tls-cert serves that port over https: pass --tls-ca (MOONCAKE_TLS_CA) to verify it, and --tls-cert / --tls-key when it requires client certificates (--tls-ca on the master), as for every other command.
In a terminal it runs full screen (alternate screen): q quit, p pause, s sort, r reverse, / filter (Esc clears), ? help.
When stdout is not a terminal it prints one line per interval (like redis-cli --stat): keys, used, capacity, mem%, clients, segments, put/s, get/s, rm/s, fail/s, evict/s; --count N stops after N lines.
--once takes two samples one --interval apart (so rates are real) and prints one snapshot; with --json: {"master","role","capacity","used","keys","softPinnedKeys","clients","segments":[{"name","endpoint","capacity","used","status","lastPingMs"}],"rates":{"put","putFailed","get","getFailed","remove","removeFailed","evictions","evictedKeys","evictedBytes"}} (rates per second, bytes as numbers). --json without --once prints one such snapshot per line.
Exit codes: 0 after q, --once or --count; 2 for a bad --interval or --http; 5 when the master's HTTP port cannot be reached within --timeout (later polls that fail are reported and retried); 6 when the master refuses the client certificate (or none was given).`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    {description: 'One snapshot for a script', command: '<%= config.bin %> <%= command.id %> --once --json'},
    {description: 'A line every 5 seconds into a log, ten times', command: '<%= config.bin %> <%= command.id %> --interval 5s --count 10 >> top.log'},
    {description: 'A master whose HTTP port is not the default', command: '<%= config.bin %> <%= command.id %> --master 10.0.0.7:50051 --http 10.0.0.7:9100'},
  ]
  static override flags = {
    ...MASTER_HTTP_FLAGS,
    interval: Flags.string({summary: 'time between polls', default: '1s', env: 'MOONCAKE_INTERVAL', helpValue: 'DURATION'}),
    once: Flags.boolean({summary: 'print one snapshot (two samples one interval apart) and exit'}),
    count: Flags.integer({summary: 'stop after N lines (not a terminal, or --json)', min: 1, helpValue: 'N'}),
  }

  async run(): Promise<TopSnapshot | undefined> {
    const {fetchSample, httpAddressFor, leaderFromEtcd} = await import('../lib/top/source.js')
    const {TopModel} = await import('../lib/top/model.js')
    const intervalMs = parseDurationFlag('interval', this.flags.interval)
    if (intervalMs < 100) throw new MooncakeError('INVALID_PARAMS', `--interval must be at least 100ms (got ${this.flags.interval})`)
    let master = this.settings.master
    if (this.settings.etcd !== undefined && this.settings.etcd.length > 0 && !this.flags.http) {
      // With --etcd, --master is ignored: the leader's host comes from etcd.
      this.deadline.waitingFor = `the leader master (etcd ${this.settings.etcd.join(',')})`
      const leader = await this.deadline.race(leaderFromEtcd(this.settings.etcd, this.settings.clusterId, this.deadline.remainingMs(5_000)))
      if (leader === undefined) throw new MooncakeError('UNAVAILABLE', `no master leads cluster ${this.settings.clusterId} in etcd (check --cluster-id), or pass --http`)
      master = leader
    }
    const http = httpAddressFor(master, this.flags.http)
    const pollTimeout = Math.min(5_000, Math.max(1_000, intervalMs))
    const tls = clientTls(this.settings)
    const poll = () => fetchSample(http, {timeoutMs: pollTimeout, signal: this.deadline.signal, tls})

    // First contact within --timeout: an unreachable master is UNAVAILABLE (exit 5).
    this.deadline.waitingFor = `master HTTP port ${http}`
    const first = await this.deadline.race(
      (async () => {
        for (;;) {
          try {
            return await poll()
          } catch (err) {
            // Only an unreachable port may come up later; a refused client certificate or a
            // malformed --http will not change on a retry: say so at once.
            if (isMooncakeError(err) && err.code !== 'UNAVAILABLE') throw err
            if (this.deadline.remaining() < pollTimeout + 200 || this.deadline.signal.aborted) throw err
            await sleep(Math.min(500, intervalMs))
          }
        }
      })(),
    )
    this.deadline.waitingFor = undefined
    const model = new TopModel(master)
    model.update(first)

    if (this.flags.once) {
      await sleep(intervalMs)
      model.update(await this.deadline.race(poll()))
      const snap = model.snapshot()
      if (!this.jsonEnabled()) this.printSummary(snap)
      return snap
    }
    // From here on we run until q, --count or a signal: --timeout only bounded the first contact.
    this.deadline.cancel()

    if (this.jsonEnabled() || !process.stdout.isTTY) {
      await this.stream(model, poll, intervalMs)
      return undefined
    }
    await this.dashboard(master, first, poll, intervalMs)
    return undefined
  }

  /** One line (or one JSON snapshot) per interval. */
  private async stream(model: TopModel, poll: () => Promise<TopSample>, intervalMs: number): Promise<void> {
    const {statHeader, statLine} = await import('../lib/top/model.js')
    const json = this.jsonEnabled()
    const limit = this.flags.count ?? Infinity
    let printed = 0
    const emit = () => {
      const snap = model.snapshot()
      process.stdout.write(json ? jsonLine(snap) : `${statLine(snap, model.hasRates)}\n`)
      printed += 1
    }
    if (!json) process.stdout.write(`${statHeader()}\n`)
    emit()
    let next = Date.now() + intervalMs
    while (printed < limit) {
      await this.deadline.race(sleep(Math.max(0, next - Date.now())))
      next += intervalMs
      try {
        model.update(await this.deadline.race(poll()))
      } catch (err) {
        if (this.deadline.signal.aborted) throw err
        process.stderr.write(`mooncake: UNAVAILABLE: ${(err as Error).message} (retrying)\n`)
        continue
      }
      emit()
    }
  }

  /** Full screen ink dashboard on the alternate screen, restored on every way out. */
  private async dashboard(master: string, first: TopSample, poll: () => Promise<TopSample>, intervalMs: number): Promise<void> {
    const [{render}, React, {TopApp}] = await Promise.all([import('ink'), import('react'), import('../lib/top/app.js')])
    let restored = false
    const restore = () => {
      if (restored) return
      restored = true
      try {
        writeSync(1, RESTORE_SCREEN)
      } catch {}
    }
    const onExit = () => restore()
    const onTerm = () => {
      restore()
      process.exit(143)
    }
    process.on('exit', onExit)
    process.once('SIGTERM', onTerm)
    process.once('SIGHUP', onTerm)
    this.onCleanup(() => {
      restore()
      process.off('exit', onExit)
      process.off('SIGTERM', onTerm)
      process.off('SIGHUP', onTerm)
    })
    process.stdout.write(ENTER_SCREEN)
    const app = render(React.createElement(TopApp, {master, intervalMs, poll, initial: first}), {
      exitOnCtrlC: true,
      patchConsole: true,
      maxFps: 10,
      incrementalRendering: true,
    })
    // A signal (SIGINT from kill) rejects this race: leave the screen before the error is printed.
    try {
      await this.deadline.race(app.waitUntilExit() as Promise<unknown>)
    } finally {
      app.unmount()
      restore()
    }
  }

  private printSummary(snap: TopSnapshot): void {
    const r = snap.rates
    this.log(`master ${snap.master} (${snap.role})`)
    this.log(
      `memory ${formatBytes(snap.used)} / ${formatBytes(snap.capacity)}  keys ${snap.keys}  soft-pinned ${snap.softPinnedKeys}  clients ${snap.clients}`,
    )
    const f = (n: number) => (Math.round(n * 10) / 10).toString()
    this.log(
      `ops/s  put ${f(r.put)} (failed ${f(r.putFailed)})  get ${f(r.get)} (failed ${f(r.getFailed)})  remove ${f(r.remove)} (failed ${f(r.removeFailed)})  evicted keys/s ${f(r.evictedKeys)}`,
    )
    if (snap.segments.length === 0) {
      this.log('no segments mounted')
      return
    }
    this.log('')
    this.log(segmentTable(snap.segments))
  }
}
