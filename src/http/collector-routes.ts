/**
 * The collector's routes, Segment's tracking API and xref's own, as one plugin:
 *
 *   POST /v1/events                      native envelopes (one, or an array)       write key (header)
 *   POST /v1/batch (/v1/import, /v1/b)   Segment batch                             write key (header or body)
 *   POST /v1/track|identify|page|screen|group|alias (and /v1/t /i /p /s /g /a)    write key (header or body)
 *   GET  /v1/projects/:writeKey/settings  analytics.js's settings document        the key in the path
 *
 * A 2xx means every accepted event of the request is stored (the sink confirmed it).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Limits } from '../domain/limits.ts';
import { INSECURE_NO_AUTH, SecretVerifier, type WriteKeysSetting, requireCredential } from './auth.ts';
import { type PublicOrigin, requestOrigin, settingsDocument } from './cdn-settings.ts';
import { HttpError } from './errors.ts';
import { type IngestResult, allRejected, prepareEvents, rejectReason, storeAll } from './ingest.ts';
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
  /** Clock of `receivedAt`. */
  readonly now: () => number;
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
});
const response = { 200: IngestResponse };

export const collectorRoutes: FastifyPluginAsyncTypebox<CollectorRoutesOptions> = async (app, options) => {
  const { limits, metrics, publisher, writeKeys, now, segment } = options;
  const refused = () => metrics.rejected.inc({ reason: 'unauthorized' });

  async function ingest(route: string, items: readonly unknown[], toEvent: (item: unknown) => unknown): Promise<IngestResult> {
    metrics.received.inc({ route }, items.length);
    if (items.length === 0) throw new HttpError('XREF_INVALID_EVENT', 'the request holds no events: send at least one', { field: route === '/v1/events' ? 'body' : 'batch' });
    const { prepared, rejected } = prepareEvents(items, toEvent, limits);
    for (const r of rejected) metrics.rejected.inc({ reason: rejectReason(r) });
    if (prepared.length === 0) throw allRejected(rejected);
    let duplicates: number;
    try {
      duplicates = await storeAll(publisher, prepared, options.publishDeadlineMs);
    } catch (error) {
      metrics.rejected.inc({ reason: 'unavailable' }, prepared.length);
      throw error;
    }
    metrics.accepted.inc({ route }, prepared.length - duplicates);
    if (duplicates > 0) metrics.duplicates.inc({ route }, duplicates);
    return { success: true, accepted: prepared.length - duplicates, duplicates, rejected };
  }

  // xref's own API takes the key in the Authorization header only
  const nativeRoutes: FastifyPluginAsyncTypebox = async (native) => {
    requireCredential(native, { kind: 'write-key', keys: writeKeys }, refused);
    native.post('/v1/events', { schema: { body: NativeBody, response } }, async (request) => {
      const body = request.body;
      return ingest('/v1/events', Array.isArray(body) ? body : [body], (item) => item);
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
        return ingest(path, batch, (item) => segmentToEvent(item, undefined, around, segment));
      });
    }
    for (const type of SEGMENT_TYPES) {
      for (const path of [`/v1/${type}`, `/v1/${type[0]}`]) {
        tracking.post(path, { schema: { body: MessageBody, response } }, async (request) => {
          const around = { receivedAt: now() };
          return ingest(path, [request.body], (item) => segmentToEvent(item, type satisfies SegmentType, around, segment));
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
