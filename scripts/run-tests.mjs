// Runs every test file in its own child process (a native crash fails that file, it does not
// lose the summary), streams its output, and ends with the line CI reads: "N passed, N failed".
//   node scripts/run-tests.mjs [path-or-substring ...]
// Environment: MOONCAKE_TEST_TIMEOUT (seconds per file, default 600).
import {spawn} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import path from 'node:path'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const timeoutMs = Number(process.env.MOONCAKE_TEST_TIMEOUT ?? 600) * 1000
const filters = process.argv.slice(2)

function collect(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name)
    if (statSync(file).isDirectory()) out.push(...collect(file))
    else if (/\.test\.(ts|tsx|mjs|js)$/.test(name)) out.push(file)
  }
  return out
}

const files = collect(path.join(root, 'test')).filter(
  (file) => filters.length === 0 || filters.some((f) => file.includes(f) || path.resolve(f) === file),
)

const ANSI = /\x1b\[[0-9;]*m/g
let passed = 0
let failed = 0
const failures = []
const started = Date.now()

function runFile(file) {
  return new Promise((resolve) => {
    const rel = path.relative(root, file)
    const t0 = Date.now()
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: {...process.env, NO_COLOR: '1', FORCE_COLOR: '0', MOONCAKE_TEST: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      process.stdout.write(d)
    })
    child.stderr.on('data', (d) => process.stderr.write(d))
    const timer = setTimeout(() => {
      console.error(`\n[run-tests] ${rel}: timed out after ${timeoutMs / 1000}s, killing it`)
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }, timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      // Kill whatever the test file left behind in its process group.
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
      const text = out.replace(ANSI, '')
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN)
      const ok = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN)
      const seconds = ((Date.now() - t0) / 1000).toFixed(1)
      if (Number.isNaN(total) || Number.isNaN(ok)) {
        failed += 1
        failures.push(`${rel}: no summary (exit ${code ?? signal})`)
      } else {
        passed += ok
        let bad = total - ok
        if (bad === 0 && code !== 0) bad = 1
        failed += bad
        if (bad > 0) failures.push(`${rel}: ${bad} failed (exit ${code ?? signal})`)
      }
      console.log(`[run-tests] ${rel} finished in ${seconds}s`)
      resolve()
    })
  })
}

for (const file of files) await runFile(file)

console.log(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(1)}s`)
for (const line of failures) console.log(`  FAILED ${line}`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 || files.length === 0 ? 1 : 0)
