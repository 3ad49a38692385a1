/**
 * Resolution of every setting: flag > environment (MOONCAKE_*) > config-file profile > default.
 * Pure library code (no oclif): the CLI hands over the flags the user typed and process.env;
 * tests hand over fakes. Every value goes through the size/duration grammar where it applies,
 * and a bad value names its source.
 */
import os from 'node:os'

import {loadConfigProfile, type ConfigProfile} from './config/file.js'
import {readPemFile} from './config/pem.js'
import {parseSetting, type KindValue, type RawValue} from './config/parse.js'
import {
  envName,
  GLOBAL_SETTINGS,
  MASTER_SETTINGS,
  type LogLevel,
  type SettingSpec,
  type SettingTable,
} from './config/settings.js'
import {resolveToken} from './config/token.js'
import {MooncakeError} from './errors.js'
import {DEFAULT_MASTER_SERVER_OPTIONS, type MasterServerOptions, type MasterTls} from './master/options.js'

export {defaultConfigPath, loadConfigProfile, type ConfigProfile} from './config/file.js'
export {expandHome, splitHostPort} from './config/parse.js'
export * from './config/settings.js'
export {resolveToken, TOKEN_ENV, TOKEN_FILE_ENV} from './config/token.js'

export interface ConfigInput {
  /**
   * Flags the user typed, by flag name (`lease-ttl`). Only typed ones: a value oclif filled in
   * from a default or the environment would hide the config file.
   */
  flags?: Readonly<Record<string, string | number | boolean | undefined>>
  /** @default process.env */
  env?: Readonly<Record<string, string | undefined>>
  /** Home directory for `~`. @default os.homedir() */
  homeDir?: string
}

export type Origin = 'flag' | 'env' | 'file' | 'default'

type SpecValue<S extends SettingSpec> = S extends {default: string | number | boolean}
  ? KindValue<S['kind']>
  : KindValue<S['kind']> | undefined

export type ResolvedValues<T extends SettingTable> = {-readonly [K in keyof T]: SpecValue<T[K]>}

export interface Resolved<T extends SettingTable> {
  values: ResolvedValues<T>
  /** Where each value came from (for `doctor` and debugging). */
  origins: Record<keyof T, Origin>
}

/** Resolves every setting of `table`. `defaults` replaces table defaults (e.g. log level for servers). */
export function resolveSettings<T extends SettingTable>(
  table: T,
  input: ConfigInput,
  file?: ConfigProfile,
  defaults: Partial<Record<keyof T, RawValue>> = {},
): Resolved<T> {
  const env = input.env ?? process.env
  const values: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  for (const [name, spec] of Object.entries(table)) {
    const flag = input.flags?.[spec.flag]
    const fromEnv = env[envName(spec.flag)]
    const fromFile = spec.inFile === false ? undefined : file?.values[spec.key]
    const fallback = name in defaults ? defaults[name as keyof T] : spec.default
    let raw: RawValue | undefined
    let source: string
    if (flag !== undefined) {
      ;[raw, source, origins[name]] = [flag, `--${spec.flag}`, 'flag']
    } else if (fromEnv !== undefined && fromEnv !== '') {
      // An empty variable counts as unset, so `MOONCAKE_MASTER= mooncake ...` falls through.
      ;[raw, source, origins[name]] = [fromEnv, envName(spec.flag), 'env']
    } else if (fromFile !== undefined && fromFile !== null) {
      ;[raw, source, origins[name]] = [fromFile, file?.sources[spec.key] ?? spec.key, 'file']
    } else {
      ;[raw, source, origins[name]] = [fallback, `default of --${spec.flag}`, 'default']
    }
    values[name] = raw === undefined || raw === null ? undefined : parseSetting(spec, raw, source, input.homeDir)
  }
  return {values: values as ResolvedValues<T>, origins: origins as Record<keyof T, Origin>}
}

/** What every command knows after resolution. */
export interface GlobalConfig {
  /** HOST:PORT of the master. @default '127.0.0.1:50051' */
  master: string
  /** etcd endpoints; when set, the leader master is found through etcd. @default undefined */
  etcd?: string[]
  /** @default 'mooncake_cluster' */
  clusterId: string
  /** @default 'default' */
  profile: string
  /** Config file path (whether or not it exists). */
  configPath: string
  configLoaded: boolean
  /** Deadline of the whole command; 0 = none. @default 30_000 */
  timeoutMs: number
  /** @default 'info' for servers, 'warn' otherwise ('warn' for servers too with --quiet) */
  logLevel: LogLevel
  /** TLS of the master's ports (server: certificate + key; client: CA, and certificate + key for mTLS). Paths. */
  tlsCert?: string
  tlsKey?: string
  tlsCa?: string
  /** TLS and authentication towards etcd (src/lib/etcd-options.ts). Paths, user name. */
  etcdCa?: string
  etcdCert?: string
  etcdKey?: string
  etcdUser?: string
  /** From MOONCAKE_ETCD_PASSWORD only (never a flag or a config key). */
  etcdPassword?: string
}

/** The etcd password: an environment variable only, so it shows neither in `ps` nor in a config file. */
export const ETCD_PASSWORD_ENV = 'MOONCAKE_ETCD_PASSWORD'

export interface ResolveOptions {
  /** Servers log at info by default, clients at warn. @default false */
  server?: boolean
  /** --quiet lowers a server's default log level to warn. @default false */
  quiet?: boolean
}

export interface ResolvedConfig {
  global: GlobalConfig
  origins: Record<keyof typeof GLOBAL_SETTINGS, Origin>
  /** The selected profile, to resolve command-specific settings (resolveSettings(table, input, file)). */
  file: ConfigProfile
}

/** Resolves the global settings, reading the config file that --config / MOONCAKE_CONFIG names. */
export async function resolveConfig(input: ConfigInput, options: ResolveOptions = {}): Promise<ResolvedConfig> {
  const selectors = resolveSettings({config: GLOBAL_SETTINGS.config, profile: GLOBAL_SETTINGS.profile}, input)
  const file = await loadConfigProfile({
    explicitPath: selectors.origins.config === 'default' ? undefined : selectors.values.config,
    explicitSource: selectors.origins.config === 'flag' ? '--config' : envName('config'),
    profile: selectors.values.profile,
    profileExplicit: selectors.origins.profile !== 'default',
    env: input.env,
    homeDir: input.homeDir ?? os.homedir(),
  })
  const logLevel = options.server && !options.quiet ? 'info' : 'warn'
  const {values, origins} = resolveSettings(GLOBAL_SETTINGS, input, file, {logLevel})
  return {
    global: {
      master: values.master,
      etcd: values.etcd,
      clusterId: values.clusterId,
      profile: values.profile,
      configPath: file.path,
      configLoaded: file.loaded,
      timeoutMs: values.timeout,
      logLevel: values.logLevel as LogLevel,
      tlsCert: values.tlsCert,
      tlsKey: values.tlsKey,
      tlsCa: values.tlsCa,
      etcdCa: values.etcdCa,
      etcdCert: values.etcdCert,
      etcdKey: values.etcdKey,
      etcdUser: values.etcdUser,
      etcdPassword: input.env?.[ETCD_PASSWORD_ENV] || undefined,
    },
    origins,
    file,
  }
}

/** The master's options from its flags, environment, profile and defaults, token included. */
export function resolveMasterOptions(input: ConfigInput, resolved: ResolvedConfig): MasterServerOptions {
  const {values: v} = resolveSettings(MASTER_SETTINGS, input, resolved.file)
  return {
    ...DEFAULT_MASTER_SERVER_OPTIONS,
    host: v.host,
    port: v.port,
    metricsPort: v.metricsPort,
    leaseTtlMs: v.leaseTtl,
    softPinTtlMs: v.softPinTtl,
    maxSoftPinTtlMs: v.maxSoftPinTtl,
    allowEvictSoftPinnedObjects: v.allowEvictSoftPinnedObjects,
    evictionRatio: v.evictionRatio,
    evictionHighWatermarkRatio: v.evictionHighWatermarkRatio,
    clientTtlMs: v.clientTtl,
    putStartDiscardTimeoutMs: v.putStartDiscardTimeout,
    putStartReleaseTimeoutMs: v.putStartReleaseTimeout,
    rootFsDir: v.rootFsDir,
    diskQuota: v.diskQuota,
    clusterId: resolved.global.clusterId,
    etcd: resolved.global.etcd,
    haLeaseTtlMs: v.haLeaseTtl,
    advertise: v.advertise,
    dataDir: v.dataDir,
    insecure: v.insecure,
    token: resolveToken(input.env ?? process.env, input.homeDir),
    tls: masterTls(resolved.global),
  }
}

/** The master's TLS material from --tls-cert/--tls-key (and --tls-ca: client certificates required); none without a certificate. */
export function masterTls(g: Pick<GlobalConfig, 'tlsCert' | 'tlsKey' | 'tlsCa'>): MasterTls | undefined {
  if (g.tlsCert === undefined && g.tlsKey === undefined) return undefined
  if (g.tlsCert === undefined || g.tlsKey === undefined) throw new MooncakeError('USAGE', '--tls-cert and --tls-key go together (MOONCAKE_TLS_CERT / MOONCAKE_TLS_KEY)')
  const tls: MasterTls = {cert: readPemFile(g.tlsCert, '--tls-cert'), key: readPemFile(g.tlsKey, '--tls-key')}
  if (g.tlsCa !== undefined) tls.ca = readPemFile(g.tlsCa, '--tls-ca')
  return tls
}

/**
 * A client's TLS towards the master: on when --tls-ca is set (verify the master with it) or when a
 * client certificate is (mTLS; the system's roots verify the master); off otherwise.
 */
export function clientTls(g: Pick<GlobalConfig, 'tlsCert' | 'tlsKey' | 'tlsCa'>): {ca?: Buffer; cert?: Buffer; key?: Buffer} | undefined {
  if (g.tlsCa === undefined && g.tlsCert === undefined && g.tlsKey === undefined) return undefined
  if ((g.tlsCert === undefined) !== (g.tlsKey === undefined)) throw new MooncakeError('USAGE', '--tls-cert and --tls-key go together (MOONCAKE_TLS_CERT / MOONCAKE_TLS_KEY)')
  return {
    ca: g.tlsCa === undefined ? undefined : readPemFile(g.tlsCa, '--tls-ca'),
    cert: g.tlsCert === undefined ? undefined : readPemFile(g.tlsCert, '--tls-cert'),
    key: g.tlsKey === undefined ? undefined : readPemFile(g.tlsKey, '--tls-key'),
  }
}
