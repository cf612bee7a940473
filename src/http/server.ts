/**
 * The fastify instance every route plugin is registered on: its logger (keys redacted), the body
 * limit, the JSON body parsers and Content-Encoding decoding, the validator, the error and
 * not-found answers in xref's format, request metrics, CORS for /v1/, and the shutdown state.
 */
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, LogController, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { TSchema } from 'typebox';
import type { Limits } from '../domain/limits.ts';
import { decodedBody } from './content-encoding.ts';
import { allowCrossOrigin } from './cross-origin.ts';
import { errorHandler, notFoundHandler } from './error-handler.ts';
import { HttpError } from './errors.ts';
import { parseJson, parseLabelledJson } from './json-body.ts';
import type { XrefMetrics } from './metrics.ts';
import { checker } from './schema.ts';

/** The instance route plugins are registered on: bodies and responses typed from their TypeBox schemas. */
export type XrefServer = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface ServerOptions {
  readonly logger: Logger;
  /** batchBytes is the body limit (after decompression). */
  readonly limits: Limits;
  /** Counts refused requests and request durations. */
  readonly metrics: XrefMetrics;
  /** The routes a 404 lists. */
  readonly routes: string;
}

const shuttingDown = new WeakSet<object>();

/** From now on /readyz answers 503 (call it first thing on SIGTERM, before `app.close()`). */
export function markShuttingDown(app: FastifyInstance): void {
  shuttingDown.add(app);
}

export function isShuttingDown(app: FastifyInstance): boolean {
  return shuttingDown.has(app);
}

/** A request path as it may be logged: no query, no write key (the settings route holds one). */
function loggedPath(url: string): string {
  return url.split('?')[0]!.replace(/^(\/v1\/projects\/)[^/]*/, '$1[redacted]');
}

/**
 * The longest route parameter the router matches: well past the longest kind or value xref takes
 * (src/domain/limits.ts), so that one over its limit reaches xref's checks, which name the part and
 * the limit (fastify's default, 100 characters, would cut a 256-character value short).
 */
function paramChars(limits: Limits): number {
  return 4 * Math.max(limits.kindChars, limits.idValueChars);
}

/** A new root instance, not listening, with no routes but the /v1/ preflight. */
export function createServer(options: ServerOptions): XrefServer {
  const { limits, metrics } = options;
  const logger = options.logger.child(
    options.logger.bindings().component === undefined ? { component: 'http' } : {},
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

  const handleError = errorHandler(limits, metrics);
  const maxParamLength = paramChars(limits);
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.batchBytes,
    return503OnClosing: false, // answered below, in xref's error format and with Retry-After
    routerOptions: { maxParamLength },
    // the router's own refusals (a part past maxParamLength, a path that is no URL), in xref's format
    frameworkErrors: (error, request, reply) => {
      const refused =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new HttpError('XREF_LIMIT_EXCEEDED', `a part of the path is over ${maxParamLength} characters: a kind has at most ${limits.kindChars}, an id or a value at most ${limits.idValueChars}`, { field: 'path' })
          : error;
      return handleError(refused, request, reply);
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as XrefServer;

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    shuttingDown.add(app);
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!closing || !request.url.startsWith('/v1/')) return;
    void reply.header('connection', 'close');
    throw new HttpError('XREF_NOT_READY', 'the collector is shutting down: send the request again (the same ids are stored once)', {
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

  app.setErrorHandler(handleError);
  app.setNotFoundHandler(notFoundHandler(options.routes));

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'none';
    metrics.requestDuration.observe({ route, method: request.method, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    request.log.debug({ req: request, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });

  allowCrossOrigin(app);
  return app;
}
