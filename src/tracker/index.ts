/**
 * `xref/tracker`: emit semi-structured events from application code, with request contexts,
 * processors and a tree of backends delivering into xref (docs/tracker.md). The NATS backend is
 * not here: it is `xref/tracker/nats`, so this entry loads no NATS client.
 */
export { type TrackerOptions, type TrackerStats, Tracker, createTracker, uuidv7 } from './tracker.ts';
export { type ContextFrame, ContextStack } from './contexts.ts';
export { EventEmissionExit, type ProcessorCounters, type RegexFilterOptions, isEmissionExit, nameAllowlist, redact, regexFilter, runProcessors } from './processors.ts';
export { type RoutingBackendOptions, RoutingBackend, copyJson, routingBackend } from './routing-backend.ts';
export { type MemoryBackend, memoryBackend } from './memory-backend.ts';
export { type LogLevel, type LoggerBackendOptions, loggerBackend } from './logger-backend.ts';
export { getTracker, registerTracker, unregisterTracker } from './registry.ts';
export { type ConfigNode, type TrackerConfig, type TrackerConfigExtras, trackerFromConfig } from './tracker-config.ts';
export { type RequestContextOptions, type TrackerMiddlewareOptions, type TrackerPluginOptions, trackerMiddleware, trackerPlugin } from './middleware.ts';
export { CollectorRefusedError, HTTP_DEFAULTS, type HttpBackendOptions, httpBackend } from './http-backend.ts';
export type { DeliveryOptions, OverflowPolicy } from './delivery-queue.ts';
export type * from './types.ts';
