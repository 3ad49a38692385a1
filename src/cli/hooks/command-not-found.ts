import type {Hook} from '@oclif/core'

import {MooncakeError} from '../../lib/errors.js'
import {errorLine} from '../errors.js'

/**
 * `mooncake nosuch` is a usage error like any other: one line on stderr, exit 2 (oclif would
 * print a multi-line box instead).
 */
const hook: Hook<'command_not_found'> = async function (options) {
  const id = options.id.replaceAll(':', ' ')
  const error = new MooncakeError('USAGE', `command "${id}" not found (see: mooncake --help)`)
  process.stderr.write(`${errorLine(error)}\n`)
  if (options.argv?.includes('--json')) process.stdout.write(`${JSON.stringify({error: error.toJSON()})}\n`)
  process.exit(2)
}

export default hook
