/**
 * The settings of the CLI contract and of SPEC's configuration table, as data: the CLI builds
 * its flags from these rows, the resolver reads environment and config file by them, and
 * docs/configuration.md lists them. One row per setting keeps the four in agreement.
 */

/** How a raw value (flag, environment string, config-file scalar) is parsed. */
export type SettingKind =
  /** Free text. */
  | 'string'
  /** A file system path; `~/` is expanded. */
  | 'path'
  /** HOST:PORT; a bare HOST gets the setting's default port. */
  | 'address'
  /** Comma-separated endpoints (a YAML/JSON list in the config file). */
  | 'endpoints'
  /** The duration grammar (`500ms`, `10s`, `30m`, `1h`; bare number = ms); resolves to milliseconds. */
  | 'duration'
  /** The size grammar (`64MiB`, `4 GB`; bare number = bytes); resolves to bytes. */
  | 'size'
  /** 0-65535; 0 picks a free port. */
  | 'port'
  /** A number from 0 to 1. */
  | 'ratio'
  | 'boolean'
  /** One of `options`. */
  | 'choice'

export interface SettingSpec {
  /** Config-file key (camelCase). */
  readonly key: string
  /** Flag name without the dashes; the environment variable is derived from it (envName). */
  readonly flag: string
  readonly kind: SettingKind
  /** Default as a user writes it (help and docs show it); undefined = unset. */
  readonly default?: string | number | boolean
  /** One line for help and docs. */
  readonly summary: string
  /** Allowed values of a 'choice'. */
  readonly options?: readonly string[]
  /** Value placeholder in help, e.g. HOST; by kind when absent. */
  readonly helpValue?: string
  /** False for settings that only make sense per invocation (never read from the config file). */
  readonly inFile?: boolean
}

/** `--lease-ttl` -> `MOONCAKE_LEASE_TTL`: every flag has one (SPEC "Configuration"). */
export function envName(flag: string): string {
  return `MOONCAKE_${flag.toUpperCase().replaceAll('-', '_')}`
}

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export const DEFAULT_MASTER_ADDRESS = '127.0.0.1:50051'

/** Global settings of every command (SPEC "Global flags and environment"). */
export const GLOBAL_SETTINGS = {
  master: {
    key: 'master',
    flag: 'master',
    kind: 'address',
    default: DEFAULT_MASTER_ADDRESS,
    summary: 'master address HOST:PORT (ignored when --etcd is set)',
  },
  etcd: {
    key: 'etcd',
    flag: 'etcd',
    kind: 'endpoints',
    summary: 'comma-separated etcd endpoints; the leader master is found through etcd',
  },
  clusterId: {
    key: 'clusterId',
    flag: 'cluster-id',
    kind: 'string',
    helpValue: 'ID',
    default: 'mooncake_cluster',
    summary: 'namespace of etcd keys and disk directories',
  },
  profile: {
    key: 'profile',
    flag: 'profile',
    kind: 'string',
    helpValue: 'NAME',
    default: 'default',
    summary: 'profile of the config file',
    inFile: false,
  },
  config: {
    key: 'config',
    flag: 'config',
    kind: 'path',
    helpValue: 'FILE',
    default: '~/.config/mooncake/config.yaml',
    summary: 'config file (YAML or JSON)',
    inFile: false,
  },
  timeout: {
    key: 'timeout',
    flag: 'timeout',
    kind: 'duration',
    default: '30s',
    summary: 'deadline of the whole command (0 = none)',
  },
  logLevel: {
    key: 'logLevel',
    flag: 'log-level',
    kind: 'choice',
    options: LOG_LEVELS,
    summary: 'log level on stderr [default: info for servers, warn otherwise]',
  },
  tlsCert: {
    key: 'tlsCert',
    flag: 'tls-cert',
    kind: 'path',
    helpValue: 'FILE',
    summary: "TLS certificate (PEM): the master serves gRPC and HTTP over TLS with it; clients present it when the master has --tls-ca",
  },
  tlsKey: {key: 'tlsKey', flag: 'tls-key', kind: 'path', helpValue: 'FILE', summary: 'private key (PEM) of --tls-cert'},
  tlsCa: {
    key: 'tlsCa',
    flag: 'tls-ca',
    kind: 'path',
    helpValue: 'FILE',
    summary: "CA certificate(s) (PEM): clients verify the master with it (and use TLS); a master given it requires client certificates",
  },
  etcdCa: {key: 'etcdCa', flag: 'etcd-ca', kind: 'path', helpValue: 'FILE', summary: 'CA certificate(s) (PEM) to verify etcd over TLS (https:// endpoints)'},
  etcdCert: {key: 'etcdCert', flag: 'etcd-cert', kind: 'path', helpValue: 'FILE', summary: 'client certificate (PEM) for etcd'},
  etcdKey: {key: 'etcdKey', flag: 'etcd-key', kind: 'path', helpValue: 'FILE', summary: 'private key (PEM) of --etcd-cert'},
  etcdUser: {
    key: 'etcdUser',
    flag: 'etcd-user',
    kind: 'string',
    helpValue: 'NAME',
    summary: 'etcd user name; the password comes from MOONCAKE_ETCD_PASSWORD',
  },
} as const satisfies Record<string, SettingSpec>

/** The master's settings: SPEC's configuration table, one row each (plus the global clusterId and etcd). */
export const MASTER_SETTINGS = {
  host: {key: 'host', flag: 'host', kind: 'string', helpValue: 'HOST', default: '127.0.0.1', summary: 'gRPC bind address'},
  port: {key: 'port', flag: 'port', kind: 'port', default: 50051, summary: 'gRPC port (0 picks a free one)'},
  metricsPort: {
    key: 'metricsPort',
    flag: 'metrics-port',
    kind: 'port',
    default: 9003,
    summary: 'HTTP port of /metrics and /health (0 picks a free one)',
  },
  leaseTtl: {key: 'leaseTtl', flag: 'lease-ttl', kind: 'duration', default: '10s', summary: 'read lease TTL'},
  softPinTtl: {
    key: 'softPinTtl',
    flag: 'soft-pin-ttl',
    kind: 'duration',
    default: '30m',
    summary: 'soft-pin lifetime of an object from the moment it is readable',
  },
  maxSoftPinTtl: {
    key: 'maxSoftPinTtl',
    flag: 'max-soft-pin-ttl',
    kind: 'duration',
    default: '24h',
    summary: 'upper bound of --soft-pin-ttl',
  },
  allowEvictSoftPinnedObjects: {
    key: 'allowEvictSoftPinnedObjects',
    flag: 'allow-evict-soft-pinned',
    kind: 'boolean',
    default: true,
    summary: 'let eviction take soft-pinned objects when still needed',
  },
  evictionRatio: {
    key: 'evictionRatio',
    flag: 'eviction-ratio',
    kind: 'ratio',
    default: 0.05,
    summary: 'fraction of evictable objects evicted per round',
  },
  evictionHighWatermarkRatio: {
    key: 'evictionHighWatermarkRatio',
    flag: 'eviction-high-watermark',
    kind: 'ratio',
    default: 0.95,
    summary: 'used/capacity above which eviction runs',
  },
  clientTtl: {
    key: 'clientTtl',
    flag: 'client-ttl',
    kind: 'duration',
    default: '10s',
    summary: 'a segment owner silent this long is dead',
  },
  putStartDiscardTimeout: {
    key: 'putStartDiscardTimeout',
    flag: 'put-start-discard-timeout',
    kind: 'duration',
    default: '30s',
    summary: 'an unfinished put keeps its key busy this long',
  },
  putStartReleaseTimeout: {
    key: 'putStartReleaseTimeout',
    flag: 'put-start-release-timeout',
    kind: 'duration',
    default: '10m',
    summary: 'the space of an unfinished put is freed after this long',
  },
  rootFsDir: {
    key: 'rootFsDir',
    flag: 'root-fs-dir',
    kind: 'path',
    helpValue: 'DIR',
    summary: 'disk tier: every object also gets a disk replica under DIR/<cluster-id>',
  },
  diskQuota: {
    key: 'diskQuota',
    flag: 'disk-quota',
    kind: 'size',
    summary: 'disk tier: bytes its files may take; the oldest files are evicted beyond it [default: no quota]',
  },
  haLeaseTtl: {
    key: 'haLeaseTtl',
    flag: 'ha-lease-ttl',
    kind: 'duration',
    default: '5s',
    summary: 'etcd lease TTL of the leader key (with --etcd)',
  },
  advertise: {
    key: 'advertise',
    flag: 'advertise',
    kind: 'address',
    summary: 'address published for clients when leader [default: HOST:PORT]',
  },
  dataDir: {
    key: 'dataDir',
    flag: 'data-dir',
    kind: 'path',
    helpValue: 'DIR',
    summary: 'directory of the metadata journal (a restart loses nothing)',
  },
  insecure: {
    key: 'insecure',
    flag: 'insecure',
    kind: 'boolean',
    default: false,
    summary: 'allow binding a non-loopback address without a token',
  },
} as const satisfies Record<string, SettingSpec>

export type SettingTable = Readonly<Record<string, SettingSpec>>

/** Every key a config file may hold, whatever the command; anything else is a typo. */
export const CONFIG_FILE_KEYS: ReadonlySet<string> = new Set(
  [...Object.values(GLOBAL_SETTINGS), ...Object.values(MASTER_SETTINGS)]
    .filter((spec: SettingSpec) => spec.inFile !== false)
    .map((spec) => spec.key),
)
