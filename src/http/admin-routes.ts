/**
 * The admin API, one plugin behind the admin-token hook (`Authorization: Bearer <admin token>`,
 * XREF_ADMIN_TOKENS): the control inputs of docs/erasure.md, and where a forget stands.
 *
 *   POST /v1/users/:kind/:id/forget                 { "suppress": false }?  → 202 { request_id, status, status_url }
 *   GET  /v1/forget/:request_id                     the forget's status and receipt
 *   POST /v1/identifiers/:kind/:value/unsuppress                            → 202 { request_id }
 *   POST /v1/identifiers/:kind/:value/unlink        { "block": true }?      → 202 { request_id }
 *
 * A 202 means the request is in the log (JetStream acked it): the engine applies it at its place
 * among the events. The id and the value are path parts, URL-decoded (`/` sent as %2F); they are
 * hashed before anything is written, and the answers never repeat them.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { XrefError, quote } from '../domain/errors.ts';
import type { ControlActions } from '../control/actions.ts';
import { checkRequestId } from '../control/status.ts';
import { type AdminTokensSetting, adminTokenName, bearerToken, requireCredential } from './auth.ts';
import { parseJson } from './json-body.ts';
import type { XrefMetrics } from './metrics.ts';

export interface AdminRoutesOptions {
  readonly control: ControlActions;
  /** The accepted admin tokens; none: every admin route answers 401. */
  readonly adminTokens: AdminTokensSetting | undefined;
  /** Counts the 401s. */
  readonly metrics: XrefMetrics;
}

/** What the 404 of an unknown route lists. */
export const ADMIN_ROUTES_TEXT =
  'POST /v1/users/<kind>/<id>/forget, GET /v1/forget/<request id>, POST /v1/identifiers/<kind>/<value>/unsuppress, POST /v1/identifiers/<kind>/<value>/unlink';

/**
 * The options of a request body: none (no body, an empty one, `{}`), or an object holding only
 * `allowed` keys (their values are checked by the request functions).
 */
function bodyOptions(body: unknown, allowed: readonly string[], path: string): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new XrefError('XREF_INVALID_ARGUMENT', `the body of ${path} must be a JSON object (or none), got ${quote(body)}`, { field: 'body' });
  const options = body as Record<string, unknown>;
  const unknown = Object.keys(options).find((key) => !allowed.includes(key));
  if (unknown !== undefined) {
    const takes = allowed.length === 0 ? 'takes no options' : `takes ${allowed.map((key) => quote(key)).join(', ')}`;
    throw new XrefError('XREF_INVALID_ARGUMENT', `unknown option ${quote(unknown)} in the body: ${path} ${takes}`, { field: unknown });
  }
  return options;
}

/** Who asks: the admin token the hook accepted, named without the secret. */
function askedBy(request: FastifyRequest): string {
  const token = bearerToken(request.headers.authorization ?? '');
  if (token === undefined) throw new XrefError('XREF_INTERNAL', 'an admin route ran without the admin token its hook checked');
  return adminTokenName(token);
}

/**
 * The id and the action of a path `…/:kind/<id>/<action>`, read from the route's wildcard: the id
 * is everything up to the last `/` (decoded, so an id holding `/` is sent with %2F).
 */
function idAndAction(params: unknown): { kind: string; value: string; action: string } {
  const { kind, '*': rest = '' } = params as { kind: string; '*'?: string };
  const slash = rest.lastIndexOf('/');
  return { kind, value: slash === -1 ? '' : rest.slice(0, slash), action: slash === -1 ? rest : rest.slice(slash + 1) };
}

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, options) => {
  const { control, metrics } = options;

  const admin = async (scope: FastifyInstance) => {
    requireCredential(scope, { kind: 'admin-token', tokens: options.adminTokens }, () => metrics.rejected.inc({ reason: 'unauthorized' }));
    // a POST here needs no body: an empty one labelled JSON (as many clients send) is none
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      if (String(body).trim() === '') done(null, undefined);
      else parseJson(request, body, done);
    });

    // POST /v1/users/:kind/<id>/forget
    scope.post('/v1/users/:kind/*', async (request, reply) => {
      const { kind, value: id, action } = idAndAction(request.params);
      if (action !== 'forget') return reply.callNotFound();
      const { suppress } = bodyOptions(request.body, ['suppress'], '/v1/users/<kind>/<id>/forget');
      const { request: requestId } = await control.forget({ kind, id, suppress: suppress as boolean | undefined, by: askedBy(request) });
      return reply.code(202).send({ request_id: requestId, status: 'requested', status_url: `/v1/forget/${requestId}` });
    });

    scope.get('/v1/forget/:request_id', async (request) => control.status(checkRequestId((request.params as { request_id: string }).request_id)));

    // POST /v1/identifiers/:kind/<value>/unsuppress, …/unlink
    scope.post('/v1/identifiers/:kind/*', async (request, reply) => {
      const { kind, value, action } = idAndAction(request.params);
      if (action === 'unsuppress') {
        bodyOptions(request.body, [], '/v1/identifiers/<kind>/<value>/unsuppress');
        const { request: requestId } = await control.unsuppress({ kind, value, by: askedBy(request) });
        return reply.code(202).send({ request_id: requestId });
      }
      if (action === 'unlink') {
        const { block } = bodyOptions(request.body, ['block'], '/v1/identifiers/<kind>/<value>/unlink');
        const { request: requestId } = await control.unlink({ kind, value, block: block as boolean | undefined, by: askedBy(request) });
        return reply.code(202).send({ request_id: requestId });
      }
      return reply.callNotFound();
    });
  };
  app.register(admin);
};
