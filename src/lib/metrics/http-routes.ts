/**
 * The master's HTTP endpoints besides the server plumbing (S16, reference section 9):
 * `/metrics`, `/health`, `/query_key?key=K`, `/get_all_segments`. None of them grants a lease
 * (Query, not GetReplicaList) or changes state.
 *
 * `observeMaster(service)` is the one hook server.ts calls: it returns the instrumented calls to
 * hand to the gRPC handlers and the routes to serve.
 */
import type http from 'node:http'

import {isMooncakeError} from '../errors.js'
import type {MasterCalls} from '../master/api.js'
import {type HttpResponse, type HttpRoute, json} from '../master/http.js'
import type {MasterService} from '../master/service.js'
import {instrumentService, MasterMetrics, type MasterMetricsOptions} from './master.js'

export type MasterRole = 'leader' | 'standby'

export interface MasterHttpInfo {
  /** Package version of the master. */
  version: string
  /** The address clients reach the leader at (`--advertise`, else the bound gRPC address). */
  leader: string
  /** Current role and readiness, for HA; @default always the ready leader */
  role?: () => {role: MasterRole; leader?: string; ready: boolean}
  /** Unix ms the master started. @default when the routes were created */
  startedAt?: number
  /** The master's wall clock (Unix ms), reported in /health for clock-skew checks. @default Date.now */
  now?: () => number
}

/** The /health document. `uptime` is in seconds, `time` the master's clock in Unix ms. */
export interface HealthDocument {
  status: 'ok'
  role: MasterRole
  leader: string | null
  ready: boolean
  version: string
  uptime: number
  time: number
  viewVersion: number
}

/** The /get_all_segments document; `now` is the master's clock, so `now - lastPingAt` needs no synchronised clocks. */
export interface SegmentsDocument {
  now: number
  clientTtlMs: number
  segments: ReturnType<MasterService['getAllSegments']>
}

function error(status: number, code: string, message: string): HttpResponse {
  return json({success: false, error: {code, message}}, status)
}

function queryParam(req: http.IncomingMessage, name: string): string | null {
  return new URL(req.url ?? '/', 'http://localhost').searchParams.get(name)
}

/** Status code of an ErrorCode on the admin endpoints. */
function statusOf(code: string): number {
  if (code === 'OBJECT_NOT_FOUND' || code === 'SEGMENT_NOT_FOUND') return 404
  if (code === 'INVALID_PARAMS' || code === 'INVALID_KEY') return 400
  return 500
}

export function masterHttpRoutes(service: MasterService, metrics: MasterMetrics, info: MasterHttpInfo): Record<string, HttpRoute> {
  const now = info.now ?? Date.now
  const startedAt = info.startedAt ?? now()
  return {
    '/metrics': async () => ({status: 200, contentType: metrics.contentType, body: await metrics.text()}),
    '/health': () => {
      const r = info.role?.() ?? {role: 'leader' as const, leader: info.leader, ready: true}
      const t = now()
      const doc: HealthDocument = {
        status: 'ok',
        role: r.role,
        leader: r.leader ?? null,
        ready: r.ready,
        version: info.version,
        uptime: Math.max(0, Math.round((t - startedAt) / 100) / 10),
        time: t,
        viewVersion: service.serviceReady().viewVersion,
      }
      return json(doc)
    },
    '/query_key': (req) => {
      const key = queryParam(req, 'key')
      if (key === null || key === '') return error(400, 'INVALID_PARAMS', 'missing ?key=')
      try {
        return json({success: true, data: service.query(key)})
      } catch (err) {
        if (isMooncakeError(err)) return error(statusOf(err.code), err.code, err.message)
        throw err
      }
    },
    '/get_all_segments': () => {
      const doc: SegmentsDocument = {now: now(), clientTtlMs: service.options.clientTtlMs, segments: service.getAllSegments()}
      return json(doc)
    },
  }
}

export interface ObservedMaster {
  /** The service's calls, counted and timed: give these to the gRPC handlers. */
  calls: MasterCalls
  metrics: MasterMetrics
  /** The HTTP routes, once the leader address is known. */
  routes(info: MasterHttpInfo): Record<string, HttpRoute>
}

/** Metrics for a master: instrumented calls plus the HTTP routes (see server.ts). */
export function observeMaster(service: MasterService, options: MasterMetricsOptions = {}): ObservedMaster {
  const metrics = new MasterMetrics(service, options)
  const startedAt = Date.now()
  return {
    calls: instrumentService(service, metrics),
    metrics,
    routes: (info) => masterHttpRoutes(service, metrics, {startedAt, ...info}),
  }
}
