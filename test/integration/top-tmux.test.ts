// `mooncake top` in a real terminal (tmux): a master and a segment owner in their own processes,
// the dashboard shows the segment row and the memory bar; q, Ctrl-C and SIGTERM each leave the
// alternate screen (the shell's earlier output is back) and end the process.
import {execFileSync} from 'node:child_process'

import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {connectMaster, type MasterClient} from '../../src/lib/client/master-client.js'
import {type Fixture, killAll, ROOT, startFixture, waitFor} from '../helpers/processes.js'

const SOCKET = `mooncake-top-test-${process.pid}`
const SESSION = 'top'
const MiB = 1 << 20

let master: Fixture<{address: string; httpAddress: string}>
let owner: Fixture<{name: string; endpoints: string[]}>
let client: MasterClient
let tmuxStarted = false

// The terminal of a person, not of CI: ink renders only the final frame when it sees CI variables.
const terminalEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !['CI', 'CONTINUOUS_INTEGRATION', 'BUILD_NUMBER', 'RUN_ID'].includes(name) && !name.startsWith('CI_')),
)

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, ...args], {encoding: 'utf8', env: {...terminalEnv, TMUX: ''}})
}

function screen(): string {
  return tmux('capture-pane', '-p', '-t', SESSION)
}

/** Types a command line into the shell of the tmux session. */
function type(line: string): void {
  tmux('send-keys', '-t', SESSION, '-l', line)
  tmux('send-keys', '-t', SESSION, 'Enter')
}

async function waitScreen(check: (s: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> {
  try {
    return await waitFor(() => {
      const s = screen()
      return check(s) ? s : undefined
    }, timeoutMs, what)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- screen ---\n${screen()}`)
  }
}

let run = 0
/** Clears the shell, prints a marker, starts top; resolves with the marker once the dashboard shows the segment. */
async function startTop(): Promise<string> {
  run += 1
  const marker = `BEFORE-TOP-${run}`
  type('clear')
  type(`echo ${marker}`)
  await waitScreen((s) => s.includes(`\n${marker}`) || s.startsWith(marker), 'the marker')
  type(`node bin/run.js top --master ${master.ready.address} --http ${master.ready.httpAddress} --interval 300ms; echo TOP-EXIT-${run}=$?`)
  await waitScreen((s) => s.includes(owner.ready.name) && s.includes('SEGMENT'), 'the dashboard with the segment row')
  return marker
}

async function expectLeft(marker: string, code: number): Promise<string> {
  const exited = new RegExp(`^TOP-EXIT-${run}=(\\d+)$`, 'm')
  const s = await waitScreen((x) => exited.test(x), 'top to exit')
  assert.is(Number(exited.exec(s)![1]), code, `exit code:\n${s}`)
  // Back on the normal screen: the shell's earlier output is there, the dashboard is not.
  assert.ok(s.includes(marker), `the shell's earlier output is back:\n${s}`)
  assert.not.ok(s.includes('LAST PING'), `the dashboard is gone:\n${s}`)
  assert.not.ok(s.includes('mooncake top '), `the dashboard is gone:\n${s}`)
  return s
}

test.before(async () => {
  master = await startFixture('test/integration/fixtures/master.ts', [JSON.stringify({clientTtlMs: 10_000})])
  owner = await startFixture('test/integration/fixtures/segment-owner.ts', [
    JSON.stringify({masterAddress: master.ready.address, size: 4 * MiB, name: 'seg-tmux', pingIntervalMs: 200}),
  ])
  client = await connectMaster({address: master.ready.address, timeoutMs: 5_000})
  // Take 1 MiB of the 4 MiB segment, so the memory bar shows 25 %.
  await client.putStart({clientId: 'writer', requestId: 'r1', key: 'blob', size: MiB})
  await client.putEnd({clientId: 'writer', key: 'blob'})
  tmux('new-session', '-d', '-s', SESSION, '-x', '160', '-y', '40', '-c', ROOT, 'bash --norc --noprofile')
  tmuxStarted = true
  type('export PS1="$ " NO_COLOR=1')
})

test.after(async () => {
  if (tmuxStarted) {
    try {
      tmux('kill-server')
    } catch {}
  }
  client?.close()
  await killAll()
})

test('the dashboard shows the segment row and the memory bar; q leaves the alternate screen', async () => {
  const marker = await startTop()
  const s = screen()
  if (process.env.SHOW_SCREEN) console.log(s)
  assert.match(s, /mooncake top/)
  assert.match(s, new RegExp(`master ${master.ready.address.replace(/\./g, '\\.')} \\(leader\\)`))
  assert.match(s, /MEM\s+\[█+░+\]\s+25\.0%\s+1\.00 MiB \/ 4\.00 MiB/)
  assert.match(s, /keys 1\s+soft-pinned 0\s+clients 1/)
  assert.match(s, new RegExp(`seg-tmux\\s+${owner.ready.endpoints[0]!.replace(/\./g, '\\.')}\\s+4\\.00 MiB \\[███░+\\]\\s+25\\.0% OK\\s+\\d+\\.\\ds`))
  assert.not.ok(s.includes(marker), 'the dashboard is on the alternate screen')
  tmux('send-keys', '-t', SESSION, '?')
  await waitScreen((x) => x.includes('toggle this help'), 'the help overlay')
  tmux('send-keys', '-t', SESSION, 'q')
  await expectLeft(marker, 0)
})

test('Ctrl-C also restores the screen', async () => {
  const marker = await startTop()
  tmux('send-keys', '-t', SESSION, 'C-c')
  await expectLeft(marker, 0)
})

test('SIGTERM restores the screen', async () => {
  const marker = await startTop()
  const shell = tmux('display-message', '-p', '-t', SESSION, '#{pane_pid}').trim()
  const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', shell], {encoding: 'utf8'})
  const line = children.split('\n').find((l) => l.includes('bin/run.js top'))
  assert.ok(line, `top's process among the shell's children:\n${children}`)
  process.kill(Number(line!.trim().split(/\s+/)[0]), 'SIGTERM')
  await expectLeft(marker, 143)
})

test.run()
