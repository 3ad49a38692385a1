/**
 * Throwaway certificates for TLS tests, made with the openssl CLI in a temporary directory:
 * CAs, and leaf certificates signed by one of them for 127.0.0.1/localhost (server, client or
 * both uses). Paths are returned; `cleanup()` removes the directory.
 */
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface CertPair {
  cert: string
  key: string
}

export class TestPki {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'mooncake-pki-'))

  path(name: string): string {
    return path.join(this.dir, name)
  }

  /** A self-signed CA `name`: returns the certificate path (the key is `name.key`). */
  ca(name: string): string {
    this.#openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', this.path(`${name}.key`), '-out', this.path(`${name}.pem`), '-days', '2', '-subj', `/CN=${name}`)
    return this.path(`${name}.pem`)
  }

  /** A certificate `name` signed by CA `ca` (made by ca()), valid for 127.0.0.1 and localhost. */
  leaf(name: string, ca: string, uses: Array<'serverAuth' | 'clientAuth'> = ['serverAuth', 'clientAuth']): CertPair {
    const ext = this.path(`${name}.ext`)
    writeFileSync(
      ext,
      `subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=${uses.join(',')}\n`,
    )
    const key = this.path(`${name}.key`)
    const cert = this.path(`${name}.pem`)
    this.#openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', this.path(`${name}.csr`), '-subj', `/CN=${name}`)
    this.#openssl('x509', '-req', '-in', this.path(`${name}.csr`), '-CA', this.path(`${ca}.pem`), '-CAkey', this.path(`${ca}.key`), '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext)
    return {cert, key}
  }

  cleanup(): void {
    rmSync(this.dir, {recursive: true, force: true})
  }

  #openssl(...args: string[]): void {
    execFileSync('openssl', args, {cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe']})
  }
}
