import {readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {MooncakeError} from '../errors.js'
import {expandHome, type RawValue} from './parse.js'
import {CONFIG_FILE_KEYS} from './settings.js'

/** The values of the selected profile, with where each came from (for error messages). */
export interface ConfigProfile {
  /** Absolute path of the config file, or of where it would be. */
  path: string
  /** Whether a file was read. */
  loaded: boolean
  /** The profile selected (`default` unless --profile / MOONCAKE_PROFILE says otherwise). */
  profile: string
  /** Values by config key: top-level keys overlaid by `profiles.<profile>`. */
  values: Record<string, RawValue>
  /** Source label per key, e.g. `/home/u/.config/mooncake/config.yaml: profiles.prod.leaseTtl`. */
  sources: Record<string, string>
}

export interface ConfigFileOptions {
  /** An explicit path (--config or MOONCAKE_CONFIG): it must exist. */
  explicitPath?: string
  /** Where the explicit path came from, for messages. @default '--config' */
  explicitSource?: string
  /** Profile name; when given explicitly it must exist in the file. @default 'default' */
  profile?: string
  profileExplicit?: boolean
  env?: Record<string, string | undefined>
  /** @default os.homedir() */
  homeDir?: string
  /** Keys a profile may hold. @default CONFIG_FILE_KEYS */
  knownKeys?: ReadonlySet<string>
}

/** `$XDG_CONFIG_HOME/mooncake/config.yaml`, else `~/.config/mooncake/config.yaml`. */
export function defaultConfigPath(env: Record<string, string | undefined> = process.env, homeDir = os.homedir()): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(homeDir, '.config')
  return path.join(base, 'mooncake', 'config.yaml')
}

function isMapping(value: unknown): value is Record<string, RawValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

async function parseDocument(text: string, file: string): Promise<unknown> {
  // YAML is a superset of JSON, but JSON.parse gives the better message for a JSON file.
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text)
    } catch (err) {
      throw new MooncakeError('USAGE', `${file}: bad JSON: ${(err as Error).message}`)
    }
  }
  const {parse} = await import('yaml')
  try {
    return parse(text, {prettyErrors: false}) ?? {}
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]
    throw new MooncakeError('USAGE', `${file}: bad YAML: ${reason}`)
  }
}

function suggest(key: string, known: ReadonlySet<string>): string {
  const lower = key.toLowerCase().replaceAll(/[-_]/g, '')
  const hit = [...known].find((k) => k.toLowerCase() === lower)
  return hit ? ` (did you mean ${hit}?)` : ''
}

function checkKeys(values: Record<string, RawValue>, where: string, known: ReadonlySet<string>): void {
  for (const key of Object.keys(values)) {
    if (key === 'token' || key === 'tokenFile') {
      throw new MooncakeError(
        'USAGE',
        `${where}${key}: the cluster token is never read from the config file; set MOONCAKE_TOKEN_FILE (or MOONCAKE_TOKEN)`,
      )
    }
    if (!known.has(key)) throw new MooncakeError('USAGE', `${where}${key}: unknown setting${suggest(key, known)}`)
  }
}

/**
 * Reads the config file and selects a profile. Top-level keys apply to every profile;
 * `profiles.<name>` overrides them. A missing file is fine unless its path was given explicitly.
 */
export async function loadConfigProfile(options: ConfigFileOptions = {}): Promise<ConfigProfile> {
  const env = options.env ?? process.env
  const homeDir = options.homeDir ?? os.homedir()
  const profile = options.profile ?? 'default'
  const file = path.resolve(options.explicitPath ? expandHome(options.explicitPath, homeDir) : defaultConfigPath(env, homeDir))
  const known = options.knownKeys ?? CONFIG_FILE_KEYS
  const result: ConfigProfile = {path: file, loaded: false, profile, values: {}, sources: {}}

  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (!options.explicitPath && code === 'ENOENT') {
      if (options.profileExplicit && profile !== 'default') {
        throw new MooncakeError('USAGE', `profile "${profile}" not found: there is no config file at ${file}`)
      }
      return result
    }
    const source = options.explicitPath ? `${options.explicitSource ?? '--config'} ${file}` : file
    const reason = code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new MooncakeError('USAGE', `config file ${source}: ${reason}`)
  }

  const doc = await parseDocument(text, file)
  if (!isMapping(doc)) throw new MooncakeError('USAGE', `${file}: expected a mapping of settings at the top level`)
  result.loaded = true

  const {profiles, ...topLevel} = doc
  checkKeys(topLevel, `${file}: `, known)
  for (const [key, value] of Object.entries(topLevel)) {
    result.values[key] = value
    result.sources[key] = `${file}: ${key}`
  }

  if (profiles !== undefined && profiles !== null && !isMapping(profiles)) {
    throw new MooncakeError('USAGE', `${file}: profiles must be a mapping of profile names to settings`)
  }
  const selected = profiles?.[profile]
  if (selected === undefined || selected === null) {
    if (options.profileExplicit && profile !== 'default') {
      const names = Object.keys(profiles ?? {})
      const hint = names.length > 0 ? `; profiles there: ${names.join(', ')}` : ''
      throw new MooncakeError('USAGE', `profile "${profile}" not found in ${file}${hint}`)
    }
    return result
  }
  if (!isMapping(selected)) throw new MooncakeError('USAGE', `${file}: profiles.${profile} must be a mapping of settings`)
  checkKeys(selected, `${file}: profiles.${profile}.`, known)
  for (const [key, value] of Object.entries(selected)) {
    result.values[key] = value
    result.sources[key] = `${file}: profiles.${profile}.${key}`
  }
  return result
}
