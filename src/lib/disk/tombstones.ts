/**
 * The tombstone log of the disk tier (docs/disk-tier.md "Remove"). The master deletes disk files
 * asynchronously, after it has acknowledged the remove; a crash in between would leave the file,
 * and the restart scan would bring the removed object back. So the file's name is appended here
 * first, synchronously (one small write(2), no fsync: a crashed process loses nothing the kernel
 * has), and the next restart deletes every file named in the log before it scans. The log is
 * removed whenever every deletion queued so far has succeeded: it exists only while deletions
 * are pending, and stays small.
 *
 * Lines are paths relative to the cluster directory (`aa/bb/<hash>-v<version>`); anything else
 * is ignored on replay, so a damaged log can never delete outside the tier's own files.
 */
import {closeSync, mkdirSync, openSync, unlinkSync, writeSync} from 'node:fs'
import {readFile, unlink} from 'node:fs/promises'
import path from 'node:path'

export const TOMBSTONE_FILE = '.tombstones'

const LINE = /^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}-v\d+$/

export class TombstoneLog {
  readonly file: string
  private fd: number | undefined
  /** Appends that failed (the file then only has the asynchronous delete). */
  errors = 0

  constructor(readonly dir: string) {
    this.file = path.join(dir, TOMBSTONE_FILE)
  }

  /** Records that `file` (an absolute path inside dir) is being deleted. Never throws. */
  record(file: string): void {
    const rel = path.relative(this.dir, file)
    try {
      if (this.fd === undefined) {
        mkdirSync(this.dir, {recursive: true})
        this.fd = openSync(this.file, 'a', 0o644)
      }
      writeSync(this.fd, `${rel}\n`)
    } catch {
      this.errors++
    }
  }

  /** Removes the log: every file it names is gone. */
  clear(): void {
    if (this.fd === undefined) return
    this.close()
    try {
      unlinkSync(this.file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.errors++
    }
  }

  /**
   * Restart: deletes every file the log names (a crash came before their deletion), then removes
   * the log. Returns how many files were deleted. Never throws: a directory that cannot be read
   * (missing, not a directory) has no log; a file that cannot be deleted keeps the log for the
   * next restart.
   */
  async replay(): Promise<number> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch {
      return 0
    }
    let deleted = 0
    for (const line of new Set(text.split('\n'))) {
      if (!LINE.test(line)) continue
      try {
        await unlink(path.join(this.dir, line))
        deleted++
      } catch (err) {
        // Already gone is the common case (the crash came after the delete).
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.errors++
          return deleted
        }
      }
    }
    try {
      await unlink(this.file)
    } catch {
      this.errors++
    }
    return deleted
  }

  close(): void {
    if (this.fd === undefined) return
    try {
      closeSync(this.fd)
    } catch {}
    this.fd = undefined
  }
}
