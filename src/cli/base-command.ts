import {Command, Errors, type Interfaces} from '@oclif/core'

import type {MooncakeClient} from '../lib/client/client.js'
import type {MasterClient} from '../lib/client/master-client.js'
import type {MooncakeClientOptions} from '../lib/client/options.js'
import {clientTls, resolveConfig, resolveToken, type ConfigInput, type GlobalConfig, type ResolvedConfig} from '../lib/config.js'
import {configureEtcd} from '../lib/etcd-options.js'
import {exitCodeFor, type MooncakeError} from '../lib/errors.js'
import type {P2PAdmin} from '../lib/p2p/admin.js'
import type {P2PStore} from '../lib/p2p/store.js'
import type {P2PEvent} from '../lib/p2p/types.js'
import {colors} from './color.js'
import {CommandDeadline} from './deadline.js'
import {errorLine, toCliError} from './errors.js'
import {GLOBAL_FLAGS, parseDurationFlag} from './flags.js'
import {createLogger, type Logger} from './logger.js'
import {createProgress, PROGRESS_THRESHOLD, type Progress} from './progress.js'
import {jsonLine} from './render.js'

export type CommandFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type CommandArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * The base of every mooncake command. A command declares `flags`/`args`/`description`/
 * `examples` as statics, reads `this.flags`, `this.args` and `this.settings` in run(), calls
 * src/lib, prints human output with `this.log()` and returns the object `--json` prints.
 * Errors are thrown (MooncakeError) and reported here, in one place, per the CLI contract.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = GLOBAL_FLAGS
  static override enableJsonFlag = true
  /**
   * Long-running commands (master, segment mount, up, ...): --timeout bounds only their start
   * (until `ready()`), they log at info by default, and SIGINT/SIGTERM are a normal stop
   * (`untilStopped()` resolves) rather than an interruption.
   */
  static server = false

  protected flags!: CommandFlags<T>
  protected args!: CommandArgs<T>
  /** Global settings after flag > env > profile > default. */
  protected settings!: GlobalConfig
  /** Resolution inputs and the selected profile, for command-specific tables (resolveSettings). */
  protected resolved!: ResolvedConfig
  protected configInput!: ConfigInput
  protected logger!: Logger
  /** The --timeout deadline and SIGINT; pass `deadline.signal` / `deadline.remainingMs()` to src/lib. */
  protected deadline!: CommandDeadline

  readonly #cleanups: Array<() => unknown> = []
  readonly #signalHandlers = new Map<NodeJS.Signals, () => void>()
  readonly #stop = deferred<NodeJS.Signals>()
  /** Set by ready(): from then on a signal is a normal stop, not an interruption. */
  #serving = false
  #pendingInterrupt: NodeJS.Signals | undefined
  #signals = 0

  private get isServer(): boolean {
    return (this.ctor as unknown as typeof BaseCommand).server === true
  }

  override async init(): Promise<void> {
    await super.init()
    // Installed first so that a Ctrl-C during config resolution is already exit 130.
    this.deadline = new CommandDeadline(0)
    // A reader of stdout that went away (`mooncake ls | head`) is not an error of the command:
    // without a listener the EPIPE would crash the process with a stack trace.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
    })
    this.#onSignal('SIGINT', () => this.#interrupt('SIGINT'))
    if (this.isServer) this.#onSignal('SIGTERM', () => this.#interrupt('SIGTERM'))

    const {args, flags, raw} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as unknown as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as CommandFlags<T>
    this.args = args as CommandArgs<T>
    // Only typed flags count as flags: oclif also fills values from env and defaults.
    const typed = new Set(raw.filter((token) => token.type === 'flag').map((token) => token.flag))
    const given = Object.fromEntries(Object.entries(flags).filter(([name]) => typed.has(name)))
    this.configInput = {flags: given, env: process.env}
    this.resolved = await resolveConfig(this.configInput, {server: this.isServer, quiet: this.flags.quiet})
    this.settings = this.resolved.global
    // TLS / auth of every etcd client this command creates (HA, P2P, doctor, cluster status, top).
    configureEtcd(this.settings)
    this.logger = createLogger({level: this.settings.logLevel, timestamps: this.isServer})
    // grpc-js prints its own "E ..." lines on stderr; our errors already say what failed, in one
    // line. Set before grpc-js loads (lazily, in run()); --log-level debug keeps them.
    if (this.settings.logLevel !== 'debug' && !process.env.GRPC_NODE_VERBOSITY && !process.env.GRPC_VERBOSITY) {
      process.env.GRPC_NODE_VERBOSITY = 'NONE'
    }
    this.deadline = new CommandDeadline(this.settings.timeoutMs)
    if (this.#pendingInterrupt) this.deadline.interrupt(this.#pendingInterrupt)

    // The deadline and Ctrl-C bound run() even when a library call ignores them.
    const run = this.run.bind(this)
    this.run = () => this.deadline.race(run())
  }

  /** JSON output is compact, one document per command (oclif pretty-prints by default). */
  override logJson(json: unknown): void {
    process.stdout.write(jsonLine(json))
  }

  /**
   * The one place errors are reported: one line on stderr (`mooncake: CODE: message`), with
   * --json also `{"error":{"code","message"}}` on stdout; the exit code follows the code.
   */
  override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err
    const error = toCliError(err, this.id)
    await this.reportError(error, err)
    throw new Errors.ExitError(exitCodeFor(error.code))
  }

  protected async reportError(error: MooncakeError, original?: unknown): Promise<void> {
    const line = errorLine(error)
    const paint = await colors(process.stderr)
    process.stderr.write(`${paint ? line.replace(/^mooncake: \S+:/, (head) => paint.red(head)) : line}\n`)
    if (process.env.DEBUG) {
      const stack = original instanceof Error ? original.stack : error.stack
      if (stack) process.stderr.write(`${stack}\n`)
    }
    if (this.jsonEnabled()) this.logJson({error: {code: error.code, message: error.message}})
  }

  override async finally(err: Error | undefined): Promise<void> {
    this.deadline?.cancel()
    for (const cleanup of this.#cleanups.reverse()) {
      try {
        await cleanup()
      } catch (cleanupError) {
        this.logger?.debug(`cleanup failed: ${(cleanupError as Error).message}`)
      }
    }
    for (const [signal, handler] of this.#signalHandlers) process.off(signal, handler)
    // A library handle left open (a socket, a timer) must not keep a finished command alive;
    // unref'd, this fires only if something else still holds the event loop.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref()
    await super.finally(err)
  }

  /**
   * One failed item of a multi-item command (rm, query, ...): the contract's error line on
   * stderr, whatever --json/--quiet say; the command still prints its document.
   */
  protected itemError(code: MooncakeError['code'], message: string): void {
    process.stderr.write(`${errorLine({code, message} as MooncakeError)}\n`)
  }

  /**
   * Ends a command that printed its result with a non-zero exit code (exists with a missing key,
   * a partial rm or query): the document still goes to stdout, the code tells the script.
   */
  protected setExitCode(code: number): void {
    process.exitCode = code
  }

  /** Runs `fn` after run(), on success and failure alike (close clients, remove temp files). */
  protected onCleanup(fn: () => unknown): void {
    this.#cleanups.push(fn)
  }

  /** A notice for humans on stderr (not data); --quiet and --json silence it. */
  protected notice(message: string): void {
    if (!this.flags?.quiet && !this.jsonEnabled()) process.stderr.write(`${message}\n`)
  }

  /** A progress bar on stderr for a transfer of `total` bytes; a no-op where nobody watches. */
  protected progress(label: string, total: number): Progress {
    return createProgress({label, total, enabled: !this.jsonEnabled() && !this.flags?.quiet})
  }

  /**
   * A progress bar for a transfer of `total` bytes whose progress `read()` reports (polled);
   * returns the function that stops and clears it. A no-op below 64 MiB or off a terminal.
   */
  protected trackTransfer(label: string, total: number, read: () => number): () => void {
    const bar = this.progress(label, total)
    if (total <= PROGRESS_THRESHOLD || !process.stderr.isTTY) return () => bar.done()
    const start = read()
    const timer = setInterval(() => bar.update(Math.min(total, read() - start)), 100)
    timer.unref()
    return () => {
      clearInterval(timer)
      bar.done()
    }
  }

  /** The cluster token (MOONCAKE_TOKEN / MOONCAKE_TOKEN_FILE), or undefined. */
  protected clusterToken(): string | undefined {
    return resolveToken(this.configInput.env)
  }

  /**
   * Connects to the master within the deadline; an unreachable master is UNAVAILABLE (exit 5).
   * The client is closed after run(). Imported lazily: gRPC costs start-up time.
   */
  protected async connectMaster(): Promise<MasterClient> {
    const {connectMaster} = await import('../lib/client/master-client.js')
    const {master: address, etcd, clusterId} = this.settings
    this.deadline.waitingFor = etcd ? `the leader master (etcd ${etcd.join(',')})` : `master ${address}`
    try {
      const client = await this.deadline.race(
        connectMaster({
          address,
          token: this.clusterToken(),
          tls: clientTls(this.settings),
          timeoutMs: this.deadline.remainingMs(),
          connectTimeoutMs: this.deadline.remainingMs(),
          etcd,
          clusterId,
        }),
      )
      this.onCleanup(() => client.close())
      return client
    } finally {
      this.deadline.waitingFor = undefined
    }
  }

  /**
   * A data client (put, get, ...) connected within the deadline, closed after run(). Pass
   * command-specific options (transport, replication); address, token and deadlines come from
   * the resolved settings.
   */
  protected async connectClient(options: MooncakeClientOptions = {}): Promise<MooncakeClient> {
    // With --etcd the leader is found through etcd by connectMaster; the client adopts it. With
    // TLS too (connectMaster sets the channel up from --tls-ca / --tls-cert / --tls-key).
    // Only whether TLS is on: connectMaster reads (and checks) the files.
    const {etcd, tlsCa, tlsCert, tlsKey} = this.settings
    const tls = tlsCa !== undefined || tlsCert !== undefined || tlsKey !== undefined
    if (((etcd && etcd.length > 0) || tls) && !options.master) {
      options = {...options, master: await this.connectMaster()}
    }
    const {MooncakeClient} = await import('../lib/client/client.js')
    this.deadline.waitingFor = `master ${this.settings.master}`
    try {
      const client = await this.deadline.race(
        MooncakeClient.connect({
          masterAddress: this.settings.master,
          token: this.clusterToken(),
          timeoutMs: this.deadline.remainingMs(),
          connectTimeoutMs: this.deadline.remainingMs(),
          ...options,
        }),
      )
      this.onCleanup(() => client.close())
      return client
    } finally {
      this.deadline.waitingFor = undefined
    }
  }

  /**
   * A serving P2P peer (register, get) on --etcd, closed after run(). `onEvent` sees every event
   * first; control requests, retries and warnings are logged here.
   */
  protected async openP2PStore(
    peer: {peer?: string; host: string; port: number; insecure: boolean; leaseTtl: string; concurrency?: number},
    onEvent: (event: P2PEvent) => void,
  ): Promise<P2PStore> {
    const {requireEtcd} = await import('../lib/p2p/cli-support.js')
    const {P2PStore} = await import('../lib/p2p/store.js')
    const leaseTtlMs = parseDurationFlag('lease-ttl', peer.leaseTtl)
    const etcd = requireEtcd(this.settings.etcd)
    this.deadline.waitingFor = `etcd ${etcd.join(',')}`
    try {
      const store = await this.deadline.race(
        P2PStore.open({
          etcd,
          clusterId: this.settings.clusterId,
          peerName: peer.peer,
          host: peer.host,
          port: peer.port,
          token: this.clusterToken(),
          insecure: peer.insecure,
          leaseTtlMs,
          ...(peer.concurrency === undefined ? {} : {concurrency: peer.concurrency}),
          onEvent: (event) => {
            onEvent(event)
            if (event.type === 'retry') this.logger.debug(`shard ${event.shard} from ${event.holder} failed (${event.error}); trying another holder`)
            else if (event.type === 'control') this.logger.info(`${event.op} of "${event.name}" requested by ${event.from}: ${event.ok ? 'done' : event.error}`)
            else if (event.type === 'warning') this.logger.warn(event.message)
            else if (event.type === 'lease-regranted') this.logger.warn(`etcd lease lost and re-granted for peer ${event.peer}`)
          },
        }),
      )
      this.onCleanup(() => store.close())
      return store
    } finally {
      this.deadline.waitingFor = undefined
    }
  }

  /** A P2P admin client (list, unregister, delete-replica) on --etcd, closed after run(). */
  protected async connectP2PAdmin(): Promise<P2PAdmin> {
    const {requireEtcd} = await import('../lib/p2p/cli-support.js')
    const {P2PAdmin} = await import('../lib/p2p/admin.js')
    const etcd = requireEtcd(this.settings.etcd)
    this.deadline.waitingFor = `etcd ${etcd.join(',')}`
    try {
      const admin = await this.deadline.race(P2PAdmin.connect({etcd, clusterId: this.settings.clusterId}))
      this.onCleanup(() => admin.close())
      return admin
    } finally {
      this.deadline.waitingFor = undefined
    }
  }

  /**
   * A server's ready line on stdout (a JSON object with --json), printed once it serves; from
   * then on --timeout no longer applies.
   */
  protected ready(line: string, json: Record<string, unknown>): void {
    this.deadline.cancel()
    this.#serving = true
    if (this.jsonEnabled()) this.logJson({ready: true, ...json})
    else process.stdout.write(`${line}\n`)
  }

  /** Resolves with the signal (SIGINT or SIGTERM) that asks a server to stop, once it is ready(). */
  protected untilStopped(): Promise<NodeJS.Signals> {
    return this.#stop.promise
  }

  #interrupt(signal: NodeJS.Signals): void {
    this.#signals++
    if (this.#signals > 1) {
      // A second Ctrl-C means "now": skip the clean shutdown.
      process.stderr.write(`mooncake: INTERRUPTED: ${signal} again, exiting at once\n`)
      process.exit(130)
    }
    if (this.#serving) {
      this.logger.info(`${signal} received, shutting down`)
      this.#stop.resolve(signal)
      return
    }
    this.#pendingInterrupt = signal
    this.deadline?.interrupt(signal)
  }

  #onSignal(signal: NodeJS.Signals, handler: () => void): void {
    this.#signalHandlers.set(signal, handler)
    process.on(signal, handler)
  }
}

function deferred<T>(): {promise: Promise<T>; resolve: (value: T) => void} {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return {promise, resolve}
}
