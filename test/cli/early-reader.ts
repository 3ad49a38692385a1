/**
 * `mooncake ARGS | head -c BYTES`: a reader that goes away after a few bytes. Resolves with the
 * CLI's own exit status (bash's PIPESTATUS[0], not head's) and what it printed on stderr.
 */
import {spawn} from 'node:child_process'
import {once} from 'node:events'

import {BIN, cleanEnv, ROOT} from './helpers.js'

const quote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`

export async function runIntoHead(args: string[], bytes: number): Promise<{status: string; stderr: string}> {
  const command = [process.execPath, BIN, ...args].map(quote).join(' ')
  const child = spawn('bash', ['-c', `${command} | head -c ${bytes} >/dev/null; echo "\${PIPESTATUS[0]}"`], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  await once(child, 'close')
  return {status: stdout.trim(), stderr}
}
