/**
 * Public face of the metrics: each thread's registry (`metrics`, written
 * where events happen), the aggregation of the workers' snapshots and the
 * Prometheus text format, and the HTTP listener the primary runs
 * (config [metrics] listen).
 */
export { metrics, Registry, METRICS, MAX_SERIES, DELIVERY_DELAY_BUCKETS, type Labels, type Sample, type MetricType } from "./registry.ts";
export { aggregate, exposition } from "./exposition.ts";
export { MetricsServer, CONTENT_TYPE, type MetricsServerOptions } from "./server.ts";
export { loopDelaySamples, processSamples } from "./process.ts";
