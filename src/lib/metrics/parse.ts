/**
 * A small parser of the Prometheus text exposition format (0.0.4): what `mooncake top`,
 * `mooncake doctor` and the tests read from /metrics. Comments (HELP/TYPE) are skipped.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

function hasLabels(s: Sample, labels: Record<string, string>): boolean {
  for (const k in labels) if (s.labels[k] !== labels[k]) return false
  return true
}

export class MetricSet {
  private readonly byName = new Map<string, Sample[]>()

  constructor(readonly samples: Sample[]) {
    for (const s of samples) {
      const list = this.byName.get(s.name)
      if (list) list.push(s)
      else this.byName.set(s.name, [s])
    }
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  /** Samples of one metric name (a histogram's series are `<name>_bucket`, `_sum`, `_count`). */
  all(name: string): Sample[] {
    return this.byName.get(name) ?? []
  }

  /** The first sample of `name` whose labels include `labels`, or undefined. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    for (const s of this.all(name)) {
      if (hasLabels(s, labels)) return s.value
    }
    return undefined
  }

  /** Sum over every series of `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels: Record<string, string> = {}): number {
    let total = 0
    for (const s of this.all(name)) {
      if (hasLabels(s, labels)) total += s.value
    }
    return total
  }
}

function parseValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  return Number(text)
}

function parseLabels(text: string, out: Record<string, string>): void {
  // name="value" pairs; values escape \\, \" and \n.
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g
  let m: RegExpExecArray | null
  while ((m = re.exec(text)) !== null) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
}

export function parsePrometheusText(text: string): MetricSet {
  const samples: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    let name: string
    const labels: Record<string, string> = {}
    let rest: string
    const brace = line.indexOf('{')
    const space = line.indexOf(' ')
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace)
      // The closing brace is the last one not inside a quoted value.
      let i = brace + 1
      let quoted = false
      for (; i < line.length; i++) {
        const c = line[i]
        if (quoted) {
          if (c === '\\') i++
          else if (c === '"') quoted = false
        } else if (c === '"') quoted = true
        else if (c === '}') break
      }
      parseLabels(line.slice(brace + 1, i), labels)
      rest = line.slice(i + 1).trim()
    } else {
      if (space < 0) continue
      name = line.slice(0, space)
      rest = line.slice(space + 1).trim()
    }
    const value = parseValue(rest.split(/\s+/)[0] ?? '')
    samples.push({name, labels, value})
  }
  return new MetricSet(samples)
}

/**
 * The q-quantile (0..1) of a histogram from its cumulative `<name>_bucket` series (summed over
 * series matching `labels`), interpolated linearly inside the bucket like PromQL's
 * histogram_quantile. Undefined when there are no observations.
 */
export function histogramQuantile(set: MetricSet, name: string, q: number, labels: Record<string, string> = {}): number | undefined {
  const byLe = new Map<number, number>()
  for (const s of set.all(`${name}_bucket`)) {
    if (!hasLabels(s, labels)) continue
    const le = parseValue(s.labels.le ?? '')
    byLe.set(le, (byLe.get(le) ?? 0) + s.value)
  }
  return quantileOfBuckets([...byLe.entries()].sort((a, b) => a[0] - b[0]), q)
}

/** The q-quantile of cumulative buckets `[upperBound, count]`, sorted by bound (last is +Inf). */
export function quantileOfBuckets(buckets: Array<[number, number]>, q: number): number | undefined {
  if (buckets.length === 0) return undefined
  const total = buckets[buckets.length - 1]![1]
  if (!(total > 0)) return undefined
  const rank = q * total
  let prevBound = 0
  let prevCount = 0
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return prevBound
      if (count === prevCount) return bound
      return prevBound + ((bound - prevBound) * (rank - prevCount)) / (count - prevCount)
    }
    prevBound = bound
    prevCount = count
  }
  return prevBound
}
