import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {hostname} from 'node:os'

let cached: string | undefined

function readTrimmed(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch {
    return ''
  }
}

/**
 * A stable identity of this machine for this boot: a hash of /etc/machine-id and the kernel's
 * boot id (two processes on one host agree; a reboot, whose shared memory is gone, changes it).
 * Falls back to the hostname when neither file exists. Overridable with MOONCAKE_HOST_ID.
 */
export function defaultHostId(): string {
  if (cached) return cached
  const fromEnv = process.env.MOONCAKE_HOST_ID
  if (fromEnv) return (cached = fromEnv)
  const machine = readTrimmed('/etc/machine-id') || readTrimmed('/var/lib/dbus/machine-id')
  const boot = readTrimmed('/proc/sys/kernel/random/boot_id')
  const basis = machine || boot ? `${machine}/${boot}` : `host:${hostname()}`
  cached = createHash('sha256').update(basis).digest('hex').slice(0, 32)
  return cached
}
