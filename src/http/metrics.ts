import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Why events (or whole requests, before their events could be read) were refused. */
export type RejectReason =
  | 'invalid_event'
  | 'schema_violation'
  | 'unknown_event_type'
  | 'future_timestamp'
  | 'event_too_large'
  | 'limit_exceeded'
  | 'invalid_json'
  | 'body_too_large'
  | 'invalid_request'
  | 'unauthorized'
  | 'unavailable';

/**
 * Every metric xref exposes on `GET /metrics`, on one prom-client Registry. The collector counts
 * the HTTP side; the engine side sets the `engine*` gauges (see `setEngineGauges`).
 */
export interface XrefMetrics {
  readonly registry: Registry;
  /** xref_http_events_received_total{route}: events read from request bodies. */
  readonly received: Counter<'route'>;
  /** xref_http_events_accepted_total{route}: events stored (acked by JetStream), not duplicates. */
  readonly accepted: Counter<'route'>;
  /** xref_http_events_duplicate_total{route}: events whose id was already stored (stored once). */
  readonly duplicates: Counter<'route'>;
  /** xref_http_rejected_total{reason}: events refused, or whole requests refused before their events were read. */
  readonly rejected: Counter<'reason'>;
  /** xref_http_request_duration_seconds{route,method,status}. */
  readonly requestDuration: Histogram<'route' | 'method' | 'status'>;
  /** xref_errors_total{reason,origin}: every rejection that makes an error record (origin http, engine), kept in full or not. */
  readonly errors: Counter<'reason' | 'origin'>;
  /** xref_errors_dropped_total{reason,origin}: of those, the ones only counted (over XREF_ERRORS_PER_SECOND of a reason in one second). */
  readonly errorsDropped: Counter<'reason' | 'origin'>;
  /** xref_engine_lag_events: inputs in XREF_IN the engine has not applied yet. */
  readonly engineLag: Gauge;
  /** xref_engine_live_actors: actors in memory. */
  readonly liveActors: Gauge;
  /** xref_engine_buffered_identifiers: unlinked identifiers whose events wait in a buffer. */
  readonly bufferedIdentifiers: Gauge;
  /** xref_engine_unmatched_events{reason}: events released unplaced (overflow, expired, junk, …) since start. */
  readonly unmatched: Gauge<'reason'>;
  /** xref_engine_audit_records{reason}: audit records (link, relink, conflict, refused, …) since start. */
  readonly audit: Gauge<'reason'>;
  /** xref_engine_waiting_for_nats: 1 while the engine waits for NATS to answer again (an outage), else 0. */
  readonly waitingForNats: Gauge;
  /** xref_engine_role{role}: 1 for this process's role (active: it holds the engine lease; standby). */
  readonly role: Gauge<'role'>;
  /** xref_suppressed_total: events the engine dropped because they carried a forgotten (suppressed) id (docs/erasure.md). */
  readonly suppressed: Counter;
}

export interface MetricsOptions {
  /** Registry to register on (default: a new one). */
  readonly registry?: Registry;
  /** Also collect prom-client's process metrics (heap, event loop lag, …); default true. */
  readonly processMetrics?: boolean;
}

/** Creates every xref metric on one registry; call once per process (or per test app). */
export function createMetrics(options: MetricsOptions = {}): XrefMetrics {
  const registry = options.registry ?? new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'xref_' });
  const registers = [registry];
  return {
    registry,
    received: new Counter({ name: 'xref_http_events_received_total', help: 'Events read from HTTP request bodies.', labelNames: ['route'], registers }),
    accepted: new Counter({ name: 'xref_http_events_accepted_total', help: 'Events stored in XREF_IN (acked by JetStream), duplicates excluded.', labelNames: ['route'], registers }),
    duplicates: new Counter({ name: 'xref_http_events_duplicate_total', help: 'Events whose id was already stored: stored once.', labelNames: ['route'], registers }),
    rejected: new Counter({
      name: 'xref_http_rejected_total',
      help: 'Events refused, by reason (whole requests when refused before their events could be read: invalid_json, body_too_large, unauthorized, invalid_request; unavailable counts the events not stored).',
      labelNames: ['reason'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'xref_http_request_duration_seconds',
      help: 'HTTP request latency, from the first byte to the response.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    errors: new Counter({
      name: 'xref_errors_total',
      help: 'Rejections recorded as error records (XREF_ERRORS), by reason and origin (http, engine), whether kept in full or only counted.',
      labelNames: ['reason', 'origin'],
      registers,
    }),
    errorsDropped: new Counter({
      name: 'xref_errors_dropped_total',
      help: 'Rejections whose error record was not kept in full (over XREF_ERRORS_PER_SECOND of one reason in one second), by reason and origin.',
      labelNames: ['reason', 'origin'],
      registers,
    }),
    engineLag: new Gauge({ name: 'xref_engine_lag_events', help: 'Inputs in XREF_IN not yet applied by the engine.', registers }),
    liveActors: new Gauge({ name: 'xref_engine_live_actors', help: 'Actors in memory.', registers }),
    bufferedIdentifiers: new Gauge({ name: 'xref_engine_buffered_identifiers', help: 'Unlinked identifiers whose events wait in a buffer.', registers }),
    unmatched: new Gauge({ name: 'xref_engine_unmatched_events', help: 'Events released unplaced since the engine started, by reason.', labelNames: ['reason'], registers }),
    audit: new Gauge({ name: 'xref_engine_audit_records', help: 'Audit records published since the engine started, by reason.', labelNames: ['reason'], registers }),
    role: new Gauge({ name: 'xref_engine_role', help: "This process's engine role: 1 for active (it holds the engine lease) or standby.", labelNames: ['role'], registers }),
    waitingForNats: new Gauge({ name: 'xref_engine_waiting_for_nats', help: '1 while the engine waits for NATS to answer again (it retries by itself), else 0.', registers }),
    suppressed: new Counter({ name: 'xref_suppressed_total', help: 'Events dropped by the engine because they carried a forgotten (suppressed) id; each one is audited on xref.audit.suppressed.', registers }),
  };
}

/** What the engine side knows; every field optional (set what you have). */
export interface EngineGaugeValues {
  readonly lag?: number;
  readonly liveActors?: number;
  readonly bufferedIdentifiers?: number;
  /** A total, or counts by reason. */
  readonly unmatched?: number | Readonly<Record<string, number>>;
  /** A total (reason "all"), or counts by reason. */
  readonly audit?: number | Readonly<Record<string, number>>;
  /** Inputs the engine refused since it started, by reason (its stats' `errorsBy`): xref_errors_total{origin="engine"}. */
  readonly errors?: Readonly<Record<string, number>>;
  /** Of those, the ones whose record was only counted (`errorsDroppedBy`): xref_errors_dropped_total{origin="engine"}. */
  readonly errorsDropped?: Readonly<Record<string, number>>;
  /**
   * Events the engine dropped since it started because they carried a suppressed id (its stats'
   * `suppressed`): xref_suppressed_total. A total below the last one is a new engine's (a standby
   * that took over), counted from 0.
   */
  readonly suppressed?: number;
  /** What the engine waits for NATS to answer (empty: nothing). */
  readonly waitingForNats?: readonly string[];
  readonly role?: 'standby' | 'active' | 'stopped';
}

/** Per error counter: the engine totals object last added to it (one per engine run), and the totals it held then. */
const engineTotals = new WeakMap<Counter<'reason' | 'origin'>, { source: object; seen: Map<string, number> }>();

/**
 * Brings a counter's `origin="engine"` series up to the engine's totals since it started: adds
 * what grew since the last call. Totals of another object come from an engine started since
 * (a standby taking over): its counts start from 0, so all of them are new.
 */
function addEngineTotals(counter: Counter<'reason' | 'origin'>, totals: Readonly<Record<string, number>>): void {
  let last = engineTotals.get(counter);
  if (last === undefined || last.source !== totals) engineTotals.set(counter, (last = { source: totals, seen: new Map() }));
  for (const [reason, total] of Object.entries(totals)) {
    const added = total - (last.seen.get(reason) ?? 0);
    if (added > 0) counter.inc({ reason, origin: 'engine' }, added);
    last.seen.set(reason, total);
  }
}

/** Per counter of one engine total: the total it was last brought up to. */
const engineTotal = new WeakMap<Counter, number>();

/** Brings `counter` up to the engine's `total` since it started (a lower total: a new engine, whose counts start from 0). */
function addEngineTotal(counter: Counter, total: number): void {
  const last = engineTotal.get(counter) ?? 0;
  const added = total < last ? total : total - last;
  if (added > 0) counter.inc(added);
  engineTotal.set(counter, total);
}

/** Sets the engine gauges (and the engine's error counters) from one snapshot of the engine's figures. */
export function setEngineGauges(metrics: XrefMetrics, values: EngineGaugeValues): void {
  if (values.errors !== undefined) addEngineTotals(metrics.errors, values.errors);
  if (values.suppressed !== undefined) addEngineTotal(metrics.suppressed, values.suppressed);
  if (values.errorsDropped !== undefined) addEngineTotals(metrics.errorsDropped, values.errorsDropped);
  if (values.lag !== undefined) metrics.engineLag.set(values.lag);
  if (values.liveActors !== undefined) metrics.liveActors.set(values.liveActors);
  if (values.bufferedIdentifiers !== undefined) metrics.bufferedIdentifiers.set(values.bufferedIdentifiers);
  if (values.waitingForNats !== undefined) metrics.waitingForNats.set(values.waitingForNats.length > 0 ? 1 : 0);
  if (values.role !== undefined) for (const role of ['active', 'standby'] as const) metrics.role.set({ role }, values.role === role ? 1 : 0);
  for (const [gauge, value] of [
    [metrics.unmatched, values.unmatched],
    [metrics.audit, values.audit],
  ] as const) {
    if (value === undefined) continue;
    if (typeof value === 'number') gauge.set({ reason: 'all' }, value);
    else for (const [reason, count] of Object.entries(value)) gauge.set({ reason }, count);
  }
}
