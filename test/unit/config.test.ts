import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {
  clientTls,
  defaultConfigPath,
  envName,
  loadConfigProfile,
  MASTER_SETTINGS,
  masterTls,
  resolveConfig,
  resolveMasterOptions,
  resolveSettings,
  resolveToken,
  type ConfigInput,
  type SettingSpec,
} from '../../src/lib/config.js'
import {MooncakeError} from '../../src/lib/errors.js'
import {etcdOptionsFromSettings} from '../../src/lib/etcd-options.js'

const home = mkdtempSync(path.join(os.tmpdir(), 'mooncake-config-'))
test.after(() => rmSync(home, {recursive: true, force: true}))

function write(name: string, text: string, mode = 0o600): string {
  const file = path.join(home, name)
  mkdirSync(path.dirname(file), {recursive: true})
  writeFileSync(file, text)
  chmodSync(file, mode)
  return file
}

/** Runs `fn` and returns the MooncakeError it throws (fails the test otherwise). */
async function usageError(fn: () => unknown): Promise<MooncakeError> {
  try {
    await fn()
  } catch (err) {
    assert.instance(err, MooncakeError)
    assert.is((err as MooncakeError).code, 'USAGE')
    return err as MooncakeError
  }
  assert.unreachable('expected a USAGE error')
  throw new Error('unreachable')
}

const PROFILES_YAML = `
timeout: 10s
leaseTtl: 2s
profiles:
  default:
    master: 10.0.0.1:50051
  prod:
    master: prod.example:50051
    clusterId: prod
    timeout: 1m
    evictionHighWatermarkRatio: 0.9
    etcd: [10.0.0.5:2379, 10.0.0.6:2379]
`

function input(overrides: Partial<ConfigInput> & {flags?: ConfigInput['flags']} = {}): ConfigInput {
  return {homeDir: home, env: {}, ...overrides}
}

test('defaults apply when nothing is set', async () => {
  const {global, origins} = await resolveConfig(input())
  assert.is(global.master, '127.0.0.1:50051')
  assert.is(global.etcd, undefined)
  assert.is(global.clusterId, 'mooncake_cluster')
  assert.is(global.profile, 'default')
  assert.is(global.timeoutMs, 30_000)
  assert.is(global.logLevel, 'warn')
  assert.is(origins.master, 'default')
  assert.is(global.configLoaded, false)
  assert.is(global.configPath, path.join(home, '.config/mooncake/config.yaml'))
})

test('servers log at info by default, warn with --quiet', async () => {
  assert.is((await resolveConfig(input(), {server: true})).global.logLevel, 'info')
  assert.is((await resolveConfig(input(), {server: true, quiet: true})).global.logLevel, 'warn')
  const explicit = await resolveConfig(input({env: {MOONCAKE_LOG_LEVEL: 'DEBUG'}}), {server: true, quiet: true})
  assert.is(explicit.global.logLevel, 'debug')
})

test('precedence: flag > env > profile > default, setting by setting', async () => {
  const file = write('prec.yaml', PROFILES_YAML)
  const env = {MOONCAKE_CONFIG: file, MOONCAKE_PROFILE: 'prod', MOONCAKE_CLUSTER_ID: 'from-env', MOONCAKE_TIMEOUT: '5s'}
  const {global, origins} = await resolveConfig(input({env, flags: {timeout: '250ms'}}))
  assert.is(global.timeoutMs, 250) // flag over env over profile
  assert.is(origins.timeout, 'flag')
  assert.is(global.clusterId, 'from-env') // env over profile
  assert.is(origins.clusterId, 'env')
  assert.is(global.master, 'prod.example:50051') // profile over default
  assert.is(origins.master, 'file')
  assert.equal(global.etcd, ['10.0.0.5:2379', '10.0.0.6:2379'])
  assert.is(global.logLevel, 'warn') // default
  assert.is(origins.logLevel, 'default')

  const noFlag = await resolveConfig(input({env}))
  assert.is(noFlag.global.timeoutMs, 5000)
  const onlyFile = await resolveConfig(input({env: {MOONCAKE_CONFIG: file, MOONCAKE_PROFILE: 'prod'}}))
  assert.is(onlyFile.global.timeoutMs, 60_000) // profile over top level
})

test('top-level keys apply to every profile; the default profile is used without --profile', async () => {
  const file = write('top.yaml', PROFILES_YAML)
  const {global} = await resolveConfig(input({flags: {config: file}}))
  assert.is(global.master, '10.0.0.1:50051')
  assert.is(global.timeoutMs, 10_000)
  assert.is(global.configLoaded, true)
  const prod = await resolveConfig(input({flags: {config: file, profile: 'prod'}}))
  const master = resolveMasterOptions(input({flags: {config: file, profile: 'prod'}}), prod)
  assert.is(master.leaseTtlMs, 2000) // top level, not overridden by prod
  assert.is(master.evictionHighWatermarkRatio, 0.9)
  assert.is(master.clusterId, 'prod')
})

test('a file of top-level keys only is the default profile', async () => {
  const file = write('flat.yaml', 'master: flat:50051\n')
  assert.is((await resolveConfig(input({flags: {config: file}}))).global.master, 'flat:50051')
})

test('JSON config files are read too', async () => {
  const file = write('conf.json', JSON.stringify({profiles: {ci: {master: 'ci:1234', timeout: 1500}}}))
  const {global} = await resolveConfig(input({flags: {config: file, profile: 'ci'}}))
  assert.is(global.master, 'ci:1234')
  assert.is(global.timeoutMs, 1500) // a bare number is milliseconds
  const broken = write('broken.json', '{"master": ')
  const err = await usageError(() => resolveConfig(input({flags: {config: broken}})))
  assert.match(err.message, broken)
  assert.match(err.message, 'bad JSON')
})

test('the default path honours XDG_CONFIG_HOME and is optional', async () => {
  assert.is(defaultConfigPath({XDG_CONFIG_HOME: '/xdg'}, home), '/xdg/mooncake/config.yaml')
  assert.is(defaultConfigPath({}, '/home/u'), '/home/u/.config/mooncake/config.yaml')
  const xdg = path.join(home, 'xdg')
  write('xdg/mooncake/config.yaml', 'master: xdg:50051\n')
  const {global} = await resolveConfig(input({env: {XDG_CONFIG_HOME: xdg}}))
  assert.is(global.master, 'xdg:50051')
})

test('an explicit config file or profile that does not exist is an error', async () => {
  const missing = path.join(home, 'nope.yaml')
  let err = await usageError(() => resolveConfig(input({flags: {config: missing}})))
  assert.match(err.message, '--config')
  assert.match(err.message, missing)
  err = await usageError(() => resolveConfig(input({env: {MOONCAKE_CONFIG: missing}})))
  assert.match(err.message, 'MOONCAKE_CONFIG')
  const file = write('profiles.yaml', PROFILES_YAML)
  err = await usageError(() => resolveConfig(input({flags: {config: file, profile: 'staging'}})))
  assert.match(err.message, 'profile "staging" not found')
  assert.match(err.message, 'prod')
})

test('~ in --config is the home directory', async () => {
  write('tilde.yaml', 'master: tilde:50051\n')
  const {global} = await resolveConfig(input({flags: {config: '~/tilde.yaml'}}))
  assert.is(global.master, 'tilde:50051')
})

test('bad values name their source: flag, env var, or file and key', async () => {
  let err = await usageError(() => resolveConfig(input({flags: {timeout: '5x'}})))
  assert.match(err.message, /^--timeout: bad duration "5x"/)
  err = await usageError(() => resolveConfig(input({env: {MOONCAKE_TIMEOUT: 'soon'}})))
  assert.match(err.message, /^MOONCAKE_TIMEOUT: bad duration "soon"/)
  const file = write('bad.yaml', 'profiles:\n  prod:\n    leaseTtl: forever\n')
  const prod = await resolveConfig(input({flags: {config: file, profile: 'prod'}}))
  err = await usageError(() => resolveMasterOptions(input({flags: {config: file, profile: 'prod'}}), prod))
  assert.match(err.message, `${file}: profiles.prod.leaseTtl: bad duration "forever"`)
  err = await usageError(() => resolveSettings({size: {key: 'size', flag: 'size', kind: 'size', summary: 's'}}, input({env: {MOONCAKE_SIZE: '1 parsec'}})))
  assert.match(err.message, /^MOONCAKE_SIZE: bad size "1 parsec"/)
  err = await usageError(() => resolveSettings(MASTER_SETTINGS, input({flags: {'eviction-high-watermark': '1.5'}})))
  assert.match(err.message, /^--eviction-high-watermark: bad ratio/)
  err = await usageError(() => resolveSettings(MASTER_SETTINGS, input({env: {MOONCAKE_PORT: '70000'}})))
  assert.match(err.message, /^MOONCAKE_PORT: bad port/)
  err = await usageError(() => resolveSettings(MASTER_SETTINGS, input({env: {MOONCAKE_INSECURE: 'maybe'}})))
  assert.match(err.message, /^MOONCAKE_INSECURE: bad boolean/)
  assert.is((await resolveConfig(input({flags: {master: 'db1'}}))).global.master, 'db1:50051')
  err = await usageError(() => resolveConfig(input({flags: {master: 'a:b:c'}})))
  assert.match(err.message, /^--master: bad address/)
  err = await usageError(() => resolveConfig(input({env: {MOONCAKE_LOG_LEVEL: 'loud'}})))
  assert.match(err.message, /MOONCAKE_LOG_LEVEL: .*error, warn, info, debug/)
})

test('unknown keys in the config file are typos, with a suggestion', async () => {
  const file = write('typo.yaml', 'profiles:\n  prod:\n    leasettl: 1s\n')
  const err = await usageError(() => resolveConfig(input({flags: {config: file, profile: 'prod'}})))
  assert.match(err.message, `${file}: profiles.prod.leasettl: unknown setting (did you mean leaseTtl?)`)
})

test('the config file never holds the token', async () => {
  const file = write('token.yaml', 'token: s3cret\n')
  const err = await usageError(() => resolveConfig(input({flags: {config: file}})))
  assert.match(err.message, 'MOONCAKE_TOKEN_FILE')
})

test('sizes and durations use the grammar from every source', () => {
  const table = {
    size: {key: 'size', flag: 'size', kind: 'size', default: '1GiB', summary: 'a size'},
    ttl: {key: 'ttl', flag: 'ttl', kind: 'duration', default: '10s', summary: 'a duration'},
  } as const
  assert.equal(resolveSettings(table, input()).values, {size: 2 ** 30, ttl: 10_000})
  assert.equal(resolveSettings(table, input({flags: {size: '4 GB', ttl: '500ms'}})).values, {size: 4e9, ttl: 500})
  assert.equal(resolveSettings(table, input({env: {MOONCAKE_SIZE: '512mib', MOONCAKE_TTL: '2m'}})).values, {
    size: 512 * 2 ** 20,
    ttl: 120_000,
  })
})

test('master options: every row of the configuration table, env names derived from flags', async () => {
  const env = {
    MOONCAKE_LEASE_TTL: '250ms',
    MOONCAKE_EVICTION_HIGH_WATERMARK: '0.8',
    MOONCAKE_ALLOW_EVICT_SOFT_PINNED: 'false',
    MOONCAKE_ROOT_FS_DIR: '~/disk',
    MOONCAKE_ETCD: 'a:2379, b:2379',
  }
  const flags = {port: '0', 'metrics-port': '0', 'client-ttl': '2s', insecure: true, advertise: 'pub.example:6000'}
  const resolved = await resolveConfig(input({env, flags}), {server: true})
  const o = resolveMasterOptions(input({env, flags}), resolved)
  assert.is(o.port, 0)
  assert.is(o.metricsPort, 0)
  assert.is(o.host, '127.0.0.1')
  assert.is(o.leaseTtlMs, 250)
  assert.is(o.clientTtlMs, 2000)
  assert.is(o.softPinTtlMs, 30 * 60_000)
  assert.is(o.maxSoftPinTtlMs, 24 * 3_600_000)
  assert.is(o.putStartDiscardTimeoutMs, 30_000)
  assert.is(o.putStartReleaseTimeoutMs, 600_000)
  assert.is(o.haLeaseTtlMs, 5000)
  assert.is(o.evictionRatio, 0.05)
  assert.is(o.evictionHighWatermarkRatio, 0.8)
  assert.is(o.allowEvictSoftPinnedObjects, false)
  assert.is(o.insecure, true)
  assert.is(o.rootFsDir, path.join(home, 'disk'))
  assert.equal(o.etcd, ['a:2379', 'b:2379'])
  assert.is(o.advertise, 'pub.example:6000')
  assert.is(o.token, undefined)
  assert.is(envName('eviction-high-watermark'), 'MOONCAKE_EVICTION_HIGH_WATERMARK')
  assert.is(envName('allow-evict-soft-pinned'), 'MOONCAKE_ALLOW_EVICT_SOFT_PINNED')
  for (const spec of Object.values(MASTER_SETTINGS)) assert.ok(spec.summary.length > 0, spec.flag)
})

test('an empty environment variable counts as unset', async () => {
  const {global} = await resolveConfig(input({env: {MOONCAKE_MASTER: '', MOONCAKE_TIMEOUT: ''}}))
  assert.is(global.master, '127.0.0.1:50051')
  assert.is(global.timeoutMs, 30_000)
})

test('token: MOONCAKE_TOKEN, or a private MOONCAKE_TOKEN_FILE (trimmed)', () => {
  assert.is(resolveToken({}, home), undefined)
  assert.is(resolveToken({MOONCAKE_TOKEN: ' abc \n'}, home), 'abc')
  const file = write('token', 'from-file\n', 0o600)
  assert.is(resolveToken({MOONCAKE_TOKEN_FILE: file}, home), 'from-file')
  assert.is(resolveToken({MOONCAKE_TOKEN_FILE: '~/token'}, home), 'from-file')
})

test('token: a file readable by group or others is refused, and so are ambiguity and blanks', async () => {
  const open = write('token-open', 'x\n', 0o644)
  let err = await usageError(() => resolveToken({MOONCAKE_TOKEN_FILE: open}, home))
  assert.match(err.message, 'mode 0644')
  assert.match(err.message, `chmod 600 ${open}`)
  const group = write('token-group', 'x\n', 0o640)
  err = await usageError(() => resolveToken({MOONCAKE_TOKEN_FILE: group}, home))
  assert.match(err.message, 'group or others')
  err = await usageError(() => resolveToken({MOONCAKE_TOKEN_FILE: path.join(home, 'none')}, home))
  assert.match(err.message, 'no such file')
  const empty = write('token-empty', '  \n', 0o600)
  err = await usageError(() => resolveToken({MOONCAKE_TOKEN_FILE: empty}, home))
  assert.match(err.message, 'empty')
  err = await usageError(() => resolveToken({MOONCAKE_TOKEN: 'a', MOONCAKE_TOKEN_FILE: empty}, home))
  assert.match(err.message, 'both set')
})

test('the master gets the token from the environment', async () => {
  const env = {MOONCAKE_TOKEN: 'tok'}
  const o = resolveMasterOptions(input({env}), await resolveConfig(input({env})))
  assert.is(o.token, 'tok')
})

test('loadConfigProfile reports where each value came from', async () => {
  const file = write('src.yaml', PROFILES_YAML)
  const profile = await loadConfigProfile({explicitPath: file, profile: 'prod', profileExplicit: true, homeDir: home})
  assert.is(profile.sources.master, `${file}: profiles.prod.master`)
  assert.is(profile.sources.leaseTtl, `${file}: leaseTtl`)
  const bad = write('list.yaml', '- a\n- b\n')
  const err = await usageError(() => loadConfigProfile({explicitPath: bad, homeDir: home}))
  assert.match(err.message, 'mapping')
})

test('docs/configuration.md lists every setting: flag, environment variable and config key', async () => {
  const {readFileSync} = await import('node:fs')
  const {GLOBAL_SETTINGS} = await import('../../src/lib/config.js')
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
  const specs: SettingSpec[] = [...Object.values(GLOBAL_SETTINGS), ...Object.values(MASTER_SETTINGS)]
  for (const spec of specs) {
    assert.ok(doc.includes(`--${spec.flag}`), `--${spec.flag}`)
    assert.ok(doc.includes(`\`${envName(spec.flag)}\``), envName(spec.flag))
    if (spec.inFile !== false) assert.ok(doc.includes(`\`${spec.key}\``), spec.key)
  }
})

test('TLS and etcd settings: files are read, half pairs, unreadable files and a user without password are USAGE', async () => {
  const pem = write('tls/a.pem', 'PEM-A')
  const missing = path.join(home, 'tls/missing.pem')
  assert.is(clientTls({}), undefined)
  assert.is(masterTls({tlsCa: pem}), undefined, 'a master without a certificate serves plaintext')
  assert.is(clientTls({tlsCa: pem})?.ca?.toString(), 'PEM-A')
  assert.is(masterTls({tlsCert: pem, tlsKey: pem, tlsCa: pem})?.ca?.toString(), 'PEM-A')
  assert.match((await usageError(() => clientTls({tlsCert: pem}))).message, '--tls-cert and --tls-key go together')
  assert.match((await usageError(() => masterTls({tlsKey: pem}))).message, '--tls-cert and --tls-key go together')
  assert.match((await usageError(() => clientTls({tlsCa: missing}))).message, `cannot read --tls-ca ${missing}: ENOENT`)
  assert.match((await usageError(() => masterTls({tlsCert: pem, tlsKey: missing}))).message, `cannot read --tls-key ${missing}`)

  assert.equal(etcdOptionsFromSettings({}), {})
  const mtls = etcdOptionsFromSettings({etcdCert: pem, etcdKey: pem})
  assert.is(mtls.credentials?.rootCertificate.length, 0, 'no --etcd-ca: the system roots')
  assert.is(mtls.credentials?.certChain?.toString(), 'PEM-A')
  assert.equal(etcdOptionsFromSettings({etcdUser: 'u', etcdPassword: 'p'}).auth, {username: 'u', password: 'p'})
  assert.match((await usageError(() => etcdOptionsFromSettings({etcdKey: pem}))).message, '--etcd-cert and --etcd-key go together')
  assert.match((await usageError(() => etcdOptionsFromSettings({etcdCa: missing}))).message, `cannot read --etcd-ca ${missing}`)
  assert.match((await usageError(() => etcdOptionsFromSettings({etcdUser: 'u'}))).message, 'MOONCAKE_ETCD_PASSWORD')
})

test.run()
