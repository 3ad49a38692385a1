/**
 * Event-loop lag as timer drift: how late a periodic timer fired. The master extends liveness
 * deadlines by it (S12), so its own stall never declares healthy clients dead.
 */
import {performance} from 'node:perf_hooks'

export class TimerDrift {
  readonly #intervalMs: number
  #last = performance.now()

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs
  }

  /** Call once per timer firing: milliseconds the loop was late since the previous firing. */
  sample(now = performance.now()): number {
    const lag = Math.max(0, now - this.#last - this.#intervalMs)
    this.#last = now
    return lag
  }
}

export interface TickLoop {
  stop(): void
}

/**
 * Calls `tick(lagMs)` every `intervalMs`. A throwing tick is reported to `onError` and the loop
 * goes on: one bad round of background work must not stop eviction and liveness for good.
 */
export function startTickLoop(
  tick: (loopLagMs: number) => void,
  intervalMs: number,
  onError: (err: unknown) => void,
): TickLoop {
  const drift = new TimerDrift(intervalMs)
  const timer = setInterval(() => {
    try {
      tick(drift.sample())
    } catch (err) {
      onError(err)
    }
  }, intervalMs)
  timer.unref()
  return {stop: () => clearInterval(timer)}
}
