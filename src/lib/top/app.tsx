/**
 * The ink dashboard of `mooncake top`. Layout only: every number and string comes from
 * model.ts. Polls `poll()` every `intervalMs` (not while paused); keys: q quit, p pause,
 * s sort, r reverse, / filter (Enter keeps, Esc clears), ? help.
 */
import {Box, Text, useApp, useInput, useStdout} from 'ink'
import {useEffect, useRef, useState} from 'react'

import {formatBytes, formatDuration} from '../units.js'
import {
  bar,
  failPercent,
  formatRate,
  formatRows,
  formatUptime,
  percent,
  SORT_FIELDS,
  type SortField,
  sparkline,
  TopModel,
  type TopSample,
} from './model.js'

export interface TopAppProps {
  /** The address shown when the master does not name its leader. */
  master: string
  intervalMs: number
  poll: () => Promise<TopSample>
  /** A sample already taken (the command's first contact); shown at once. */
  initial?: TopSample
  /** Called once when the user quits (q); the app unmounts itself too. */
  onQuit?: () => void
}

interface UiState {
  paused: boolean
  sort: SortField
  reverse: boolean
  filter: string
  editingFilter: boolean
  help: boolean
}

const HELP: Array<[string, string]> = [
  ['q, Ctrl-C', 'quit'],
  ['p, space', 'pause / resume polling'],
  ['s', `sort segments (${SORT_FIELDS.join(', ')})`],
  ['r', 'reverse the sort'],
  ['/', 'filter segments by name, endpoint or status (Enter keeps, Esc clears)'],
  ['Esc', 'clear the filter, close this help'],
  ['?, h', 'toggle this help'],
]

export function TopApp({master, intervalMs, poll, initial, onQuit}: TopAppProps) {
  const {exit} = useApp()
  const {stdout} = useStdout()
  const model = useRef<TopModel | null>(null)
  if (model.current === null) {
    model.current = new TopModel(master)
    if (initial) model.current.update(initial)
  }
  const [, setVersion] = useState(0)
  const [error, setError] = useState<string | undefined>()
  const [ui, setUi] = useState<UiState>({paused: false, sort: 'name', reverse: false, filter: '', editingFilter: false, help: false})
  const paused = useRef(false)

  useEffect(() => {
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    const tick = async () => {
      if (!paused.current) {
        try {
          const sample = await poll()
          if (stopped) return
          model.current!.update(sample)
          setError(undefined)
          setVersion((v) => v + 1)
        } catch (err) {
          if (stopped) return
          setError(err instanceof Error ? err.message : String(err))
        }
      }
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs)
    }
    if (initial) timer = setTimeout(() => void tick(), intervalMs)
    else void tick()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [poll, intervalMs])

  // Keys act on a ref (not on the state captured by the last render): several keys may arrive
  // before React re-renders, e.g. a pasted filter.
  const uiRef = useRef(ui)
  const change = (fn: (u: UiState) => UiState) => {
    uiRef.current = fn(uiRef.current)
    paused.current = uiRef.current.paused
    setUi(uiRef.current)
  }
  useInput((input, key) => {
    if (uiRef.current.editingFilter) {
      if (key.escape) change((u) => ({...u, filter: '', editingFilter: false}))
      else if (key.return) change((u) => ({...u, editingFilter: false}))
      else if (key.backspace || key.delete) change((u) => ({...u, filter: u.filter.slice(0, -1)}))
      else if (input && !key.ctrl && !key.meta) change((u) => ({...u, filter: u.filter + input}))
      return
    }
    if (input === 'q') {
      onQuit?.()
      exit()
    } else if (input === 'p' || input === ' ') change((u) => ({...u, paused: !u.paused}))
    else if (input === 's') change((u) => ({...u, sort: SORT_FIELDS[(SORT_FIELDS.indexOf(u.sort) + 1) % SORT_FIELDS.length]!}))
    else if (input === 'r') change((u) => ({...u, reverse: !u.reverse}))
    else if (input === '/') change((u) => ({...u, editingFilter: true, help: false}))
    else if (input === '?' || input === 'h') change((u) => ({...u, help: !u.help}))
    else if (key.escape) change((u) => (u.help ? {...u, help: false} : {...u, filter: ''}))
  })

  const columns = Math.max(60, stdout?.columns ?? 100)
  const m = model.current
  const sample = m.latest
  const refresh = `⟳ ${formatDuration(intervalMs)}`

  if (sample === undefined) {
    return (
      <Box flexDirection="column">
        <Text>
          <Text bold>mooncake top</Text> master {master} {refresh}
        </Text>
        <Text color={error ? 'red' : undefined}>{error ? `master not reachable: ${error} (retrying)` : 'connecting…'}</Text>
        <Text dimColor>q quit ? help</Text>
      </Box>
    )
  }

  const snap = m.snapshot()
  const health = sample.health
  const r = snap.rates
  const sparkWidth = Math.max(6, Math.min(20, Math.floor((columns - 72) / 3)))
  const memWidth = Math.max(10, Math.min(40, columns - 70))
  const rows = formatRows(snap.segments, {sort: ui.sort, reverse: ui.reverse, filter: ui.filter, clientTtlMs: sample.segments.clientTtlMs}, 10)
  const nameWidth = Math.min(32, Math.max(7, ...rows.map((x) => x.name.length)))
  const endpointWidth = Math.min(28, Math.max(8, ...rows.map((x) => x.endpoint.length)))
  const cell = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w))

  return (
    <Box flexDirection="column" width={columns}>
      <Text wrap="truncate">
        <Text bold inverse>
          {' mooncake top '}
        </Text>
        {ui.paused ? <Text color="yellow"> [PAUSED]</Text> : null}{' '}
        master {snap.master} <Text color={health.role === 'leader' ? 'green' : 'yellow'}>({health.role}{health.ready ? '' : ', not ready'})</Text>
        {'  '}leader {health.leader ?? '-'}
        {'  '}up {formatUptime(health.uptime)}
        {'  '}v{health.version}
        {'  '}
        {refresh}
      </Text>
      <Text wrap="truncate">
        {' MEM  '}[<Text color={snap.capacity > 0 && snap.used / snap.capacity > 0.9 ? 'red' : 'green'}>{bar(snap.capacity > 0 ? snap.used / snap.capacity : 0, memWidth)}</Text>] {percent(snap.used, snap.capacity).padStart(6)}
        {'  '}
        {formatBytes(snap.used)} / {formatBytes(snap.capacity)}
        {'  '}keys {snap.keys}
        {'  '}soft-pinned {snap.softPinnedKeys}
        {'  '}clients {snap.clients}
      </Text>
      <Text wrap="truncate">
        {' ops/s  '}put <Text color="cyan">{sparkline(m.history.put, sparkWidth)}</Text> {formatRate(r.put).padStart(5)} fail {failPercent(r.put, r.putFailed)}
        {'   '}get <Text color="cyan">{sparkline(m.history.get, sparkWidth)}</Text> {formatRate(r.get).padStart(5)} fail {failPercent(r.get, r.getFailed)}
        {'   '}rm <Text color="cyan">{sparkline(m.history.remove, sparkWidth)}</Text> {formatRate(r.remove).padStart(5)} fail {failPercent(r.remove, r.removeFailed)}
      </Text>
      <Text wrap="truncate">
        {' evict  '}
        {formatRate(r.evictions)} rounds/s {formatRate(r.evictedKeys)} keys/s {formatBytes(Math.round(r.evictedBytes))}/s
      </Text>
      {error ? (
        <Text color="red" wrap="truncate">
          {' '}master not reachable: {error} (retrying; showing the last data)
        </Text>
      ) : null}
      <Text> </Text>
      {ui.help ? (
        <Box flexDirection="column" borderStyle="round" paddingX={1}>
          <Text bold>keys</Text>
          {HELP.map(([k, what]) => (
            <Text key={k}>
              {k.padEnd(12)}
              {what}
            </Text>
          ))}
          <Text dimColor>Rates come from counter deltas between polls of {'/metrics'}; LAST PING turns yellow past half the client TTL, red past 80 %.</Text>
        </Box>
      ) : (
        <Box flexDirection="column">
          <Text bold wrap="truncate">
            {' '}
            {cell('SEGMENT', nameWidth)} {cell('ENDPOINT', endpointWidth)} {'SIZE'.padStart(10)} {'USED'.padEnd(19)} {'STATUS'.padEnd(11)} LAST PING
          </Text>
          {rows.length === 0 ? <Text dimColor> {ui.filter ? `no segment matches "${ui.filter}"` : 'no segments mounted'}</Text> : null}
          {rows.map((row) => (
            <Text key={row.name} wrap="truncate" color={row.level === 'crit' ? 'red' : row.level === 'warn' ? 'yellow' : undefined} bold={row.level === 'crit'}>
              {' '}
              {cell(row.name, nameWidth)} {cell(row.endpoint, endpointWidth)} {row.size.padStart(10)} [{row.usedBar}] {row.usedPercent.padStart(6)} {row.status.padEnd(11)} {row.lastPing}
            </Text>
          ))}
        </Box>
      )}
      <Text> </Text>
      <Text dimColor wrap="truncate">
        {ui.editingFilter ? (
          <Text color="cyan">/{ui.filter}█ (Enter keep, Esc clear)</Text>
        ) : (
          <>
            {' '}q quit p {ui.paused ? 'resume' : 'pause'} s sort:{ui.sort}
            {ui.reverse ? '↑' : '↓'} r reverse / filter{ui.filter ? `:"${ui.filter}"` : ''} ? help
          </>
        )}
      </Text>
    </Box>
  )
}
