/**
 * The query API, one plugin behind the read-token hook (`Authorization: Bearer <read token>`):
 *
 *   GET /v1/events                         events by session, category, name, source, user, identifier, time
 *   GET /v1/events/:id                     one event and its resolution: { event }
 *   GET /v1/users/:kind/:id                a user's document, linked identifiers, counts
 *   GET /v1/identifiers/:kind/:value       linked | buffering | unmatched | unknown
 *   GET /v1/unmatched, /v1/audit, /v1/errors   records by reason, kind and time
 *   GET /v1/activity                       active people per day, week or month, per bucket
 *
 * PUT, PATCH, DELETE and POST on /v1/events/:id get a 405 with `Allow: GET`, whatever the
 * credential. The last path part (an event id, a user id, an identifier value) is taken whole,
 * `/` included once encoded as %2F, and at any length. Parameters are read by query-params.ts;
 * the answers are ReadModelQueries'.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { XrefError, quote } from '../domain/errors.ts';
import { type QueryString, checkIdentifier, checkUser, parseActivityQuery, parseEventsQuery, parseRecordsQuery } from '../projection/query-params.ts';
import { NotCaughtUpError, type ReadModelQueries } from '../projection/queries.ts';
import type { RecordList } from '../projection/read-model.ts';
import { type ReadTokensSetting, requireCredential } from './auth.ts';
import { HttpError } from './errors.ts';
import type { XrefMetrics } from './metrics.ts';

export interface QueryRoutesOptions {
  readonly queries: ReadModelQueries;
  /** The accepted read tokens; none: every query route answers 401. */
  readonly readTokens: ReadTokensSetting | undefined;
  /** Counts the 401s. */
  readonly metrics: XrefMetrics;
}

/** What the 404 of an unknown route lists. */
export const QUERY_ROUTES_TEXT =
  'GET /v1/events, GET /v1/events/<id>, GET /v1/users/<kind>/<id>, GET /v1/identifiers/<kind>/<value>, GET /v1/unmatched, GET /v1/audit, GET /v1/errors, GET /v1/activity';

const RECORD_LISTS: readonly RecordList[] = ['unmatched', 'audit', 'errors'];

/** A route taking no query parameters refuses any, as the lists refuse unknown ones. */
function noParameters(query: QueryString, path: string): void {
  const [name] = Object.keys(query);
  if (name !== undefined) throw new XrefError('XREF_INVALID_ARGUMENT', `unknown parameter ${quote(name)} (value ${quote(query[name])}): ${path} takes none`, { field: name });
}

/** The path part after the route's fixed ones (`*`): it must not be empty. */
function lastPart(params: unknown, name: string): string {
  const value = (params as Record<string, string>)['*'] ?? '';
  if (value === '') throw new XrefError('XREF_INVALID_ARGUMENT', `the ${name} in the path must not be empty`, { field: name });
  return value;
}

export const queryRoutes: FastifyPluginAsync<QueryRoutesOptions> = async (app, options) => {
  const { queries, metrics } = options;

  // a method the event route does not take: 405 whoever asks (the route exists, reading it takes a read token)
  app.route({
    method: ['PUT', 'PATCH', 'DELETE', 'POST'],
    url: '/v1/events/*',
    handler: async (request) => {
      throw new HttpError('XREF_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${request.url.split('?')[0]}: use GET (events are written with POST /v1/events, and never changed)`, {
        headers: { allow: 'GET' },
      });
    },
  });

  const reads = async (scope: FastifyInstance) => {
    requireCredential(scope, { kind: 'read-token', tokens: options.readTokens }, () => metrics.rejected.inc({ reason: 'unauthorized' }));

    scope.get('/v1/events', async (request) => {
      try {
        return await queries.events(parseEventsQuery(request.query as QueryString, queries));
      } catch (error) {
        if (error instanceof NotCaughtUpError) throw new HttpError(error.code, error.message, { field: 'min_seq', body: { watermark: error.watermark, min_seq: error.minSeq } });
        throw error;
      }
    });

    scope.get('/v1/events/*', async (request) => {
      noParameters(request.query as QueryString, '/v1/events/<id>');
      return queries.event(lastPart(request.params, 'id'));
    });

    scope.get('/v1/users/:kind/*', async (request) => {
      noParameters(request.query as QueryString, '/v1/users/<kind>/<id>');
      const { kind } = request.params as { kind: string };
      return queries.user(checkUser('kind', kind, lastPart(request.params, 'id'), queries));
    });

    scope.get('/v1/identifiers/:kind/*', async (request) => {
      noParameters(request.query as QueryString, '/v1/identifiers/<kind>/<value>');
      const { kind } = request.params as { kind: string };
      return queries.identifier(checkIdentifier(kind, lastPart(request.params, 'value')));
    });

    scope.get('/v1/activity', async (request) => queries.activity(parseActivityQuery(request.query as QueryString)));

    for (const list of RECORD_LISTS) {
      scope.get(`/v1/${list}`, async (request) => queries.records(list, parseRecordsQuery(list, request.query as QueryString)));
    }
  };
  app.register(reads);
};
