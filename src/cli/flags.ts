import {Flags, type Interfaces} from '@oclif/core'

import {envName, GLOBAL_SETTINGS, type SettingKind, type SettingSpec} from '../lib/config/settings.js'
import {MooncakeError} from '../lib/errors.js'
import {parseDuration} from '../lib/units.js'

const HELP_VALUE: Record<SettingKind, string | undefined> = {
  string: 'VALUE',
  path: 'PATH',
  address: 'HOST:PORT',
  endpoints: 'ENDPOINTS',
  duration: 'DURATION',
  size: 'SIZE',
  port: 'PORT',
  ratio: 'RATIO',
  boolean: undefined,
  choice: undefined,
}

/**
 * An oclif flag for a setting row. Values stay raw strings here: src/lib/config.ts parses them,
 * so a bad value is reported the same way whether it came from the flag, the environment or
 * the config file. `env` and `default` are given to oclif for --help only (the resolver reads
 * only flags that were typed, then the environment and the file itself).
 */
export function settingFlag(spec: SettingSpec, extra: {char?: 'm'; helpGroup?: string} = {}) {
  return Flags.string({
    summary: spec.summary,
    env: envName(spec.flag),
    helpGroup: extra.helpGroup,
    char: extra.char,
    default: spec.default === undefined ? undefined : String(spec.default),
    helpValue: spec.helpValue ?? HELP_VALUE[spec.kind] ?? spec.options?.join('|'),
  })
}

/** A boolean setting; one that defaults to true also gets --no-<flag>. */
export function booleanSettingFlag(spec: SettingSpec, extra: {helpGroup?: string} = {}) {
  return Flags.boolean({
    // oclif shows no default for booleans (and the manifest drops it), so say it.
    summary: spec.default === true ? `${spec.summary} [default: true]` : spec.summary,
    env: envName(spec.flag),
    helpGroup: extra.helpGroup,
    allowNo: spec.default === true,
    default: spec.default === true ? true : undefined,
  })
}

/** Flags for a whole table of settings, keyed by flag name (values are read through the resolver). */
export function settingFlags(
  table: Record<string, SettingSpec>,
  helpGroup?: string,
): Interfaces.FlagInput<Record<string, string | boolean | undefined>> {
  return Object.fromEntries(
    Object.values(table).map((spec) => [
      spec.flag,
      spec.kind === 'boolean' ? booleanSettingFlag(spec, {helpGroup}) : settingFlag(spec, {helpGroup}),
    ]),
  ) as Interfaces.FlagInput<Record<string, string | boolean | undefined>>
}

/** Flags of every command (SPEC "Global flags and environment"); --json comes from enableJsonFlag. */
export const GLOBAL_FLAGS = {
  // Replaces oclif's own --json flag (same behaviour) to say what scripts get.
  json: Flags.boolean({
    summary: 'machine output: one JSON document on stdout, errors as {"error":{"code","message"}}',
    helpGroup: 'GLOBAL',
  }),
  master: settingFlag(GLOBAL_SETTINGS.master, {char: 'm', helpGroup: 'GLOBAL'}),
  etcd: settingFlag(GLOBAL_SETTINGS.etcd, {helpGroup: 'GLOBAL'}),
  'cluster-id': settingFlag(GLOBAL_SETTINGS.clusterId, {helpGroup: 'GLOBAL'}),
  profile: settingFlag(GLOBAL_SETTINGS.profile, {helpGroup: 'GLOBAL'}),
  config: settingFlag(GLOBAL_SETTINGS.config, {helpGroup: 'GLOBAL'}),
  timeout: settingFlag(GLOBAL_SETTINGS.timeout, {helpGroup: 'GLOBAL'}),
  'log-level': settingFlag(GLOBAL_SETTINGS.logLevel, {helpGroup: 'GLOBAL'}),
  'tls-cert': settingFlag(GLOBAL_SETTINGS.tlsCert, {helpGroup: 'GLOBAL'}),
  'tls-key': settingFlag(GLOBAL_SETTINGS.tlsKey, {helpGroup: 'GLOBAL'}),
  'tls-ca': settingFlag(GLOBAL_SETTINGS.tlsCa, {helpGroup: 'GLOBAL'}),
  'etcd-ca': settingFlag(GLOBAL_SETTINGS.etcdCa, {helpGroup: 'GLOBAL'}),
  'etcd-cert': settingFlag(GLOBAL_SETTINGS.etcdCert, {helpGroup: 'GLOBAL'}),
  'etcd-key': settingFlag(GLOBAL_SETTINGS.etcdKey, {helpGroup: 'GLOBAL'}),
  'etcd-user': settingFlag(GLOBAL_SETTINGS.etcdUser, {helpGroup: 'GLOBAL'}),
  quiet: Flags.boolean({char: 'q', summary: 'no progress bars, no notices', helpGroup: 'GLOBAL'}),
}

/**
 * Milliseconds of a command's own DURATION flag (not a setting row, which the config resolver
 * parses). A bad value is INVALID_PARAMS (exit 2) naming the flag, so the user knows which of
 * several durations to fix; commands call this before contacting anything.
 */
export function parseDurationFlag(flag: string, value: string): number {
  try {
    return parseDuration(value)
  } catch (err) {
    throw new MooncakeError('INVALID_PARAMS', `--${flag}: ${err instanceof Error ? err.message : String(err)}`, {cause: err})
  }
}

/** For commands that read the master's HTTP port (top, doctor); resolved by httpAddressFor. */
export const MASTER_HTTP_FLAGS = {
  http: Flags.string({
    summary: "the master's HTTP (metrics) address HOST:PORT [default: the --master host, port 9003]",
    env: 'MOONCAKE_HTTP',
    helpValue: 'HOST:PORT',
  }),
}

/** For commands that move object bytes (put, get, ...). */
export const DATA_FLAGS = {
  transport: Flags.option({
    options: ['auto', 'tcp'] as const,
    default: 'auto' as const,
    env: 'MOONCAKE_TRANSPORT',
    summary: 'auto: shared memory on the same host, TCP otherwise; tcp: always TCP',
  })(),
}

/** For the P2P commands that run a peer (p2p register, p2p get); read by BaseCommand.openP2PStore. */
export const P2P_PEER_FLAGS = {
  peer: Flags.string({summary: 'peer name, unique among live peers [default: HOSTNAME-PID]', env: 'MOONCAKE_PEER'}),
  host: Flags.string({summary: 'address the data server binds', default: '127.0.0.1', env: 'MOONCAKE_HOST', helpValue: 'HOST'}),
  port: Flags.integer({summary: 'data server port; 0 picks a free one', default: 0, env: 'MOONCAKE_PORT', min: 0, max: 65535}),
  'lease-ttl': Flags.string({summary: 'etcd lease TTL: a crashed peer disappears after this long', default: '10s', env: 'MOONCAKE_LEASE_TTL', helpValue: 'DURATION'}),
  insecure: Flags.boolean({summary: 'allow a non-loopback --host without a cluster token'}),
}
