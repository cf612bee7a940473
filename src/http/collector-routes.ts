/**
 * The collector's routes, Segment's tracking API and xref's own, as one plugin:
 *
 *   POST /v1/events                      native envelopes (one, or an array)       write key (header)
 *   POST /v1/batch (/v1/import, /v1/b)   Segment batch                             write key (header or body)
 *   POST /v1/track|identify|page|screen|group|alias (and /v1/t /i /p /s /g /a)    write key (header or body)
 *   GET  /v1/projects/:writeKey/settings  analytics.js's settings document        the key in the path
 *
 * A 2xx means every accepted event of the request is stored (the sink confirmed it); its `seq` is
 * the highest XREF_IN sequence among them. Every item refused (envelope, limits, the config's
 * payload rules) is answered by index, and becomes an error record handed to the sink (at most
 * `errorsPerSecond` per reason per second in full; the rest counted on /metrics).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { type Config, defaultConfig } from '../domain/config.ts';
import { ErrorBudget } from '../domain/error-budget.ts';
import { type ErrorRecord, errorRecord, reasonOf } from '../domain/error-record.ts';
import type { Limits } from '../domain/limits.ts';
import { payloadRules } from '../domain/payload-rules.ts';
import { settingDefaults } from '../settings.ts';
import { INSECURE_NO_AUTH, SecretVerifier, type WriteKeysSetting, requireCredential } from './auth.ts';
import { type PublicOrigin, requestOrigin, settingsDocument } from './cdn-settings.ts';
import { HttpError } from './errors.ts';
import { type IngestResult, type RefusedItem, allRejected, prepareEvents, rejectReason, storeAll } from './ingest.ts';
import type { XrefMetrics } from './metrics.ts';
import { SEGMENT_TYPES, SegmentBatchSchema, type SegmentOptions, type SegmentType, segmentToEvent } from './segment.ts';
import type { EventSink } from './sink.ts';

/** What the routes work with, already checked (`buildApp` checks them). */
export interface CollectorRoutesOptions {
  /** Where accepted events go; a 2xx is sent only once it confirmed every one. */
  readonly publisher: EventSink;
  readonly writeKeys: WriteKeysSetting;
  /** eventBytes (per event) is enforced here. */
  readonly limits: Limits;
  readonly metrics: XrefMetrics;
  /** How long a request waits for the sink before a 503 with Retry-After. */
  readonly publishDeadlineMs: number;
  readonly segment: SegmentOptions;
  /** Clock of `receivedAt`, of the future-timestamp check, and of the error records. */
  readonly now: () => number;
  /** The identity config, whose payload rules (schemas, unknownTypes, maxFutureMs) every event must pass (default: the defaults). */
  readonly config?: Config;
  /** Error records kept in full per reason per second (XREF_ERRORS_PER_SECOND; default: the setting's default). */
  readonly errorsPerSecond?: number;
  /** Where the settings document sends browsers; undefined: where the request says this server is. */
  readonly publicOrigin: PublicOrigin | undefined;
}

const NativeBody = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Array(Type.Unknown())], {
  description: 'must be an event object or an array of events',
});
const MessageBody = Type.Object({}, { additionalProperties: true, description: 'must be a JSON object (a Segment message)' });

const Rejection = Type.Object({ index: Type.Integer(), field: Type.Optional(Type.String()), error: Type.String(), code: Type.String() });
const IngestResponse = Type.Object({
  success: Type.Literal(true),
  accepted: Type.Integer(),
  duplicates: Type.Integer(),
  rejected: Type.Array(Rejection),
  seq: Type.Integer({ description: 'the highest XREF_IN sequence among the events this request stored or found stored' }),
});
const response = { 200: IngestResponse };

export const collectorRoutes: FastifyPluginAsyncTypebox<CollectorRoutesOptions> = async (app, options) => {
  const { limits, metrics, publisher, writeKeys, now, segment } = options;
  const refused = () => metrics.rejected.inc({ reason: 'unauthorized' });
  const rules = payloadRules(options.config ?? defaultConfig());
  const budget = new ErrorBudget(options.errorsPerSecond ?? settingDefaults().errorsPerSecond);

  /** The error records of the refused items, as many as the budget keeps, to the sink; every one counted. */
  function record(route: string, items: readonly unknown[], refusedItems: readonly RefusedItem[], atMs: number): void {
    const kept: ErrorRecord[] = [];
    for (const { index, error, candidate } of refusedItems) {
      const labels = { reason: reasonOf(error.code), origin: 'http' };
      metrics.errors.inc(labels);
      if (!budget.keep(labels.reason, atMs)) {
        metrics.errorsDropped.inc(labels);
        continue;
      }
      kept.push(errorRecord(error, { id: randomUUID(), origin: 'http', source: route, atMs, raw: withoutWriteKey(items[index]), candidate, index }));
    }
    if (kept.length > 0) publisher.recordErrors(kept);
  }

  async function ingest(route: string, items: readonly unknown[], toEvent: (item: unknown) => unknown, arrivalMs: number): Promise<IngestResult> {
    metrics.received.inc({ route }, items.length);
    if (items.length === 0) throw new HttpError('XREF_INVALID_EVENT', 'the request holds no events: send at least one', { field: route === '/v1/events' ? 'body' : 'batch' });
    const { prepared, rejected, refused: refusedItems } = prepareEvents(items, toEvent, { limits, rules, arrivalMs });
    for (const r of rejected) metrics.rejected.inc({ reason: rejectReason(r) });
    if (refusedItems.length > 0) record(route, items, refusedItems, arrivalMs);
    if (prepared.length === 0) throw allRejected(rejected);
    let stored: { duplicates: number; seq: number };
    try {
      stored = await storeAll(publisher, prepared, options.publishDeadlineMs);
    } catch (error) {
      metrics.rejected.inc({ reason: 'unavailable' }, prepared.length);
      throw error;
    }
    const { duplicates, seq } = stored;
    metrics.accepted.inc({ route }, prepared.length - duplicates);
    if (duplicates > 0) metrics.duplicates.inc({ route }, duplicates);
    return { success: true, accepted: prepared.length - duplicates, duplicates, rejected, seq };
  }

  // xref's own API takes the key in the Authorization header only
  const nativeRoutes: FastifyPluginAsyncTypebox = async (native) => {
    requireCredential(native, { kind: 'write-key', keys: writeKeys }, refused);
    native.post('/v1/events', { schema: { body: NativeBody, response } }, async (request) => {
      const body = request.body;
      return ingest('/v1/events', Array.isArray(body) ? body : [body], (item) => item, now());
    });
  };
  app.register(nativeRoutes);

  // Segment's API also takes it as "writeKey" in the body
  const trackingRoutes: FastifyPluginAsyncTypebox = async (tracking) => {
    requireCredential(tracking, { kind: 'write-key', keys: writeKeys, inBody: true }, refused);
    for (const path of ['/v1/batch', '/v1/import', '/v1/b']) {
      tracking.post(path, { schema: { body: SegmentBatchSchema, response } }, async (request) => {
        const { batch, sentAt, context } = request.body;
        const around = { receivedAt: now(), sentAt, context };
        return ingest(path, batch, (item) => segmentToEvent(item, undefined, around, segment), around.receivedAt);
      });
    }
    for (const type of SEGMENT_TYPES) {
      for (const path of [`/v1/${type}`, `/v1/${type[0]}`]) {
        tracking.post(path, { schema: { body: MessageBody, response } }, async (request) => {
          const around = { receivedAt: now() };
          return ingest(path, [request.body], (item) => segmentToEvent(item, type satisfies SegmentType, around, segment), around.receivedAt);
        });
      }
    }
  };
  app.register(trackingRoutes);

  // analytics.js (AnalyticsBrowser.load({ writeKey, cdnURL: '<this server>' })) reads its settings here
  const verifier = writeKeys === INSECURE_NO_AUTH ? undefined : new SecretVerifier(writeKeys, 'XREF_WRITE_KEYS');
  app.get('/v1/projects/:writeKey/settings', async (request) => {
    const { writeKey } = request.params as { writeKey: string };
    if (verifier !== undefined && !verifier.verify(writeKey)) {
      refused();
      throw new HttpError('XREF_NOT_FOUND', "no settings for this write key: it is not one of this collector's keys (XREF_WRITE_KEYS)", { field: 'writeKey' });
    }
    return settingsDocument(writeKey, options.publicOrigin ?? requestOrigin(request.headers, request.protocol));
  });
};

/** An item as its error record keeps it: without a Segment `writeKey` (a secret never stored). */
function withoutWriteKey(item: unknown): unknown {
  if (typeof item !== 'object' || item === null || Array.isArray(item) || !Object.hasOwn(item, 'writeKey')) return item;
  const { writeKey: _secret, ...rest } = item as Record<string, unknown>;
  return rest;
}
