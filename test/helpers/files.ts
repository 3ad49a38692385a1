// Files on disk, for tests that check what a component left behind.
import {existsSync, readdirSync} from 'node:fs'
import path from 'node:path'

/** Every regular file below `dir` (none when it does not exist). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, {recursive: true, withFileTypes: true})
    .filter((e) => e.isFile())
    .map((e) => path.join(e.path, e.name))
}
