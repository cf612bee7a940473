/**
 * How the collector answers what went wrong: every error (its own, fastify's, or anything
 * thrown) becomes an XrefError answered as JSON with its status, counted when it refuses a
 * request, and logged without a key or the body.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, XrefError, quote, statusOf } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import { isDecodingError } from './content-encoding.ts';
import { HttpError, errorBody } from './errors.ts';
import { JSON_MEDIA_TYPES } from './json-body.ts';
import type { RejectReason, XrefMetrics } from './metrics.ts';

/**
 * Whether the message of an answered 4xx may go to the log: it quotes neither a key nor anything
 * from the body (the other messages quote event values, or JSON.parse's excerpt of the body).
 */
function messageIsLoggable(error: XrefError): boolean {
  return error.code === 'XREF_UNAUTHORIZED' || error.field === 'content-type' || error.field === 'content-encoding' || error.field === 'host' || (error.code === 'XREF_LIMIT_EXCEEDED' && error.field === 'body');
}

/** What a refused request logs (at info): the status and code, never the key or the body. */
export function refusalLog(error: XrefError, status: number): Record<string, unknown> {
  const entry: Record<string, unknown> = { status, code: error.code };
  if (error.field !== undefined) entry.field = error.field;
  if (messageIsLoggable(error)) entry.why = error.message;
  const rejected = error instanceof HttpError ? error.body.rejected : undefined;
  if (Array.isArray(rejected)) entry.rejected = rejected.map((r: { index: number; field?: string; code: string }) => ({ index: r.index, field: r.field, code: r.code }));
  return entry;
}

/** fastify's own 4xx answers, by status, as the catalogue's code for it (any other is a malformed request). */
const CLIENT_ERRORS: Partial<Record<number, ErrorCode>> = { 401: 'XREF_UNAUTHORIZED', 404: 'XREF_NOT_FOUND', 413: 'XREF_LIMIT_EXCEEDED', 415: 'XREF_UNSUPPORTED_MEDIA_TYPE' };

/** A fastify error (or anything thrown) as the XrefError to answer with, and what to count. */
export function asXrefError(error: FastifyError | Error, limits: Limits, request: FastifyRequest): { error: XrefError; reason?: RejectReason } {
  if (error instanceof HttpError && error.code === 'XREF_INVALID_JSON') return { error, reason: 'invalid_json' };
  if (error instanceof HttpError && (error.field === 'content-encoding' || error.field === 'content-type')) return { error, reason: 'invalid_request' };
  if (error instanceof XrefError) return { error };
  if (isDecodingError(error)) {
    const encoding = quote(request.headers['content-encoding']);
    return {
      error: new HttpError('XREF_INVALID_REQUEST', `the body could not be decompressed as Content-Encoding ${encoding} says (${error.message})`, { field: 'content-encoding' }),
      reason: 'invalid_request',
    };
  }
  const code = (error as FastifyError).code;
  const status = (error as FastifyError).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        error: new HttpError('XREF_LIMIT_EXCEEDED', `the request body is over the limit of ${limits.batchBytes} bytes: send fewer events per request`, { field: 'body' }),
        reason: 'body_too_large',
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: new HttpError('XREF_INVALID_JSON', 'the body is not valid JSON', { field: 'body' }), reason: 'invalid_json' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error: new HttpError('XREF_UNSUPPORTED_MEDIA_TYPE',
          `Content-Type ${request.headers['content-type'] === undefined ? '(none)' : quote(request.headers['content-type'])} is not supported: send a JSON body labelled ${JSON_MEDIA_TYPES}`,
          { field: 'content-type' },
        ),
        reason: 'invalid_request',
      };
    default:
      if (typeof status === 'number' && status >= 400 && status < 500) {
        return { error: new HttpError(CLIENT_ERRORS[status] ?? 'XREF_INVALID_REQUEST', error.message), reason: 'invalid_request' };
      }
      return { error: new HttpError('XREF_INTERNAL', 'internal error: the request was not handled (see the server log)', { cause: error }) };
  }
}

/** The error handler: the answer in xref's format; 503s logged at warn, other 5xx at error, 4xx at info. */
export function errorHandler(limits: Limits, metrics: XrefMetrics) {
  return (raw: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { error, reason } = asXrefError(raw instanceof Error ? raw : new XrefError('XREF_INTERNAL', String(raw), { cause: raw }), limits, request);
    if (reason !== undefined) metrics.rejected.inc({ reason });
    const status = statusOf(error.code);
    if (status === 503) request.log.warn({ req: request, code: error.code, why: error.message }, 'events not stored: 503');
    else if (status >= 500) request.log.error({ err: error.cause ?? error, req: request }, 'request failed');
    else if (status >= 400) request.log.info({ req: request, ...refusalLog(error, status) }, `request refused: ${status} ${error.code}`);
    if (error instanceof HttpError) void reply.headers(error.headers);
    return reply.code(status).send(errorBody(error));
  };
}

/** The not-found handler: a 404 naming the method and path, and listing `routes`. */
export function notFoundHandler(routes: string) {
  return (request: FastifyRequest, reply: FastifyReply) => {
    const error = new XrefError('XREF_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}: the routes are ${routes}`);
    request.log.info({ req: request, ...refusalLog(error, 404) }, 'request refused: 404 XREF_NOT_FOUND');
    return reply.code(404).send(errorBody(error));
  };
}
