/**
 * The HTTP collector: a fastify app built from its dependencies, not listening (tests use
 * `inject()`; `xref serve` calls `listen`). Routes:
 *
 *   POST /v1/events                      native envelopes (one, or an array)       write key
 *   POST /v1/batch (/v1/import, /v1/b)   Segment batch                             write key
 *   POST /v1/track|identify|page|screen|group|alias (and /v1/t /i /p /s /g /a)    write key
 *   GET  /v1/projects/:writeKey/settings  analytics.js's settings document        the key in the path
 *   GET  /livez  /readyz  /metrics                                                 open
 *
 * A 2xx means every accepted event of the request is stored (JetStream acked it).
 */
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import Type, { type TSchema } from 'typebox';
import { XrefError, quote } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import { INSECURE_NO_AUTH, WriteKeyVerifier, type WriteKeysSetting, basicUserName, missingKey, notBasic, wrongKey } from './auth.ts';
import { type PublicOrigin, parsePublicUrl, requestOrigin, settingsDocument } from './cdn-settings.ts';
import { decodedBody, isDecodingError } from './content-encoding.ts';
import { HttpError, errorBody, statusOf } from './errors.ts';
import { type IngestResult, allRejected, prepareEvents, rejectReason, storeAll } from './ingest.ts';
import type { RejectReason, XrefMetrics } from './metrics.ts';
import { checker } from './schema.ts';
import { DEFAULT_SEGMENT_USER_KIND, SEGMENT_KINDS, SEGMENT_TYPES, SegmentBatchSchema, type SegmentType, segmentToEvent } from './segment.ts';
import type { EventSink } from './sink.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, boolean | string>;
  /** This process's engine: `active` (it holds the engine lease) or `standby`; absent without one. */
  readonly engine?: 'active' | 'standby';
}

export interface AppDeps {
  /** Where accepted events go; a 2xx is sent only once it confirmed every one. */
  readonly publisher: EventSink;
  /** The accepted write keys, or 'insecure-no-auth' (from `checkAuthConfig`). */
  readonly writeKeys: WriteKeysSetting;
  /** eventBytes (per event) and batchBytes (per request body) are enforced here. */
  readonly limits: Limits;
  readonly logger: Logger;
  /** NATS connected, streams bound, engine caught up (see `natsReadiness`). */
  readonly readiness: () => Promise<Readiness>;
  /** From `createMetrics()`: served on /metrics, counted here. */
  readonly metrics: XrefMetrics;
  /** How long a request waits for the sink before a 503 with Retry-After. */
  readonly publishDeadlineMs: number;
  /** The internal kind a Segment userId maps to (default user_id). */
  readonly segmentUserKind?: string;
  /** Clock of `receivedAt` (default Date.now). */
  readonly now?: () => number;
  /** Id of a Segment message without messageId (default a random UUID). */
  readonly newId?: () => string;
  /** How long /readyz waits for `readiness()` (default 2000 ms). */
  readonly readinessTimeoutMs?: number;
  /**
   * The URL browsers reach this server at (`XREF_PUBLIC_URL`, e.g. https://xref.example.com): where
   * the analytics.js settings document sends events. Default: the request's Host header and
   * X-Forwarded-Proto.
   */
  readonly publicUrl?: string;
}

export type XrefApp = FastifyInstance;

const shuttingDown = new WeakSet<object>();

/** From now on /readyz answers 503 (call it first thing on SIGTERM, before `app.close()`). */
export function markShuttingDown(app: XrefApp): void {
  shuttingDown.add(app);
}

export function isShuttingDown(app: XrefApp): boolean {
  return shuttingDown.has(app);
}

const ROUTES_TEXT =
  'POST /v1/events, POST /v1/batch, POST /v1/{track,identify,page,screen,group,alias}, GET /v1/projects/<write key>/settings, GET /livez, GET /readyz, GET /metrics';

/** The media types whose bodies are read as JSON. */
const JSON_MEDIA_TYPES = 'application/json, text/plain (analytics.js) or application/x-www-form-urlencoded (RudderStack\'s SDKs)';

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

/** Parses application/json and text/plain (analytics.js sends JSON as text/plain) bodies as JSON. */
function parseJson(_request: FastifyRequest, body: string | Buffer, done: (error: Error | null, value?: unknown) => void): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim().length === 0) {
    done(new HttpError(400, 'XREF_INVALID_JSON', 'the body is empty: send a JSON object or array', { field: 'body' }));
    return;
  }
  try {
    const value: unknown = text.includes('"__proto__"')
      ? JSON.parse(text, (key, v: unknown) => {
          if (key === '__proto__') throw new SyntaxError('a "__proto__" key is refused');
          return v;
        })
      : JSON.parse(text);
    done(null, value);
  } catch (error) {
    done(new HttpError(400, 'XREF_INVALID_JSON', `the body is not valid JSON (${(error as Error).message})`, { field: 'body' }));
  }
}

/**
 * RudderStack's Node SDK (axios) labels its JSON, gzipped or not, application/x-www-form-urlencoded:
 * such a body is read as JSON when it is JSON. A real form (`a=1&b=2`) is refused naming the
 * Content-Type, since xref takes JSON only.
 */
function parseLabelledJson(request: FastifyRequest, body: string | Buffer, done: (error: Error | null, value?: unknown) => void): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const start = text.trimStart()[0];
  if (start === undefined || start === '{' || start === '[') {
    parseJson(request, text, done);
    return;
  }
  done(
    new HttpError(
      415,
      'XREF_INVALID_REQUEST',
      `Content-Type ${quote(request.headers['content-type'])} is read as JSON only, and this body is not JSON (it does not start with { or [): send a JSON body`,
      { field: 'content-type' },
    ),
  );
}

/** A request path as it may be logged: no query, no write key (the settings route holds one). */
function loggedPath(url: string): string {
  return url.split('?')[0]!.replace(/^(\/v1\/projects\/)[^/]*/, '$1[redacted]');
}

/**
 * Whether the message of an answered 4xx may go to the log: it quotes neither a key nor anything
 * from the body (the other messages quote event values, or JSON.parse's excerpt of the body).
 */
function messageIsLoggable(error: XrefError): boolean {
  return error.code === 'XREF_UNAUTHORIZED' || error.field === 'content-type' || error.field === 'content-encoding' || error.field === 'host' || (error.code === 'XREF_LIMIT_EXCEEDED' && error.field === 'body');
}

/** What a refused request logs (at info): the status and code, never the key or the body. */
function refusalLog(error: XrefError, status: number): Record<string, unknown> {
  const entry: Record<string, unknown> = { status, code: error.code };
  if (error.field !== undefined) entry.field = error.field;
  if (messageIsLoggable(error)) entry.why = error.message;
  const rejected = error instanceof HttpError ? error.body.rejected : undefined;
  if (Array.isArray(rejected)) entry.rejected = rejected.map((r: { index: number; field?: string; code: string }) => ({ index: r.index, field: r.field, code: r.code }));
  return entry;
}

/** A fastify error (or anything thrown) as the XrefError to answer with, and what to count. */
function asXrefError(error: FastifyError | Error, limits: Limits, request: FastifyRequest): { error: XrefError; reason?: RejectReason } {
  if (error instanceof HttpError && error.code === 'XREF_INVALID_JSON') return { error, reason: 'invalid_json' };
  if (error instanceof HttpError && (error.field === 'content-encoding' || error.field === 'content-type')) return { error, reason: 'invalid_request' };
  if (error instanceof XrefError) return { error };
  if (isDecodingError(error)) {
    const encoding = quote(request.headers['content-encoding']);
    return {
      error: new HttpError(400, 'XREF_INVALID_REQUEST', `the body could not be decompressed as Content-Encoding ${encoding} says (${error.message})`, { field: 'content-encoding' }),
      reason: 'invalid_request',
    };
  }
  const code = (error as FastifyError).code;
  const status = (error as FastifyError).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        error: new HttpError(413, 'XREF_LIMIT_EXCEEDED', `the request body is over the limit of ${limits.batchBytes} bytes: send fewer events per request`, { field: 'body' }),
        reason: 'body_too_large',
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: new HttpError(400, 'XREF_INVALID_JSON', 'the body is not valid JSON', { field: 'body' }), reason: 'invalid_json' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error: new HttpError(
          415,
          'XREF_INVALID_REQUEST',
          `Content-Type ${request.headers['content-type'] === undefined ? '(none)' : quote(request.headers['content-type'])} is not supported: send a JSON body labelled ${JSON_MEDIA_TYPES}`,
          { field: 'content-type' },
        ),
        reason: 'invalid_request',
      };
    default:
      if (typeof status === 'number' && status >= 400 && status < 500) {
        return { error: new HttpError(status, 'XREF_INVALID_REQUEST', error.message), reason: 'invalid_request' };
      }
      return { error: new HttpError(500, 'XREF_INTERNAL', 'internal error: the request was not handled (see the server log)', { cause: error }) };
  }
}

/** Builds the collector. Throws an XrefError when the deps are not usable (no write keys, …). */
export function buildApp(deps: AppDeps): XrefApp {
  const { limits, metrics, publisher } = deps;
  if (deps.writeKeys !== INSECURE_NO_AUTH && deps.writeKeys.size === 0) {
    throw new XrefError('XREF_INVALID_CONFIG', 'the HTTP collector has no write keys: set XREF_WRITE_KEYS=key1,key2, or pass --insecure-no-auth to accept every request', {
      field: 'XREF_WRITE_KEYS',
    });
  }
  if (!Number.isSafeInteger(deps.publishDeadlineMs) || deps.publishDeadlineMs < 1) {
    throw new XrefError('XREF_INVALID_CONFIG', `publishDeadlineMs must be a positive integer, got ${deps.publishDeadlineMs}`, { field: 'publishDeadlineMs' });
  }
  const publicOrigin: PublicOrigin | undefined = parsePublicUrl(deps.publicUrl);
  const userKind = deps.segmentUserKind ?? DEFAULT_SEGMENT_USER_KIND;
  if (Object.values<string>(SEGMENT_KINDS).includes(userKind)) {
    throw new XrefError('XREF_INVALID_CONFIG', `the Segment user kind cannot be ${userKind}: that kind holds anonymous ids`, { field: 'XREF_SEGMENT_USER_KIND' });
  }
  const verifier = deps.writeKeys === INSECURE_NO_AUTH ? undefined : new WriteKeyVerifier(deps.writeKeys);
  const now = deps.now ?? Date.now;
  const segmentOptions = { userKind, limits, ...(deps.newId === undefined ? {} : { newId: deps.newId }) };

  const logger = deps.logger.child(
    deps.logger.bindings().component === undefined ? { component: 'http' } : {},
    {
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'writeKey', 'body.writeKey', 'req.body.writeKey'],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: FastifyRequest) => ({ method: req.method, url: loggedPath(req.url), headers: req.headers, remoteAddress: req.ip }),
      },
    },
  );
  if (verifier === undefined) logger.warn('accepting events without a write key (--insecure-no-auth)');

  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.batchBytes,
    return503OnClosing: false, // answered below, in xref's error format and with Retry-After
  }).withTypeProvider<TypeBoxTypeProvider>();

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    shuttingDown.add(app);
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!closing || !request.url.startsWith('/v1/')) return;
    void reply.header('connection', 'close');
    throw new HttpError(503, 'XREF_NOT_READY', 'the collector is shutting down: send the request again (the same ids are stored once)', {
      headers: { 'retry-after': '1' },
    });
  });

  app.setValidatorCompiler(({ schema }) => {
    const check = checker(schema as TSchema, 'XREF_INVALID_REQUEST');
    return (data: unknown) => (check.check(data) ? { value: data } : { error: check.explain(data, 'body') });
  });
  app.addHook('preParsing', async (request, _reply, payload) => decodedBody(request.headers['content-encoding'], payload));
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'string' }, parseJson);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, parseLabelledJson);

  app.setErrorHandler((raw, request, reply) => {
    const { error, reason } = asXrefError(raw instanceof Error ? raw : new Error(String(raw)), limits, request);
    if (reason !== undefined) metrics.rejected.inc({ reason });
    const status = statusOf(error);
    if (status === 503) request.log.warn({ req: request, code: error.code, why: error.message }, 'events not stored: 503');
    else if (status >= 500) request.log.error({ err: error.cause ?? error, req: request }, 'request failed');
    else if (status >= 400) request.log.info({ req: request, ...refusalLog(error, status) }, `request refused: ${status} ${error.code}`);
    if (error instanceof HttpError) void reply.headers(error.headers);
    return reply.code(status).send(errorBody(error));
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new XrefError('XREF_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}: the routes are ${ROUTES_TEXT}`);
    request.log.info({ req: request, ...refusalLog(error, 404) }, 'request refused: 404 XREF_NOT_FOUND');
    return reply.code(404).send(errorBody(error));
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'none';
    metrics.requestDuration.observe({ route, method: request.method, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    request.log.debug({ req: request, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });

  // Segment's browser library posts cross-origin (JSON as text/plain, write key in the body).
  app.addHook('onSend', async (request, reply) => {
    if (request.url.startsWith('/v1/')) void reply.header('access-control-allow-origin', '*');
  });
  // analytics.js sends Authorization, X-Retry-Count on a retry, and any headers a site adds
  app.options('/v1/*', async (request, reply) =>
    reply
      .code(204)
      .headers({
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': headerText(request.headers['access-control-request-headers']) ?? 'Content-Type, Authorization, X-Retry-Count',
        'access-control-max-age': '86400',
        vary: 'Access-Control-Request-Headers',
      })
      .send(),
  );

  /** Requests whose write key is to be read from the body (no Authorization header). */
  const keyInBody = new WeakSet<FastifyRequest>();
  const authenticate = (bodyAllowed: boolean) => async (request: FastifyRequest) => {
    if (verifier === undefined) return;
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      if (bodyAllowed) {
        keyInBody.add(request);
        return;
      }
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw missingKey(false);
    }
    const key = basicUserName(header);
    if (key === undefined) {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw notBasic();
    }
    if (!verifier.verify(key)) {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw wrongKey('header');
    }
  };
  const authenticateBody = async (request: FastifyRequest) => {
    if (verifier === undefined || !keyInBody.has(request)) return;
    const key = (request.body as { writeKey?: unknown } | null)?.writeKey;
    if (typeof key !== 'string' || key === '') {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw missingKey(true);
    }
    if (!verifier.verify(key)) {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw wrongKey('body');
    }
  };

  async function ingest(route: string, items: readonly unknown[], toEvent: (item: unknown) => unknown): Promise<IngestResult> {
    metrics.received.inc({ route }, items.length);
    if (items.length === 0) throw new HttpError(400, 'XREF_INVALID_EVENT', 'the request holds no events: send at least one', { field: route === '/v1/events' ? 'body' : 'batch' });
    const { prepared, rejected } = prepareEvents(items, toEvent, limits);
    for (const r of rejected) metrics.rejected.inc({ reason: rejectReason(r) });
    if (prepared.length === 0) throw allRejected(rejected);
    let duplicates: number;
    try {
      duplicates = await storeAll(publisher, prepared, deps.publishDeadlineMs);
    } catch (error) {
      metrics.rejected.inc({ reason: 'unavailable' }, prepared.length);
      throw error;
    }
    metrics.accepted.inc({ route }, prepared.length - duplicates);
    if (duplicates > 0) metrics.duplicates.inc({ route }, duplicates);
    return { success: true, accepted: prepared.length - duplicates, duplicates, rejected };
  }

  const response = { 200: IngestResponse };

  app.post('/v1/events', { schema: { body: NativeBody, response }, onRequest: authenticate(false) }, async (request) => {
    const body = request.body;
    return ingest('/v1/events', Array.isArray(body) ? body : [body], (item) => item);
  });

  for (const path of ['/v1/batch', '/v1/import', '/v1/b']) {
    app.post(path, { schema: { body: SegmentBatchSchema, response }, onRequest: authenticate(true), preHandler: authenticateBody }, async (request) => {
      const { batch, sentAt, context } = request.body;
      const around = { receivedAt: now(), sentAt, context };
      return ingest(path, batch, (item) => segmentToEvent(item, undefined, around, segmentOptions));
    });
  }

  for (const type of SEGMENT_TYPES) {
    for (const path of [`/v1/${type}`, `/v1/${type[0]}`]) {
      app.post(path, { schema: { body: MessageBody, response }, onRequest: authenticate(true), preHandler: authenticateBody }, async (request) => {
        const around = { receivedAt: now() };
        return ingest(path, [request.body], (item) => segmentToEvent(item, type satisfies SegmentType, around, segmentOptions));
      });
    }
  }

  // analytics.js (AnalyticsBrowser.load({ writeKey, cdnURL: '<this server>' })) reads its settings here
  app.get('/v1/projects/:writeKey/settings', async (request) => {
    const { writeKey } = request.params as { writeKey: string };
    if (verifier !== undefined && !verifier.verify(writeKey)) {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw new HttpError(404, 'XREF_NOT_FOUND', "no settings for this write key: it is not one of this collector's keys (XREF_WRITE_KEYS)", { field: 'writeKey' });
    }
    return settingsDocument(writeKey, publicOrigin ?? requestOrigin(request.headers, request.protocol));
  });

  app.get('/livez', async () => ({ live: true }));

  app.get('/readyz', async (_request, reply: FastifyReply) => {
    if (shuttingDown.has(app)) {
      return reply.code(503).send({ ...errorBody(new XrefError('XREF_NOT_READY', 'not ready: shutting down')), ready: false, checks: { shuttingDown: true } });
    }
    const result = await probe(deps.readiness, deps.readinessTimeoutMs ?? 2000);
    const engine = result.engine === undefined ? {} : { engine: result.engine };
    if (result.ready) return { ready: true, checks: result.checks, ...engine };
    const failing = Object.entries(result.checks)
      .filter(([, ok]) => ok !== true)
      .map(([name, why]) => (typeof why === 'string' ? `${name}: ${why}` : name));
    return reply
      .code(503)
      .send({ ...errorBody(new XrefError('XREF_NOT_READY', `not ready: ${failing.join('; ') || 'the readiness check said so'}`)), ready: false, checks: result.checks, ...engine });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });

  return app as unknown as XrefApp;
}

/** A header's value as one string; undefined when absent or blank. */
function headerText(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  return value === undefined || value.trim() === '' ? undefined : value;
}

async function probe(readiness: () => Promise<Readiness>, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      readiness(),
      new Promise<Readiness>((resolve) => {
        timer = setTimeout(() => resolve({ ready: false, checks: { readiness: `no answer within ${timeoutMs} ms` } }), timeoutMs);
      }),
    ]);
  } catch (error) {
    return { ready: false, checks: { readiness: `the check failed: ${(error as Error).message}` } };
  } finally {
    clearTimeout(timer);
  }
}
