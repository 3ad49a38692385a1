/** Helpers of the `mooncake p2p` commands that are plain library code (no oclif). */
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {MooncakeError} from '../errors.js'
import type {P2PDestination, PayloadRecord} from './types.js'

export function requireEtcd(etcd: string[] | undefined): string[] {
  if (!etcd || etcd.length === 0) {
    throw new MooncakeError('USAGE', 'the P2P store keeps its metadata in etcd: give --etcd HOST:PORT[,HOST:PORT...] or set MOONCAKE_ETCD')
  }
  return etcd
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory()
  } catch {
    return false
  }
}

/**
 * Maps `p2p get NAME DEST` to destination files: a one-part payload goes to DEST (or into DEST
 * when it is a directory, under its recorded part name); a several-part payload goes into the
 * directory DEST (created if missing), one file per part.
 */
export async function resolveDestinations(record: PayloadRecord, dest: string): Promise<{destinations: P2PDestination[]; files: string[]}> {
  const parts = record.sizeList.length
  const names = record.partNames ?? record.sizeList.map((_, i) => (parts === 1 ? path.basename(record.name) || 'payload' : `part-${i}`))
  let files: string[]
  if (parts === 1 && !(await isDirectory(dest)) && !dest.endsWith('/')) {
    files = [dest]
  } else {
    if (!(await isDirectory(dest))) {
      try {
        await fsp.mkdir(dest, {recursive: true})
      } catch (err) {
        throw new MooncakeError('FILE_OPEN_FAIL', `cannot create directory ${dest}: ${(err as Error).message}`, {cause: err})
      }
    }
    files = names.map((n) => path.join(dest, n))
  }
  return {destinations: files.map((file, i) => ({file, size: record.sizeList[i]})), files}
}
