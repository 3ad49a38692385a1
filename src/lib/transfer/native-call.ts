import {codeName, MooncakeError, type ErrorCodeName} from '../errors.js'

/** Converts an error thrown by the addon (an Error with a numeric `status`) into a MooncakeError. */
export function fromNative(err: unknown, fallback: ErrorCodeName = 'INTERNAL_ERROR'): MooncakeError {
  if (err instanceof MooncakeError) return err
  if (err instanceof Error) {
    const status = (err as Error & {status?: unknown}).status
    const code = typeof status === 'number' ? codeName(status) : fallback
    return new MooncakeError(code, err.message, {cause: err})
  }
  return new MooncakeError(fallback, String(err))
}

/** Runs a synchronous addon call, rethrowing its failure as a MooncakeError. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}
