/** Observability: the master's metrics and HTTP routes, client/segment-owner metrics, a /metrics parser. */
export {instrumentService, MASTER_OPS, MasterMetrics, RPC_DURATION_BUCKETS, VALUE_SIZE_BUCKETS, type MasterMetricsOptions, type MasterOpName} from './master.js'
export {
  masterHttpRoutes,
  observeMaster,
  type HealthDocument,
  type MasterHttpInfo,
  type MasterRole,
  type ObservedMaster,
  type SegmentsDocument,
} from './http-routes.js'
export {ClientMetrics, startMetricsServer, type ClientMetricsOptions, type ClientOp, type TransferPath} from './client.js'
export {histogramQuantile, MetricSet, parsePrometheusText, quantileOfBuckets, type Sample} from './parse.js'
