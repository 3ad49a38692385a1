import {readFileSync} from 'node:fs'

import {MooncakeError} from '../errors.js'

/** A PEM file named by a TLS flag (--tls-*, --etcd-*); USAGE naming the flag when it cannot be read. */
export function readPemFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new MooncakeError('USAGE', `cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}
