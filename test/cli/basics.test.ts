import {execFileSync} from 'node:child_process'
import {chmodSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {cleanup, lines, run, SANDBOX} from './helpers.js'

test.after(cleanup)

test('--help and --version exit 0 on stdout', async () => {
  const [help, version, cmdHelp] = await Promise.all([run(['--help']), run(['--version']), run(['segment', 'ls', '--help'])])
  assert.is(help.code, 0)
  assert.match(help.stdout, 'segment')
  assert.match(help.stdout, 'master')
  assert.is(version.code, 0)
  assert.match(version.stdout, /^mooncake\/\d+\.\d+\.\d+/)
  assert.is(cmdHelp.code, 0)
  assert.match(cmdHelp.stdout, 'MOONCAKE_MASTER')
  assert.match(cmdHelp.stdout, 'EXAMPLES')
})

test('an unknown flag is a usage error: exit 2, one stderr line, nothing on stdout', async () => {
  const r = await run(['segment', 'ls', '--bogus'])
  assert.is(r.code, 2)
  assert.is(r.stdout, '')
  const errs = lines(r.stderr)
  assert.is(errs.length, 1, r.stderr)
  assert.match(errs[0], /^mooncake: USAGE: .*--bogus/)
})

test('a missing argument and an unknown command are usage errors too', async () => {
  const [missing, unknown] = await Promise.all([run(['segment', 'unmount']), run(['frobnicate'])])
  assert.is(missing.code, 2)
  assert.equal(lines(missing.stderr).length, 1, missing.stderr)
  assert.match(missing.stderr, /^mooncake: USAGE: Missing 1 required arg: name/)
  assert.is(unknown.code, 2)
  assert.equal(lines(unknown.stderr), ['mooncake: USAGE: command "frobnicate" not found (see: mooncake --help)'])
})

test('a bad duration in --timeout or MOONCAKE_TIMEOUT exits 2 and names its source', async () => {
  const [flag, env] = await Promise.all([
    run(['segment', 'ls', '--timeout', '5 fortnights']),
    run(['segment', 'ls'], {env: {MOONCAKE_TIMEOUT: 'soon'}}),
  ])
  assert.is(flag.code, 2)
  assert.equal(lines(flag.stderr).length, 1)
  assert.match(flag.stderr, /^mooncake: USAGE: --timeout: bad duration "5 fortnights"/)
  assert.is(env.code, 2)
  assert.match(env.stderr, /^mooncake: USAGE: MOONCAKE_TIMEOUT: bad duration "soon"/)
})

test('--json errors: {"error":{"code","message"}} on stdout and the line on stderr', async () => {
  const r = await run(['segment', 'ls', '--json', '--timeout', 'x'])
  assert.is(r.code, 2)
  const doc = JSON.parse(r.stdout)
  assert.equal(Object.keys(doc), ['error'])
  assert.is(doc.error.code, 'USAGE')
  assert.match(doc.error.message, '--timeout')
  assert.is(lines(r.stdout).length, 1, 'one compact JSON document')
  assert.equal(lines(r.stderr), [`mooncake: USAGE: ${doc.error.message}`])
})

test('nothing listening: exit 5 (UNAVAILABLE) well within --timeout', async () => {
  const r = await run(['segment', 'ls', '--master', '127.0.0.1:1', '--timeout', '2s'])
  assert.is(r.code, 5, r.stderr)
  assert.ok(r.ms < 5000, `took ${r.ms} ms`)
  assert.equal(lines(r.stderr).length, 1)
  assert.match(r.stderr, /^mooncake: UNAVAILABLE: .*127\.0\.0\.1:1/)
})

test('a master that accepts but never answers: exit 5 at the deadline, never a hang', async () => {
  const silent = net.createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as net.AddressInfo).port
  try {
    const r = await run(['segment', 'ls', '--json', '--master', `127.0.0.1:${port}`, '--timeout', '1s'])
    assert.is(r.code, 5, r.stderr)
    assert.ok(r.ms < 4000, `took ${r.ms} ms`)
    assert.is(JSON.parse(r.stdout).error.code, 'UNAVAILABLE')
  } finally {
    silent.close()
  }
})

test('SIGINT interrupts a client command: exit 130', async () => {
  // The command connects only from inside run(), after its signal handlers are installed, so
  // the first connection to this silent server is the moment to interrupt it.
  let connected!: () => void
  const firstConnection = new Promise<void>((resolve) => (connected = resolve))
  const silent = net.createServer(() => connected())
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as net.AddressInfo).port
  try {
    const {spawn} = await import('node:child_process')
    const {BIN, cleanEnv} = await import('./helpers.js')
    const child = spawn(process.execPath, [BIN, 'segment', 'ls', '--master', `127.0.0.1:${port}`, '--timeout', '20s'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    await firstConnection
    child.kill('SIGINT')
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    assert.is(code, 130, stderr)
    assert.match(stderr, /^mooncake: INTERRUPTED: /)
  } finally {
    silent.close()
  }
})

test('config-file errors are usage errors naming the file', async () => {
  const file = path.join(SANDBOX, 'bad.yaml')
  writeFileSync(file, 'profiles:\n  ci:\n    timeout: never\n')
  const r = await run(['segment', 'ls', '--config', file, '--profile', 'ci'])
  assert.is(r.code, 2)
  assert.match(r.stderr, `mooncake: USAGE: ${file}: profiles.ci.timeout: bad duration "never"`)
  const missing = await run(['segment', 'ls', '--profile', 'nope'], {env: {MOONCAKE_CONFIG: file}})
  assert.is(missing.code, 2)
  assert.match(missing.stderr, 'profile "nope" not found')
})

test('a master on a non-loopback address without a token is refused (exit 2)', async () => {
  const r = await run(['master', '--host', '0.0.0.0', '--port', '0', '--metrics-port', '0'])
  assert.is(r.code, 2, r.stderr)
  assert.is(r.stdout, '')
  assert.match(r.stderr, /^mooncake: INVALID_PARAMS: .*--insecure/)
})

test('version --json: one compact document', async () => {
  const r = await run(['version', '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(lines(r.stdout).length, 1)
  assert.match(JSON.parse(r.stdout).version, /^\d+\.\d+\.\d+/)
})

test('completion bash|zsh prints a script over every command; it completes commands, flags and values', async () => {
  const [bash, zsh, fish] = await Promise.all([run(['completion', 'bash']), run(['completion', 'zsh']), run(['completion', 'fish'])])
  assert.is(bash.code, 0, bash.stderr)
  assert.match(bash.stdout, 'complete -o default -F _mooncake_completion mooncake')
  for (const word of ['put', 'segment', 'mount', '--preferred-segment', 'completion']) assert.match(bash.stdout, word)
  assert.is(zsh.code, 0, zsh.stderr)
  assert.match(zsh.stdout, 'bashcompinit')
  assert.match(zsh.stdout, 'put')
  assert.is(fish.code, 2)
  // Source it in bash and complete a few command lines.
  const script = path.join(SANDBOX, 'completion.bash')
  writeFileSync(script, bash.stdout)
  const complete = (...words: string[]) =>
    execFileSync('bash', ['-c', `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _mooncake_completion; echo "\${COMPREPLY[*]}"`, 'bash', script, ...words], {encoding: 'utf8'}).trim()
  assert.is(complete('mooncake', 'segment', ''), 'ls mount unmount')
  assert.ok(complete('mooncake', 'p').split(' ').includes('put'))
  assert.ok(complete('mooncake', 'put', 'k', '--rep').split(' ').includes('--replicas'))
  assert.is(complete('mooncake', 'get', 'k', '--transport', ''), 'auto tcp')
})

test('a token file readable by others is refused before anything starts', async () => {
  const token = path.join(SANDBOX, 'token')
  writeFileSync(token, 'secret\n')
  chmodSync(token, 0o644)
  const r = await run(['master', '--port', '0', '--metrics-port', '0'], {env: {MOONCAKE_TOKEN_FILE: token}})
  assert.is(r.code, 2)
  assert.is(r.stdout, '')
  assert.match(r.stderr, /^mooncake: USAGE: MOONCAKE_TOKEN_FILE .* \(mode 0644\): run chmod 600/)
})

test.run()
