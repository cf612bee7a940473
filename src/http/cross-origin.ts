/**
 * Segment's browser library posts cross-origin (JSON as text/plain, the write key in the body or
 * in Authorization): every /v1/ answer, errors and 404s included, may be read from any origin, and
 * the preflight of any /v1/ route is answered.
 */
import type { FastifyInstance } from 'fastify';

/** Adds the CORS answer header and the OPTIONS /v1/* preflight route to `app` (the root instance). */
export function allowCrossOrigin(app: FastifyInstance): void {
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
}

/** A header's value as one string; undefined when absent or blank. */
function headerText(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  return value === undefined || value.trim() === '' ? undefined : value;
}
