/**
 * One credential per set of routes: write keys (HTTP Basic) send events, read tokens (Bearer,
 * XREF_READ_TOKENS) read, and neither does the other's job. The read routes do not exist yet, so
 * a read route here is a test-only plugin registered as the query routes will be.
 */
import type { FastifyPluginAsync } from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { INSECURE_NO_AUTH, type ReadTokensSetting, bearerToken, requireCredential } from '../../src/http/auth.ts';
import { collectorSettings } from '../../src/http/collector.ts';
import { AUTH, WRITE_KEY, basic, expectError, useTestApps } from '../helpers/http.ts';

const make = useTestApps();

const READ_TOKEN = 'rt_test_5c20e1';
const OTHER_TOKEN = 'rt_other_a93f';
const TOKENS = new Set([READ_TOKEN, OTHER_TOKEN]);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A read route as the query routes will plug in: one plugin taking a read token. */
function readRoute(tokens: ReadTokensSetting | undefined): FastifyPluginAsync {
  return async (scope) => {
    requireCredential(scope, { kind: 'read-token', tokens });
    scope.get('/v1/test/read', async () => ({ read: true }));
  };
}

/** The collector with the test read route, its tokens as `collectorSettings` would give them. */
function withReadRoute(tokens: ReadTokensSetting | undefined) {
  const made = make(tokens === undefined ? {} : { readTokens: tokens });
  made.app.register(readRoute(tokens));
  return made;
}

const read = (app: ReturnType<typeof withReadRoute>['app'], headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/v1/test/read', headers });

describe('read tokens: Authorization: Bearer, on the routes that read', () => {
  it('a configured read token reads', async () => {
    const { app } = withReadRoute(TOKENS);
    for (const headers of [bearer(READ_TOKEN), bearer(OTHER_TOKEN), { authorization: `bearer ${READ_TOKEN}` }]) {
      const response = await read(app, headers);
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({ read: true });
    }
  });

  it('a write key cannot read: 401 naming the Authorization header and the Bearer read token it takes', async () => {
    const { app } = withReadRoute(TOKENS);
    for (const headers of [AUTH, bearer(WRITE_KEY)]) {
      const response = await read(app, headers);
      const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toBe('Bearer realm="xref"');
      expect(body.error).toContain('Authorization');
      expect(body.error).not.toContain(WRITE_KEY);
    }
    expect(expectError(await read(app, AUTH), 401).error).toMatch(/HTTP Basic \(a write key\), and write keys cannot read: send a read token as Authorization: Bearer <read token>/);
  });

  it('no header, a wrong token or another scheme → 401 saying what to send; neither the message nor the log quotes the token', async () => {
    const { app, lines } = withReadRoute(TOKENS);
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{}, /^a read token is required: send a read token as Authorization: Bearer <read token> \(one of XREF_READ_TOKENS\)$/],
      [bearer('rt_wrong_77'), /^the read token in the Authorization header is not one of this collector's read tokens \(XREF_READ_TOKENS\)$/],
      [{ authorization: 'Token rt_wrong_77' }, /^the Authorization header is not a Bearer token: send a read token as Authorization: Bearer <read token>/],
      [{ authorization: 'Bearer' }, /Authorization header is not a Bearer token/],
    ];
    for (const [headers, message] of cases) {
      const response = await read(app, headers);
      const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toBe('Bearer realm="xref"');
      expect(body.error).toMatch(message);
    }
    expect(lines.join('')).toContain('request refused: 401 XREF_UNAUTHORIZED');
    expect(lines.join('')).not.toContain('rt_wrong_77');
  });

  it('a read token cannot write: /v1/batch answers it the 401 a write route always gave', async () => {
    const { app, sink, metrics } = withReadRoute(TOKENS);
    const batch = { batch: [{ type: 'track', event: 'E', userId: 'u' }] };
    const post = (headers: Record<string, string>, payload: unknown = batch) =>
      app.inject({ method: 'POST', url: '/v1/batch', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(payload) });

    const asBearer = await post(bearer(READ_TOKEN));
    expect(response401(asBearer).error).toMatch(/^the Authorization header is not HTTP Basic with a user name: send the write key as the user name of HTTP Basic auth/);
    expect(response401(await post({ authorization: basic(READ_TOKEN) })).error).toBe("the write key in the Authorization header is not one of this collector's keys (XREF_WRITE_KEYS)");
    expect(response401(await post({}, { ...batch, writeKey: READ_TOKEN }), 'body').error).toBe("the write key in the body (writeKey) is not one of this collector's keys (XREF_WRITE_KEYS)");
    expect(sink.publishes).toBe(0);
    expect(await metrics.registry.metrics()).toContain('xref_http_rejected_total{reason="unauthorized"} 3');
    // the write key still writes, and the health routes stay open, with the read route plugged in
    expect((await post(AUTH)).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    expect(sink.events).toHaveLength(1);
  });

  it('no read tokens configured: the read routes are closed, whatever is sent, and the 401 says what to set', async () => {
    const { app } = withReadRoute(undefined);
    for (const headers of [{}, bearer(READ_TOKEN), AUTH]) {
      const response = await read(app, headers);
      const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toBe('Bearer realm="xref"');
      expect(body.error).toBe('this route takes a read token (Authorization: Bearer <read token>), and this collector has none: set XREF_READ_TOKENS=token1,token2');
    }
  });

  it("'insecure-no-auth' read tokens: the read routes take every request", async () => {
    const { app } = withReadRoute(INSECURE_NO_AUTH);
    expect((await read(app)).statusCode).toBe(200);
    expect((await read(app, AUTH)).statusCode).toBe(200);
  });

  it('bearerToken reads the token of a Bearer header', () => {
    expect(bearerToken(`Bearer ${READ_TOKEN}`)).toBe(READ_TOKEN);
    expect(bearerToken(`  BEARER ${READ_TOKEN} `)).toBe(READ_TOKEN);
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(basic(READ_TOKEN))).toBeUndefined();
  });
});

/** A write route's 401: it names the Authorization header, or the body's writeKey when the key came there. */
function response401(response: { statusCode: number; headers: Record<string, unknown>; body: string }, keyIn: 'header' | 'body' = 'header') {
  const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
  expect(response.headers['www-authenticate']).toBe('Basic realm="xref"');
  expect(body.error).toContain(keyIn === 'header' ? 'Authorization' : 'writeKey');
  return body;
}

describe('XREF_READ_TOKENS (collectorSettings)', () => {
  const withKeys = { XREF_WRITE_KEYS: WRITE_KEY };
  const settings = (env: Record<string, string>, base: Record<string, string> = withKeys, options: { insecureNoAuth?: boolean } = {}) =>
    collectorSettings(loadSettings({ ...base, ...env }), options);

  it('comma-separated, trimmed, repeats dropped', () => {
    expect(settings({ XREF_READ_TOKENS: ` ${READ_TOKEN} ,${OTHER_TOKEN},${READ_TOKEN}` }).readTokens).toEqual(new Set([READ_TOKEN, OTHER_TOKEN]));
  });

  it('unset or blank: none (the read routes answer 401), even under --insecure-no-auth when write keys are set', () => {
    expect(settings({}).readTokens).toBeUndefined();
    expect(settings({ XREF_READ_TOKENS: '  ' }).readTokens).toBeUndefined();
    expect(settings({}, withKeys, { insecureNoAuth: true }).readTokens).toBeUndefined();
    expect(settings({}, { XREF_WRITE_KEYS: WRITE_KEY, XREF_INSECURE_NO_AUTH: '1' }).readTokens).toBeUndefined();
  });

  it('a collector without write keys under --insecure-no-auth reads without a token too, unless tokens are set', () => {
    const noKeys = {};
    expect(settings({}, noKeys, { insecureNoAuth: true })).toMatchObject({ writeKeys: INSECURE_NO_AUTH, readTokens: INSECURE_NO_AUTH });
    expect(settings({ XREF_READ_TOKENS: READ_TOKEN }, noKeys, { insecureNoAuth: true }).readTokens).toEqual(new Set([READ_TOKEN]));
  });

  it('an empty entry, a space in a token, or a token that is also a write key is refused naming XREF_READ_TOKENS and the entry, never the token', () => {
    const cases: Array<[string, RegExp]> = [
      [`${READ_TOKEN},,${OTHER_TOKEN}`, /^XREF_READ_TOKENS entry 2 is empty: list the tokens separated by single commas/],
      [`${READ_TOKEN},`, /^XREF_READ_TOKENS entry 2 is empty/],
      [`rt_a b`, /^XREF_READ_TOKENS entry 1 holds a space/],
      [`${READ_TOKEN},${WRITE_KEY}`, /^XREF_READ_TOKENS entry 2 is also a write key \(XREF_WRITE_KEYS\)/],
    ];
    for (const [value, message] of cases) {
      let error: unknown;
      try {
        settings({ XREF_READ_TOKENS: value });
      } catch (caught) {
        error = caught;
      }
      expect(error, value).toMatchObject({ code: 'XREF_INVALID_CONFIG', field: 'XREF_READ_TOKENS', message: expect.stringMatching(message) });
      for (const secret of [READ_TOKEN, OTHER_TOKEN, WRITE_KEY, 'rt_a']) expect((error as Error).message).not.toContain(secret);
    }
  });
});
