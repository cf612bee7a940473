/**
 * Path parts up to the identifier limits (a kind of 64, a value of 256 characters; further, up
 * to the router's bound) reach xref's own checks, which answer naming the part; fastify's router
 * would cut a route parameter at 100 characters with a bare 414. A part past the router's bound,
 * or a path that is no URL, is answered in xref's format too.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { controlActions } from '../../src/control/actions.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { ReadModelQueries } from '../../src/projection/queries.ts';
import { expectError, useTestApps } from '../helpers/http.ts';

const READ = 'rt_params_4e1b';
const ADMIN = 'at_params_9c2d';
const make = useTestApps();
const { idValueChars } = defaultLimits();

let queries: ReadModelQueries;

beforeAll(async () => {
  const silent = pino({ level: 'silent' });
  const store = await openReadModel({ databaseUrl: 'sqlite::memory:', dataDir: '.', logger: silent });
  queries = new ReadModelQueries(store, { config: resolveConfig({}), userEventsCap: 10_000, logger: silent });
  return () => store.close();
});

/**
 * An app with the query and the admin routes. The admin routes' control requests check their
 * arguments before they touch NATS, and these requests are all refused there: no connection is needed.
 */
function app() {
  const control = controlActions({} as NatsConnection);
  return make({ queries, readTokens: new Set([READ]), control, adminTokens: new Set([ADMIN]) }).app;
}

const read = { authorization: `Bearer ${READ}` };
const admin = { authorization: `Bearer ${ADMIN}` };

describe('long path parts', () => {
  it('a kind of 256 characters reaches xref: the query routes answer for it, the admin routes name the kind and its limit', async () => {
    const kind = 'k'.repeat(idValueChars);
    const value = 'v'.repeat(idValueChars);
    const identifier = await app().inject({ method: 'GET', url: `/v1/identifiers/${kind}/${value}`, headers: read });
    expect(identifier.statusCode, identifier.body).toBe(200);
    expect(JSON.parse(identifier.body)).toMatchObject({ identifier: { kind, value }, status: 'unknown' });

    const user = expectError(await app().inject({ method: 'GET', url: `/v1/users/${kind}/${value}`, headers: read }), 400, 'XREF_INVALID_ARGUMENT');
    expect(user.error).toMatch(/must be an internal kind/);

    for (const url of [`/v1/users/${kind}/u-1/forget`, `/v1/identifiers/${kind}/${value}/unlink`]) {
      const body = expectError(await app().inject({ method: 'POST', url, headers: admin }), 400, 'XREF_INVALID_ARGUMENT');
      expect(body, url).toMatchObject({ field: 'kind' });
      expect(body.error).toMatch(/^kind must be a kind name \(\[A-Za-z0-9_-\], 1 to 64 characters\), got "k+…$/);
    }
  });

  it('a request id of 256 characters is refused by xref, naming it', async () => {
    const body = expectError(await app().inject({ method: 'GET', url: `/v1/forget/${'r'.repeat(idValueChars)}`, headers: admin }), 400, 'XREF_INVALID_ARGUMENT');
    expect(body).toMatchObject({ field: 'request_id' });
    expect(body.error).toMatch(/^request_id must be a request id \(a lower-case UUID, as the forget answered\), got "r+…$/);
  });

  it("a part past the router's bound is an XREF_LIMIT_EXCEEDED naming the limits, a path that is no URL an XREF_INVALID_REQUEST", async () => {
    const tooLong = expectError(await app().inject({ method: 'GET', url: `/v1/users/${'k'.repeat(8 * idValueChars)}/u-1`, headers: read }), 413, 'XREF_LIMIT_EXCEEDED');
    expect(tooLong).toMatchObject({ field: 'path' });
    expect(tooLong.error).toMatch(/^a part of the path is over \d+ characters: a kind has at most 64, an id or a value at most 256$/);
    const badUrl = expectError(await app().inject({ method: 'GET', url: '/v1/users/%zz/u-1', headers: read }), 400, 'XREF_INVALID_REQUEST');
    expect(badUrl.error).toMatch(/not a valid url component/);
  });
});
