import {MooncakeError} from '../lib/errors.js'
import {formatDuration} from '../lib/units.js'

/**
 * The `--timeout` deadline of a whole command, counted from process start (what a script's
 * own timer sees), plus SIGINT. `race` makes any awaited work lose to either, so a command can
 * never hang on a library call that ignores its deadline.
 */
export class CommandDeadline {
  /** Set while waiting for a remote (e.g. `master 127.0.0.1:50051`): passing the deadline then means UNAVAILABLE. */
  waitingFor: string | undefined
  readonly #controller = new AbortController()
  readonly #expiresAt: number
  readonly #timeoutMs: number
  readonly #rejecters = new Set<(err: MooncakeError) => void>()
  #timer: NodeJS.Timeout | undefined
  #failure: MooncakeError | undefined

  /**
   * @param timeoutMs 0 = no deadline
   * @param graceMs the hard stop comes this long after the deadline, so a library call given
   *   `remaining()` reports its own, more precise error first
   */
  constructor(timeoutMs: number, graceMs = 250) {
    this.#timeoutMs = timeoutMs
    this.#expiresAt = timeoutMs > 0 ? performance.timeOrigin + timeoutMs : Infinity
    if (timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#fail(this.#expired()), Math.max(0, this.remaining() + graceMs))
    }
  }

  /** Aborted when the deadline passes or the user interrupts. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** Milliseconds left (Infinity without a deadline, never negative). */
  remaining(): number {
    return this.#expiresAt === Infinity ? Infinity : Math.max(0, this.#expiresAt - Date.now())
  }

  /** `remaining()` as a finite timeout for library calls, capped for "no deadline". */
  remainingMs(cap = 2 ** 31 - 1): number {
    return Math.min(cap, Math.max(1, Math.floor(this.remaining())))
  }

  /** Resolves or rejects with `work`, unless the deadline or an interrupt comes first. */
  race<T>(work: Promise<T>): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure)
    return new Promise<T>((resolve, reject) => {
      this.#rejecters.add(reject)
      work.then(resolve, reject).finally(() => this.#rejecters.delete(reject))
    })
  }

  /** SIGINT: every race fails with INTERRUPTED (exit 130). */
  interrupt(signal: NodeJS.Signals = 'SIGINT'): void {
    this.#fail(new MooncakeError('INTERRUPTED', `interrupted (${signal})`))
  }

  /** Stops the clock: a server that is serving is no longer bound by --timeout. */
  cancel(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #expired(): MooncakeError {
    const limit = `${formatDuration(this.#timeoutMs)} (--timeout)`
    return this.waitingFor
      ? new MooncakeError('UNAVAILABLE', `${this.waitingFor} not reachable within ${limit}`)
      : new MooncakeError('DEADLINE_EXCEEDED', `command did not finish within ${limit}`)
  }

  #fail(err: MooncakeError): void {
    if (this.#failure) return
    this.#failure = err
    this.cancel()
    this.#controller.abort(err)
    for (const reject of this.#rejecters) reject(err)
  }
}
