// Assertions on MooncakeError codes, shared by unit and integration tests.
import * as assert from 'uvu/assert'

import {isMooncakeError, type MooncakeError} from '../../src/lib/errors.js'

/** Awaits `p` and asserts it rejects with a MooncakeError of `code`; returns that error. */
export async function rejects(p: Promise<unknown>, code: string): Promise<MooncakeError> {
  try {
    await p
  } catch (err) {
    assert.ok(isMooncakeError(err), `not a MooncakeError: ${String(err)}`)
    assert.is((err as MooncakeError).code, code, (err as Error).message)
    return err as MooncakeError
  }
  assert.unreachable(`expected ${code}, got success`)
  throw new Error('unreachable')
}
