// The HTTP port's own error answers (unknown path, wrong method, failing route) carry ErrorCode
// names, so clients (doctor, scripts) can treat them like every other Mooncake error.
import {test} from 'uvu'
import * as assert from 'uvu/assert'

import {isErrorCodeName} from '../../src/lib/errors.js'
import {type HttpRoute, type RunningHttp, json, startHttpServer} from '../../src/lib/master/http.js'

let server: RunningHttp

test.before(async () => {
  const routes = new Map<string, HttpRoute>([
    ['/ok', () => json({ok: true})],
    [
      '/boom',
      () => {
        throw new Error('route failed')
      },
    ],
  ])
  server = await startHttpServer('127.0.0.1', 0, routes)
})

test.after(async () => {
  await server.close()
})

async function errorOf(path: string, method = 'GET'): Promise<{status: number; allow: string | null; code: string; message: string}> {
  const res = await fetch(`http://${server.address}${path}`, {method})
  const body = (await res.json()) as {error: {code: string; message: string}}
  return {status: res.status, allow: res.headers.get('allow'), ...body.error}
}

test('an unknown path is 404 NOT_SUPPORTED', async () => {
  const e = await errorOf('/nope')
  assert.is(e.status, 404)
  assert.is(e.code, 'NOT_SUPPORTED')
  assert.ok(isErrorCodeName(e.code))
  assert.match(e.message, 'no route GET /nope')
})

test('a method other than GET/HEAD on a known path is 405 NOT_SUPPORTED with Allow', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const e = await errorOf('/ok', method)
    assert.is(e.status, 405, method)
    assert.is(e.allow, 'GET, HEAD', method)
    assert.is(e.code, 'NOT_SUPPORTED', method)
    assert.ok(isErrorCodeName(e.code), method)
  }
})

test('a failing route is 500 INTERNAL_ERROR with its message; a good one answers', async () => {
  const e = await errorOf('/boom')
  assert.equal([e.status, e.code, e.message], [500, 'INTERNAL_ERROR', 'route failed'])
  const ok = await fetch(`http://${server.address}/ok`)
  assert.is(ok.status, 200)
  assert.equal(await ok.json(), {ok: true})
})

test.run()
