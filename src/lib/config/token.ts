import {readFileSync, statSync} from 'node:fs'
import os from 'node:os'

import {MooncakeError} from '../errors.js'
import {expandHome} from './parse.js'

export const TOKEN_ENV = 'MOONCAKE_TOKEN'
export const TOKEN_FILE_ENV = 'MOONCAKE_TOKEN_FILE'

/**
 * The cluster token, from MOONCAKE_TOKEN or the file named by MOONCAKE_TOKEN_FILE (contents
 * trimmed). Never a flag: argv is visible to every user of the machine (ps), the environment
 * and a 0600 file are not. A token file that group or others can access is refused, as ssh
 * refuses such a private key.
 */
export function resolveToken(
  env: Record<string, string | undefined> = process.env,
  homeDir: string = os.homedir(),
): string | undefined {
  const inline = env[TOKEN_ENV]
  const file = env[TOKEN_FILE_ENV]
  if (inline && file) {
    throw new MooncakeError('USAGE', `${TOKEN_ENV} and ${TOKEN_FILE_ENV} are both set: set only one`)
  }
  if (inline) {
    const token = inline.trim()
    if (token === '') throw new MooncakeError('USAGE', `${TOKEN_ENV} is blank`)
    return token
  }
  if (!file) return undefined

  const tokenPath = expandHome(file, homeDir)
  let mode: number
  let text: string
  try {
    mode = statSync(tokenPath).mode
    text = readFileSync(tokenPath, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new MooncakeError('USAGE', `${TOKEN_FILE_ENV} ${tokenPath}: ${reason}`)
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0')
    throw new MooncakeError(
      'USAGE',
      `${TOKEN_FILE_ENV} ${tokenPath} is accessible by group or others (mode ${octal}): run chmod 600 ${tokenPath}`,
    )
  }
  const token = text.trim()
  if (token === '') throw new MooncakeError('USAGE', `${TOKEN_FILE_ENV} ${tokenPath} is empty`)
  return token
}
