import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {MooncakeError} from '../errors.js'

/** Bumped whenever the native function table changes, so a stale build is detected. */
export const EXPECTED_NATIVE_ABI = 1

/** The flat function table exported by native/addon.cc. */
export interface NativeBinding {
  abiVersion(): number
  [fn: string]: unknown
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const candidates = [
  path.join(packageRoot, 'build', 'Release', 'mooncake_native.node'),
  path.join(packageRoot, 'build', 'Debug', 'mooncake_native.node'),
]

const FIX = `Rebuild it from the package directory (${packageRoot}) with: npm rebuild  (or: npx node-gyp rebuild --nodedir=/usr). It needs python3, make and g++.`

let cached: NativeBinding | undefined

/** Loads the native transfer engine once, explaining how to fix a missing or stale build. */
export function loadNative(): NativeBinding {
  if (cached) return cached
  const file = candidates.find((candidate) => existsSync(candidate))
  if (!file) {
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine is not built (looked for ${candidates.join(', ')}). ${FIX}`)
  }
  let binding: NativeBinding
  try {
    binding = createRequire(import.meta.url)(file) as NativeBinding
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine at ${file} could not be loaded (${reason}). ${FIX}`, {cause: err})
  }
  const abi = binding.abiVersion()
  if (abi !== EXPECTED_NATIVE_ABI) {
    throw new MooncakeError('NATIVE_BUILD_MISSING', `the native transfer engine at ${file} is stale (ABI ${abi}, expected ${EXPECTED_NATIVE_ABI}). ${FIX}`)
  }
  cached = binding
  return binding
}
