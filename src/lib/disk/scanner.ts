/**
 * The restart scan [ours] (docs/disk-tier.md "Restart"): walks ROOT/CLUSTER/aa/bb/, reads each
 * data file's header (key, size, checksum, object version) and returns the disk objects found.
 * Files whose header is damaged, whose name does not match their header, or whose length is
 * wrong are skipped (and counted); of several versions of one key only the newest is kept (the
 * older files are deleted); temporary files older than `tempMaxAgeMs` (a writer that died) are
 * deleted. Only the value's CRC32C is left to the readers (it is verified on every read).
 */
import {open, opendir, stat, unlink} from 'node:fs/promises'
import path from 'node:path'

import {isTempName, keyHash, parseDiskFileName, readHeader} from './format.js'

export interface ScannedFile {
  path: string
  key: string
  size: number
  version: number
  checksum: number
  /** Bytes on disk (header included). */
  bytes: number
  mtimeMs: number
}

export interface ScanResult {
  files: ScannedFile[]
  /** Files skipped because they are not valid disk replicas. */
  invalid: string[]
  /** Older versions and stale temporary files deleted. */
  deleted: number
}

export interface ScanOptions {
  crc32c: (data: Uint8Array, seed?: number) => number
  /** Temporary files older than this are deleted. @default 600_000 */
  tempMaxAgeMs?: number
  /** Headers read at once. @default 32 */
  concurrency?: number
  now?: () => number
}

const HEX2 = /^[0-9a-f]{2}$/

async function listDir(dir: string): Promise<string[]> {
  try {
    const d = await opendir(dir)
    const out: string[] = []
    for await (const e of d) out.push(e.name)
    return out
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
}

export async function scanDiskDir(dir: string, options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? Date.now
  const tempMaxAge = options.tempMaxAgeMs ?? 600_000
  const invalid: string[] = []
  let deleted = 0
  const candidates: Array<{path: string; hash: string; version: number}> = []
  const temps: string[] = []
  for (const a of (await listDir(dir)).sort()) {
    if (!HEX2.test(a)) continue
    for (const b of (await listDir(path.join(dir, a))).sort()) {
      if (!HEX2.test(b)) continue
      const sub = path.join(dir, a, b)
      for (const name of await listDir(sub)) {
        const p = path.join(sub, name)
        if (isTempName(name)) {
          temps.push(p)
          continue
        }
        const parsed = parseDiskFileName(name)
        if (parsed === undefined || !parsed.hash.startsWith(a + b)) {
          invalid.push(p)
          continue
        }
        candidates.push({path: p, ...parsed})
      }
    }
  }
  for (const t of temps) {
    try {
      const st = await stat(t)
      if (now() - st.mtimeMs > tempMaxAge) {
        await unlink(t)
        deleted++
      }
    } catch {}
  }

  const files: ScannedFile[] = []
  let next = 0
  const head = async (c: {path: string; hash: string; version: number}): Promise<void> => {
    const fh = await open(c.path, 'r')
    try {
      const h = await readHeader(fh, options.crc32c, c.path)
      const st = await fh.stat()
      if (h.version !== c.version || keyHash(h.key) !== c.hash || st.size !== h.headerLength + h.size || h.size < 1) {
        invalid.push(c.path)
        return
      }
      files.push({path: c.path, key: h.key, size: h.size, version: h.version, checksum: h.checksum, bytes: st.size, mtimeMs: st.mtimeMs})
    } finally {
      await fh.close().catch(() => {})
    }
  }
  const worker = async (): Promise<void> => {
    while (next < candidates.length) {
      const c = candidates[next++]
      try {
        await head(c)
      } catch {
        invalid.push(c.path)
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, options.concurrency ?? 32)}, worker))

  // Newest version per key wins; older files are leftovers of an upsert whose delete was lost.
  const byKey = new Map<string, ScannedFile>()
  for (const f of files) {
    const seen = byKey.get(f.key)
    if (seen === undefined) byKey.set(f.key, f)
    else {
      const [keep, drop] = seen.version >= f.version ? [seen, f] : [f, seen]
      byKey.set(f.key, keep)
      try {
        await unlink(drop.path)
        deleted++
      } catch {}
    }
  }
  const kept = [...byKey.values()].sort((x, y) => x.mtimeMs - y.mtimeMs)
  return {files: kept, invalid, deleted}
}
