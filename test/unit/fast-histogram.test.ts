// FastHistogram prints what prom-client's Histogram prints for the same observations.
import {Histogram, Registry, type RegistryContentType} from 'prom-client'
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {FastHistogram} from '../../src/lib/metrics/fast-histogram.js'

const BUCKETS = [1e-5, 1e-4, 1e-3, 0.1]
// Below, inside, on a bound, between and above every bucket.
const VALUES = [0, 5e-6, 1e-5, 3e-5, 1e-4, 0.05, 0.1, 2.5, 17]

/** getMetricsAsJSON without prom-client's `exemplar: null` on bucket lines (exemplars are off). */
async function json(r: Registry<RegistryContentType>): Promise<unknown> {
  return JSON.parse(JSON.stringify(await r.getMetricsAsJSON(), (k, v) => (k === 'exemplar' && v === null ? undefined : v)))
}

function pair<L extends string>(labelNames: L[] = []) {
  const theirs = new Registry<RegistryContentType>()
  const ours = new Registry<RegistryContentType>()
  const h = new Histogram({name: 'x_seconds', help: 'X "help" \\ with escapes', buckets: BUCKETS, labelNames, registers: [theirs]})
  const f = new FastHistogram<L>({name: 'x_seconds', help: 'X "help" \\ with escapes', buckets: BUCKETS, labelNames, registers: [ours]})
  return {theirs, ours, h, f}
}

test('unlabelled: same text and JSON, before and after observations', async () => {
  const {theirs, ours, h, f} = pair()
  assert.is(await ours.metrics(), await theirs.metrics(), 'a zero series from the start, as prom-client')
  for (const v of VALUES) {
    h.observe(v)
    f.observe(v)
  }
  assert.is(await ours.metrics(), await theirs.metrics())
  assert.equal(await json(ours), await json(theirs))
  assert.match(await ours.metrics(), /^x_seconds_bucket\{le="0\.001"\} 5$/m)
  assert.match(await ours.metrics(), /^x_seconds_count 9$/m)
})

test('labelled: series in creation order, zero() shows one early, label values escaped', async () => {
  const {theirs, ours, h, f} = pair(['method'])
  h.zero({method: 'ping'})
  f.zero({method: 'ping'})
  // A series asked for but never observed is not printed.
  h.labels({method: 'unused'})
  f.labels({method: 'unused'})
  const hs = h.labels({method: 'put "x"\n'})
  const fs = f.labels({method: 'put "x"\n'})
  for (const v of VALUES) {
    hs.observe(v)
    fs.observe(v)
    h.labels({method: 'get'}).observe(v * 2)
    f.labels({method: 'get'}).observe(v * 2)
  }
  assert.is(await ours.metrics(), await theirs.metrics())
  assert.equal(await json(ours), await json(theirs))
  assert.match(await ours.metrics(), /^x_seconds_bucket\{le="\+Inf",method="get"\} 9$/m)
  // reset(): nothing printed; series held by callers count again from zero.
  h.reset()
  f.reset()
  assert.is(await ours.metrics(), await theirs.metrics())
  hs.observe(0.5)
  fs.observe(0.5)
  assert.is(await ours.metrics(), await theirs.metrics())
  // Also with the OpenMetrics content type.
  theirs.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  ours.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  assert.is(await ours.metrics(), await theirs.metrics())
})

test('bad input: a value that is not a finite number, a missing label, observe() on a labelled one', () => {
  const {f} = pair(['method'])
  assert.throws(() => f.labels({method: 'a'}).observe(Number.NaN), /not a valid number/)
  assert.throws(() => f.labels({} as {method: string}), /label method missing/)
  assert.throws(() => f.observe(1), /has labels/)
})

test.run()
