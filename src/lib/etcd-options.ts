/**
 * TLS and authentication of every etcd3 client the project creates (HA, P2P, doctor, cluster
 * status, top): `--etcd-ca`, `--etcd-cert`, `--etcd-key`, `--etcd-user` and MOONCAKE_ETCD_PASSWORD.
 * The CLI configures it once from the resolved settings (BaseCommand.init); a library user calls
 * `configureEtcd()` or sets the MOONCAKE_ETCD_* environment variables. Each `new Etcd3({...})`
 * spreads `etcdClientOptions()` into its options.
 */
import {readPemFile} from './config/pem.js'
import {MooncakeError} from './errors.js'

/** Paths and names as the settings hold them. */
export interface EtcdSecuritySettings {
  etcdCa?: string
  etcdCert?: string
  etcdKey?: string
  etcdUser?: string
  etcdPassword?: string
}

/** The part of etcd3's IOptions this module fills. */
export interface EtcdClientSecurity {
  credentials?: {rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer}
  auth?: {username: string; password: string}
}

/** Builds the etcd3 options of the settings; USAGE for an unreadable file or a half-given pair. */
export function etcdOptionsFromSettings(s: EtcdSecuritySettings): EtcdClientSecurity {
  const out: EtcdClientSecurity = {}
  if ((s.etcdCert === undefined) !== (s.etcdKey === undefined)) {
    throw new MooncakeError('USAGE', '--etcd-cert and --etcd-key go together (MOONCAKE_ETCD_CERT / MOONCAKE_ETCD_KEY)')
  }
  if (s.etcdCa !== undefined || s.etcdCert !== undefined) {
    // etcd3 wants a root certificate with client certificates; without --etcd-ca the system's
    // roots are used through an empty buffer.
    out.credentials = {rootCertificate: s.etcdCa !== undefined ? readPemFile(s.etcdCa, '--etcd-ca') : Buffer.alloc(0)}
    if (s.etcdCert !== undefined && s.etcdKey !== undefined) {
      out.credentials.certChain = readPemFile(s.etcdCert, '--etcd-cert')
      out.credentials.privateKey = readPemFile(s.etcdKey, '--etcd-key')
    }
  }
  if (s.etcdUser !== undefined && s.etcdUser !== '') {
    if (s.etcdPassword === undefined || s.etcdPassword === '') {
      throw new MooncakeError('USAGE', `--etcd-user ${s.etcdUser} needs its password in MOONCAKE_ETCD_PASSWORD`)
    }
    out.auth = {username: s.etcdUser, password: s.etcdPassword}
  }
  return out
}

/** The settings from the environment alone (library use without configureEtcd). */
export function etcdSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcdSecuritySettings {
  const get = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name])
  return {
    etcdCa: get('MOONCAKE_ETCD_CA'),
    etcdCert: get('MOONCAKE_ETCD_CERT'),
    etcdKey: get('MOONCAKE_ETCD_KEY'),
    etcdUser: get('MOONCAKE_ETCD_USER'),
    etcdPassword: get('MOONCAKE_ETCD_PASSWORD'),
  }
}

let configured: EtcdClientSecurity | undefined

/** Sets the etcd TLS/auth options of this process (the CLI does it from the resolved settings). */
export function configureEtcd(settings: EtcdSecuritySettings): void {
  configured = etcdOptionsFromSettings(settings)
}

/** Options to spread into every `new Etcd3({...})`: configured ones, else from the environment. */
export function etcdClientOptions(): EtcdClientSecurity {
  return configured ?? etcdOptionsFromSettings(etcdSettingsFromEnv())
}

/** Whether an etcd client error is a TLS failure (certificate, handshake), i.e. a configuration error. */
export function isEtcdTlsFailure(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err)
  return /certificate|SSL routines|ssl3_|tlsv1|self[- ]signed|altnames|wrong version number|handshake/i.test(text)
}

/**
 * What to do about an etcd client error, for its message: for a TLS failure, which flags set the
 * CA and the client certificate; '' otherwise.
 */
export function etcdTlsHint(err: unknown): string {
  if (!isEtcdTlsFailure(err)) return ''
  return ': the TLS handshake with etcd failed; check --etcd-ca / MOONCAKE_ETCD_CA (the CA that signed etcd\'s certificate) and, for an etcd started with --client-cert-auth, --etcd-cert / --etcd-key (a client certificate signed by its --trusted-ca-file); endpoints of an etcd serving TLS are https://'
}
