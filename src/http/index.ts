/**
 * `xref/http`: the Segment-compatible HTTP collector, as a fastify app built from plugins (the
 * server, the collector routes, the query routes, the health routes), and the one auth hook factory new routes
 * plug in with. Events go to an `EventSink`; `xref/nats` has the JetStream one.
 */
export { buildApp, markShuttingDown, isShuttingDown } from './app.ts';
export type { AppDeps, Readiness, XrefApp } from './app.ts';
export { createServer } from './server.ts';
export type { ServerOptions, XrefServer } from './server.ts';
export { collectorRoutes } from './collector-routes.ts';
export type { CollectorRoutesOptions } from './collector-routes.ts';
export { healthRoutes } from './health-routes.ts';
export type { HealthRoutesOptions } from './health-routes.ts';
export { authHooks, requireCredential, checkAuthConfig, INSECURE_NO_AUTH } from './auth.ts';
export type { AuthHooks, Credential, ReadTokensSetting, WriteKeysSetting } from './auth.ts';
export { collectorSettings } from './collector.ts';
export { MemorySink, SinkOverloadedError } from './sink.ts';
export type { EventSink, SinkReceipt } from './sink.ts';
export type { ErrorRecord, ErrorOrigin } from '../domain/error-record.ts';
export { queryRoutes } from './query-routes.ts';
export type { QueryRoutesOptions } from './query-routes.ts';
export { ReadModelQueries } from '../projection/queries.ts';
export { createMetrics, setEngineGauges } from './metrics.ts';
export type { EngineGaugeValues, MetricsOptions, RejectReason, XrefMetrics } from './metrics.ts';
export { segmentToEvent, eventTimestamp, SEGMENT_KINDS, SEGMENT_TYPES, SegmentMessageSchema, SegmentBatchSchema } from './segment.ts';
export type { SegmentMessage, SegmentBatch, SegmentOptions, SegmentRequest, SegmentType } from './segment.ts';
