import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { XrefError } from '../../src/domain/errors.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { type XrefApp, isShuttingDown, markShuttingDown } from '../../src/http/app.ts';
import { INSECURE_NO_AUTH, basicUserName, checkAuthConfig } from '../../src/http/auth.ts';
import { collectorSettings } from '../../src/http/collector.ts';
import { setEngineGauges } from '../../src/http/metrics.ts';
import { AUTH, OTHER_KEY, WRITE_KEY, basic, expectError, testApp, useTestApps } from '../helpers/http.ts';
import { waitFor } from '../helpers/streams.ts';

const make = useTestApps();

const post = (app: XrefApp, url: string, payload: unknown, headers: Record<string, string> = AUTH) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

const event = (id: string, extra: Record<string, unknown> = {}) => ({ id, name: 'pageview', ids: { cookie: `c-${id}` }, ...extra });

describe('auth: HTTP Basic with the write key as user name', () => {
  it('no key → 401 with WWW-Authenticate and a message saying how to send one', async () => {
    const { app, sink } = make();
    const response = await post(app, '/v1/events', event('e1'), {});
    const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
    expect(response.headers['www-authenticate']).toBe('Basic realm="xref"');
    expect(body.error).toMatch(/write key is required.*HTTP Basic/);
    expect(sink.publishes).toBe(0);
  });

  it('a wrong key, or a header that is not Basic → 401; the message never repeats the key', async () => {
    const { app } = make();
    for (const authorization of [basic('nope-key'), 'Bearer nope-key', 'Basic', 'Basic %%%', basic('')]) {
      const response = await post(app, '/v1/events', event('e1'), { authorization });
      const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toBe('Basic realm="xref"');
      expect(body.error).not.toContain('nope-key');
    }
  });

  it('any configured key is accepted; the password is ignored', async () => {
    const { app, sink } = make();
    expect((await post(app, '/v1/events', event('e1'), { authorization: basic(WRITE_KEY, 'whatever') })).statusCode).toBe(200);
    expect((await post(app, '/v1/events', event('e2'), { authorization: basic(OTHER_KEY) })).statusCode).toBe(200);
    expect((await post(app, '/v1/events', event('e3'), { authorization: `basic ${Buffer.from(WRITE_KEY).toString('base64')}` })).statusCode).toBe(200);
    expect(sink.events.map((e) => e.id)).toEqual(['e1', 'e2', 'e3']);
  });

  it('Segment routes also take the key as "writeKey" in the body (Segment\'s other convention); the native route does not', async () => {
    const { app, sink } = make();
    expect((await post(app, '/v1/track', { writeKey: WRITE_KEY, event: 'E', userId: 'u' }, {})).statusCode).toBe(200);
    expect((await post(app, '/v1/batch', { writeKey: WRITE_KEY, batch: [{ type: 'track', event: 'E', userId: 'u' }] }, {})).statusCode).toBe(200);
    expectError(await post(app, '/v1/track', { writeKey: 'bad-key', event: 'E', userId: 'u' }, {}), 401, 'XREF_UNAUTHORIZED');
    expectError(await post(app, '/v1/track', { event: 'E', userId: 'u' }, {}), 401, 'XREF_UNAUTHORIZED');
    expectError(await post(app, '/v1/events', { ...event('e9'), writeKey: WRITE_KEY }, {}), 401, 'XREF_UNAUTHORIZED');
    // a header, when present, decides (a right key in the body does not fix a wrong header)
    expectError(await post(app, '/v1/track', { writeKey: WRITE_KEY, event: 'E', userId: 'u' }, { authorization: basic('bad-key') }), 401);
    expect(sink.events).toHaveLength(2);
    expect(JSON.stringify(sink.events)).not.toContain(WRITE_KEY);
  });

  it('health and metrics need no key', async () => {
    const { app } = make();
    expect((await app.inject({ url: '/livez' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(200);
  });

  it('--insecure-no-auth accepts requests without a key', async () => {
    const { app, lines } = make({ writeKeys: INSECURE_NO_AUTH });
    expect((await post(app, '/v1/events', event('e1'), {})).statusCode).toBe(200);
    expect(lines.join('')).toContain('without a write key');
  });

  it('no keys and not insecure: the collector refuses to start and says what to set', () => {
    expect(() => make({ writeKeys: new Set() })).toThrow(/XREF_WRITE_KEYS.*--insecure-no-auth/);
    const settings = loadSettings({});
    expect(() => checkAuthConfig(settings)).toThrow(XrefError);
    expect(() => checkAuthConfig(settings)).toThrow(/set XREF_WRITE_KEYS=.*or pass --insecure-no-auth/);
    expect(checkAuthConfig(settings, { insecureNoAuth: true })).toBe(INSECURE_NO_AUTH);
    expect(checkAuthConfig(loadSettings({ XREF_INSECURE_NO_AUTH: '1' }))).toBe(INSECURE_NO_AUTH);
    expect(checkAuthConfig(loadSettings({ XREF_WRITE_KEYS: ' k1, k2 ,,k1' }))).toEqual(new Set(['k1', 'k2']));
  });

  it('a malformed XREF_WRITE_KEYS is refused without quoting the key', () => {
    expect(() => loadSettings({ XREF_WRITE_KEYS: 'good,bad:key' })).toThrow(/entry 2 holds a space or a ':'/);
    try {
      loadSettings({ XREF_WRITE_KEYS: 'good,bad:key' });
    } catch (error) {
      expect((error as Error).message).not.toContain('bad:key');
    }
  });

  it('keys never appear in the logs (headers redacted, body keys never logged)', async () => {
    const { app, lines, sink } = make();
    sink.set('fail');
    await post(app, '/v1/events', event('e1'), { authorization: basic(WRITE_KEY, 'pw-secret') }); // 503, logged with the request
    await post(app, '/v1/events', event('e2'), { authorization: basic('wrong-key-abc') });
    await post(app, '/v1/track', { writeKey: WRITE_KEY, event: 'E', userId: 'u' }, {});
    await post(app, '/v1/track', { writeKey: 'wrong-body-key', event: 'E', userId: 'u' }, {});
    const log = lines.join('');
    expect(log).toContain('"authorization":"[redacted]"'); // the request was logged, and redacted
    for (const secret of [WRITE_KEY, 'wrong-key-abc', 'wrong-body-key', 'pw-secret', basic(WRITE_KEY, 'pw-secret').slice(6)]) expect(log).not.toContain(secret);
  });

  it('basicUserName reads the user name of a Basic header', () => {
    expect(basicUserName(basic('k', 'p'))).toBe('k');
    expect(basicUserName(`Basic ${Buffer.from('k').toString('base64')}`)).toBe('k');
    expect(basicUserName('Digest abc')).toBeUndefined();
    expect(basicUserName(basic(''))).toBeUndefined();
  });
});

describe('POST /v1/events (native envelopes)', () => {
  it('one event → 200 once stored', async () => {
    const { app, sink } = make();
    const response = await post(app, '/v1/events', event('e1', { timestamp: '2021-01-01T09:15:29.243Z' }));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ success: true, accepted: 1, duplicates: 0, rejected: [], seq: 1 });
    expect(sink.events).toEqual([event('e1', { timestamp: '2021-01-01T09:15:29.243Z' })]);
  });

  it('an array: good events stored, bad ones rejected by index with their reasons', async () => {
    const { app, sink } = make();
    const response = await post(app, '/v1/events', [event('a'), { id: 'b' }, event('c', { timestmp: 'x' }), 7, { id: 'd', ids: { db_id: 123 } }]);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ success: true, accepted: 2, duplicates: 0 });
    expect(body.rejected).toEqual([
      { index: 1, field: 'ids', error: 'ids is required and must be an object of kind → value, got undefined', code: 'XREF_INVALID_EVENT' },
      { index: 2, field: 'timestmp', error: expect.stringContaining('timestmp is not an envelope field'), code: 'XREF_INVALID_EVENT' },
      { index: 3, field: 'event', error: 'event must be a JSON object, got 7', code: 'XREF_INVALID_EVENT' },
    ]);
    expect(sink.events.map((e) => e.id)).toEqual(['a', 'd']);
    expect(sink.events[1]!.ids).toEqual({ db_id: '123' }); // integers become strings
  });

  it('all rejected → 400 with the same body shape and an error naming the first', async () => {
    const { app, sink } = make();
    const body = expectError(await post(app, '/v1/events', [{ id: 'x' }, { ids: { a: 'b' } }]), 400, 'XREF_INVALID_EVENT');
    expect(body).toMatchObject({ success: false, accepted: 0, duplicates: 0, field: 'ids' });
    expect(body.error).toMatch(/^all 2 events were rejected; the first, event 0: ids is required/);
    expect(body.rejected).toHaveLength(2);
    expect(sink.publishes).toBe(0);
  });

  it('a body that is neither an object nor an array, or an empty array → 400', async () => {
    const { app } = make();
    expect(expectError(await post(app, '/v1/events', '42'), 400).error).toBe('body must be an event object or an array of events, got 42');
    expect(expectError(await post(app, '/v1/events', '"text"'), 400).field).toBe('body');
    expect(expectError(await post(app, '/v1/events', []), 400, 'XREF_INVALID_EVENT').error).toMatch(/holds no events/);
  });

  it('the same id twice → stored once, reported as a duplicate', async () => {
    const { app, sink } = make();
    expect((await post(app, '/v1/events', event('same'))).json()).toMatchObject({ accepted: 1, duplicates: 0 });
    expect((await post(app, '/v1/events', event('same'))).json()).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await post(app, '/v1/events', [event('x'), event('x')])).json()).toMatchObject({ accepted: 1, duplicates: 1 });
    expect(sink.events.map((e) => e.id)).toEqual(['same', 'x']);
  });
});

describe('Segment tracking API', () => {
  const received = '2024-05-01T12:00:00.000Z';

  it.each([
    ['/v1/track', { messageId: 'm-t', anonymousId: 'a1', event: 'Signed Up', properties: { plan: 'pro' } }, { id: 'm-t', name: 'Signed Up', ids: { anonymous_id: 'a1' }, data: { plan: 'pro' } }],
    ['/v1/identify', { messageId: 'm-i', anonymousId: 'a1', userId: 'u1', traits: { email: 'e@x.io' } }, { id: 'm-i', name: 'identify', ids: { anonymous_id: 'a1', user_id: 'u1' }, data: { email: 'e@x.io' } }],
    ['/v1/page', { messageId: 'm-p', anonymousId: 'a1', name: 'Home', properties: { path: '/' } }, { id: 'm-p', name: 'page', ids: { anonymous_id: 'a1' }, data: { path: '/', name: 'Home' } }],
    ['/v1/screen', { messageId: 'm-s', userId: 7, name: 'Settings' }, { id: 'm-s', name: 'screen', ids: { user_id: '7' }, data: { name: 'Settings' } }],
    ['/v1/group', { messageId: 'm-g', userId: 'u1', groupId: 'g1', traits: { name: 'Acme' } }, { id: 'm-g', name: 'group', ids: { user_id: 'u1' }, data: { name: 'Acme', groupId: 'g1' } }],
    ['/v1/alias', { messageId: 'm-a', previousId: 'a1', userId: 'u1' }, { id: 'm-a', name: 'alias', ids: { anonymous_id: 'a1', user_id: 'u1' } }],
    ['/v1/t', { messageId: 'm-t2', userId: 'u1', event: 'Short Path' }, { id: 'm-t2', name: 'Short Path', ids: { user_id: 'u1' } }],
  ])('%s → 200 { success: true } and the mapped event', async (url, body, expected) => {
    const { app, sink } = make();
    const response = await post(app, url, body);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ success: true, accepted: 1, duplicates: 0, rejected: [], seq: 1 });
    expect(sink.events).toEqual([{ timestamp: received, ...expected }]);
  });

  it('/v1/batch: mixed types, batch sentAt and context, bad messages rejected by index', async () => {
    const { app, sink } = make();
    const response = await post(app, '/v1/batch', {
      sentAt: '2024-05-01T13:00:00.000Z', // the client clock runs 1 h ahead
      context: { library: { name: 'test' } },
      batch: [
        { type: 'page', messageId: 'b1', anonymousId: 'a1', originalTimestamp: '2024-05-01T12:59:50.000Z' },
        { type: 'track', messageId: 'b2', anonymousId: 'a1' }, // no event name
        { type: 'identify', messageId: 'b3', anonymousId: 'a1', userId: 'u1', timestamp: '2024-05-01T11:00:00.000Z' },
        { type: 'hop', messageId: 'b4', userId: 'u1' },
        'not a message',
      ],
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      success: true,
      accepted: 2,
      duplicates: 0,
      rejected: [
        { index: 1, field: 'event', code: 'XREF_INVALID_EVENT', error: 'event is required for a track call and must be a non-empty string, got undefined' },
        { index: 3, field: 'type', code: 'XREF_INVALID_EVENT', error: 'type must be one of track, identify, page, screen, group, alias, got "hop"' },
        { index: 4, field: 'value', code: 'XREF_INVALID_EVENT', error: 'value must be a JSON object (a Segment message), got "not a message"' },
      ],
      seq: 2,
    });
    expect(sink.events).toEqual([
      { id: 'b1', name: 'page', timestamp: '2024-05-01T11:59:50.000Z', ids: { anonymous_id: 'a1' }, context: { library: { name: 'test' } } },
      { id: 'b3', name: 'identify', timestamp: '2024-05-01T11:00:00.000Z', ids: { anonymous_id: 'a1', user_id: 'u1' }, context: { library: { name: 'test' } } },
    ]);
  });

  it('/v1/batch and /v1/import take the same body; a body without "batch" → 400 naming it', async () => {
    const { app } = make();
    expect((await post(app, '/v1/import', { batch: [{ type: 'track', event: 'E', userId: 'u' }] })).statusCode).toBe(200);
    const body = expectError(await post(app, '/v1/batch', { events: [] }), 400, 'XREF_INVALID_REQUEST');
    expect(body).toMatchObject({ field: 'batch', error: 'batch is required and must be an array of Segment messages, got undefined' });
    expectError(await post(app, '/v1/batch', { batch: 'x' }), 400);
    expectError(await post(app, '/v1/batch', { batch: [] }), 400, 'XREF_INVALID_EVENT');
    expectError(await post(app, '/v1/batch', [1, 2]), 400);
  });

  it('a Segment message with neither userId nor anonymousId → 400 naming both', async () => {
    const { app } = make();
    const body = expectError(await post(app, '/v1/track', { event: 'E' }), 400, 'XREF_INVALID_EVENT');
    expect(body.error).toMatch(/userId or anonymousId is required/);
    expect(body.field).toBe('userId');
  });

  it('the same messageId twice → one event, the second reported as a duplicate', async () => {
    const { app, sink } = make();
    const message = { type: 'track', messageId: 'once', event: 'E', userId: 'u' };
    expect((await post(app, '/v1/batch', { batch: [message] })).json()).toMatchObject({ accepted: 1, duplicates: 0 });
    expect((await post(app, '/v1/batch', { batch: [message, message] })).json()).toMatchObject({ success: true, accepted: 0, duplicates: 2 });
    expect(sink.events).toHaveLength(1);
  });

  it('analytics.js style: JSON sent as text/plain, cross-origin (CORS preflight and header)', async () => {
    const { app, sink } = make();
    const response = await app.inject({ method: 'POST', url: '/v1/t', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify({ writeKey: WRITE_KEY, event: 'E', anonymousId: 'a' }) });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    const preflight = await app.inject({ method: 'OPTIONS', url: '/v1/batch', headers: { origin: 'https://example.com', 'access-control-request-method': 'POST' } });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-headers']).toMatch(/Authorization/);
    expect(sink.events).toHaveLength(1);
  });

  it('XREF_SEGMENT_USER_KIND: userId maps to the configured internal kind', async () => {
    const { app, sink } = make({ segmentUserKind: 'account_id' });
    await post(app, '/v1/identify', { userId: 'acc-1', anonymousId: 'a' });
    expect(sink.events[0]!.ids).toEqual({ anonymous_id: 'a', account_id: 'acc-1' });
    expect(() => make({ segmentUserKind: 'anonymous_id' })).toThrow(/cannot be anonymous_id/);
  });
});

describe('limits', () => {
  const big = (id: string) => event(id, { data: { blob: 'x'.repeat(33 * 1024) } });

  it('an event over 32 KB → 413 naming the index and the limit', async () => {
    const { app } = make();
    const body = expectError(await post(app, '/v1/events', big('huge')), 413, 'XREF_LIMIT_EXCEEDED');
    expect(body.error).toMatch(/^event 0 is 338\d\d bytes, over the limit of 32768 bytes$/);
    const segment = expectError(await post(app, '/v1/track', { event: 'E', userId: 'u', properties: { blob: 'x'.repeat(33 * 1024) } }), 413);
    expect(segment.error).toMatch(/over the limit of 32768 bytes/);
  });

  it('in a batch, the oversized event is rejected by index and the others stored', async () => {
    const { app, sink } = make();
    const response = await post(app, '/v1/events', [event('ok1'), big('huge'), event('ok2')]);
    expect(response.statusCode).toBe(200);
    expect(response.json().rejected).toEqual([{ index: 1, field: 'event', code: 'XREF_LIMIT_EXCEEDED', error: expect.stringMatching(/^event 1 is \d+ bytes, over the limit of 32768 bytes$/) }]);
    expect(sink.events.map((e) => e.id)).toEqual(['ok1', 'ok2']);
    // all oversized → 413; oversized and invalid → 400
    expectError(await post(app, '/v1/events', [big('h1'), big('h2')]), 413);
    expectError(await post(app, '/v1/events', [big('h1'), { id: 'x' }]), 400);
  });

  it('a body over 500 KB → 413 naming the limit, before anything is stored', async () => {
    const { app, sink } = make();
    const many = Array.from({ length: 40 }, (_, i) => event(`m${i}`, { data: { blob: 'y'.repeat(14_000) } }));
    const body = expectError(await post(app, '/v1/events', many), 413, 'XREF_LIMIT_EXCEEDED');
    expect(body).toMatchObject({ field: 'body', error: 'the request body is over the limit of 512000 bytes: send fewer events per request' });
    expectError(await post(app, '/v1/batch', { batch: [{ type: 'track', event: 'E', userId: 'u', properties: { s: 'z'.repeat(520_000) } }] }), 413);
    expect(sink.publishes).toBe(0);
  });

  it('limits come from the deps (XREF_HTTP_MAX_EVENT_BYTES / XREF_HTTP_MAX_REQUEST_BYTES)', async () => {
    const settings = loadSettings({ XREF_WRITE_KEYS: WRITE_KEY, XREF_HTTP_MAX_EVENT_BYTES: '200', XREF_HTTP_MAX_REQUEST_BYTES: '1000' });
    const { limits } = collectorSettings(settings);
    const { app } = make({ limits });
    expect(expectError(await post(app, '/v1/events', event('e', { data: { s: 'x'.repeat(200) } })), 413).error).toMatch(/over the limit of 200 bytes/);
    expect(expectError(await post(app, '/v1/events', Array.from({ length: 20 }, (_, i) => event(`e${i}`))), 413).error).toMatch(/over the limit of 1000 bytes/);
  });

  it('invalid JSON, an empty body, a __proto__ key → 400; another media type → 415', async () => {
    const { app } = make();
    expect(expectError(await post(app, '/v1/events', '{"id": "a",'), 400, 'XREF_INVALID_JSON').error).toMatch(/^the body is not valid JSON \(/);
    expect(expectError(await post(app, '/v1/batch', ''), 400, 'XREF_INVALID_JSON').error).toMatch(/empty/);
    expectError(await post(app, '/v1/events', '{"id":"a","ids":{"a":"b"},"data":{"__proto__":{"polluted":true}}}'), 400, 'XREF_INVALID_JSON');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const media = expectError(await app.inject({ method: 'POST', url: '/v1/events', headers: { ...AUTH, 'content-type': 'application/xml' }, payload: '<e/>' }), 415);
    expect(media.error).toMatch(/Content-Type "application\/xml" is not supported/);
  });

  it('a gzip, deflate or br body (Content-Encoding) is decompressed; the body limit applies to what it expands to', async () => {
    const { app, sink } = make();
    const compressors = { gzip: gzipSync, 'x-gzip': gzipSync, deflate: deflateSync, br: brotliCompressSync };
    for (const [encoding, compress] of Object.entries(compressors)) {
      const batch = { batch: [{ type: 'track', event: 'E', userId: 'u', messageId: `m-${encoding}` }] };
      const response = await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, 'content-type': 'application/json', 'content-encoding': encoding }, payload: compress(JSON.stringify(batch)) });
      expect(response.statusCode, response.body).toBe(200);
    }
    expect(sink.events.map((e) => e.id)).toEqual(['m-gzip', 'm-x-gzip', 'm-deflate', 'm-br']);
    // a few KB of gzip that would expand past the 500 KB limit
    const bomb = gzipSync(JSON.stringify({ batch: [{ type: 'track', event: 'E', userId: 'u', properties: { pad: 'x'.repeat(2_000_000) } }] }));
    expect(bomb.length).toBeLessThan(10_000);
    const tooLarge = { method: 'POST' as const, url: '/v1/batch', headers: { ...AUTH, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: bomb };
    expect(expectError(await app.inject(tooLarge), 413, 'XREF_LIMIT_EXCEEDED').error).toMatch(/over the limit/);
    expect(sink.events).toHaveLength(4);
  });

  it('a body that is not what its Content-Encoding says → 400, an unknown encoding → 415, both naming the header', async () => {
    const { app, sink } = make();
    const send = (encoding: string, payload: Buffer | string) =>
      app.inject({ method: 'POST', url: '/v1/events', headers: { ...AUTH, 'content-type': 'application/json', 'content-encoding': encoding }, payload });
    const corrupt = expectError(await send('gzip', JSON.stringify(event('e1'))), 400, 'XREF_INVALID_REQUEST');
    expect(corrupt).toMatchObject({ field: 'content-encoding' });
    expect(corrupt.error).toMatch(/could not be decompressed as Content-Encoding "gzip" says/);
    const truncated = gzipSync(JSON.stringify(event('e2')));
    expectError(await send('gzip', truncated.subarray(0, truncated.length - 8)), 400, 'XREF_INVALID_REQUEST');
    const unknown = expectError(await send('compress', 'x'), 415, 'XREF_UNSUPPORTED_MEDIA_TYPE');
    expect(unknown).toMatchObject({ field: 'content-encoding' });
    expect(unknown.error).toMatch(/Content-Encoding "compress" is not supported/);
    expect((await send('identity', JSON.stringify(event('e3')))).statusCode).toBe(200);
    expect(sink.events.map((e) => e.id)).toEqual(['e3']);
  });

  it('a deeply nested event is rejected with a message, not a crash', async () => {
    const { app } = make();
    const deep = `{"id":"d","ids":{"a":"b"},"data":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`;
    const body = expectError(await post(app, '/v1/events', deep), 400, 'XREF_INVALID_EVENT');
    expect(body.error).toMatch(/nested too deeply/);
  });
});

describe('durability: 2xx only once the sink confirmed every event', () => {
  it('a sink that does not answer within the deadline → 503 with Retry-After; the events are stored later', async () => {
    const { app, sink } = make({ publishDeadlineMs: 120 });
    sink.set('hang');
    const started = Date.now();
    const response = await post(app, '/v1/batch', { batch: [{ type: 'track', messageId: 'h1', event: 'E', userId: 'u' }] });
    const body = expectError(response, 503, 'XREF_NATS_UNAVAILABLE');
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
    expect(response.headers['retry-after']).toBe('1');
    expect(body.error).toMatch(/did not confirm the event within 120 ms.*send the request again/);
    sink.release();
    expect(sink.events.map((e) => e.id)).toEqual(['h1']);
    // the client's retry: stored once
    expect((await post(app, '/v1/batch', { batch: [{ type: 'track', messageId: 'h1', event: 'E', userId: 'u' }] })).json()).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it('Retry-After is the deadline in whole seconds', async () => {
    const { app, sink } = make({ publishDeadlineMs: 2100 });
    sink.set('fail', new Error('nats is down'));
    const response = await post(app, '/v1/events', event('f1'));
    expect(expectError(response, 503, 'XREF_NATS_UNAVAILABLE').error).toMatch(/could not be stored \(nats is down\)/);
    expect(response.headers['retry-after']).toBe('3');
  });

  it('when only some events are confirmed, the request is still a 503 (never a 2xx)', async () => {
    const { app, sink } = make({ publishDeadlineMs: 100 });
    let calls = 0;
    const publish = sink.publish.bind(sink);
    sink.publish = (e, json) => (++calls === 2 ? new Promise(() => undefined) : publish(e, json));
    expectError(await post(app, '/v1/events', [event('p1'), event('p2'), event('p3')]), 503);
    expect(sink.events.map((e) => e.id)).toEqual(['p1', 'p3']);
  });
});

describe('health and metrics', () => {
  it('/livez → 200', async () => {
    const { app } = make();
    expect((await app.inject({ url: '/livez' })).json()).toEqual({ live: true });
  });

  it('/readyz → 200 when ready, 503 with the failing checks otherwise', async () => {
    const { app, setReadiness } = make();
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ ready: true, checks: { nats: true } });
    setReadiness({ ready: false, checks: { nats: true, 'stream XREF_IN': 'stream not found' } });
    const body = expectError(await app.inject({ url: '/readyz' }), 503, 'XREF_NOT_READY');
    expect(body.error).toBe('not ready: stream XREF_IN: stream not found');
    expect(body.checks).toEqual({ nats: true, 'stream XREF_IN': 'stream not found' });
  });

  it('/readyz → 503 when the check throws or hangs', async () => {
    const throwing = make({ readiness: async () => Promise.reject(new Error('boom')) });
    expect(expectError(await throwing.app.inject({ url: '/readyz' }), 503).error).toMatch(/the check failed: boom/);
    const hanging = make({ readiness: () => new Promise(() => undefined), readinessTimeoutMs: 50 });
    expect(expectError(await hanging.app.inject({ url: '/readyz' }), 503).error).toMatch(/no answer within 50 ms/);
  });

  it('/readyz → 503 once shutting down, while the routes still answer', async () => {
    const { app } = make();
    expect(isShuttingDown(app)).toBe(false);
    markShuttingDown(app);
    expect(expectError(await app.inject({ url: '/readyz' }), 503, 'XREF_NOT_READY').error).toBe('not ready: shutting down');
    expect((await app.inject({ url: '/livez' })).statusCode).toBe(200);
    expect((await post(app, '/v1/events', event('late'))).statusCode).toBe(200);
  });

  it('app.close(): a request in flight finishes; one arriving during the close gets a 503 in xref\'s format', async () => {
    const { app, sink } = testApp({ publishDeadlineMs: 10_000 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 }); // B waits behind A on A's connection
    const send = (id: string) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const payload = JSON.stringify(event(id));
        const req = request(
          { host: '127.0.0.1', port, path: '/v1/events', method: 'POST', agent, headers: { ...AUTH, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
          (res) => {
            let body = '';
            res.on('data', (chunk: Buffer) => (body += chunk.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    try {
      expect((await send('warm')).status).toBe(200);
      sink.set('hang');
      const a = send('a');
      await waitFor('A to reach the sink', () => sink.hanging === 1, 5_000);
      const closed = app.close();
      await waitFor('the close to begin', () => isShuttingDown(app), 5_000);
      const b = send('b');
      sink.release();
      expect(await a).toMatchObject({ status: 200 });
      const refused = await b;
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(JSON.parse(refused.body)).toEqual({ code: 'XREF_NOT_READY', error: 'the collector is shutting down: send the request again (the same ids are stored once)' });
      await closed;
      expect(sink.events.map((e) => e.id)).toEqual(['warm', 'a']);
    } finally {
      agent.destroy();
      await app.close();
    }
  });

  it('/metrics: Prometheus text with received, accepted, rejected by reason, latency, and the engine gauges', async () => {
    const { app, metrics } = make();
    await post(app, '/v1/events', [event('a'), { id: 'b' }]);
    await post(app, '/v1/events', event('a'));
    await post(app, '/v1/events', '{oops');
    await post(app, '/v1/events', event('c'), {});
    setEngineGauges(metrics, { lag: 12, liveActors: 3, bufferedIdentifiers: 2, unmatched: { expired: 4 }, audit: { link: 5, conflict: 1 } });
    const response = await app.inject({ url: '/metrics' });
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0.0.4/);
    const text = response.body;
    for (const line of [
      'xref_http_events_received_total{route="/v1/events"} 3',
      'xref_http_events_accepted_total{route="/v1/events"} 1',
      'xref_http_events_duplicate_total{route="/v1/events"} 1',
      'xref_http_rejected_total{reason="invalid_event"} 1',
      'xref_http_rejected_total{reason="invalid_json"} 1',
      'xref_http_rejected_total{reason="unauthorized"} 1',
      'xref_http_request_duration_seconds_count{route="/v1/events",method="POST",status="200"} 2',
      'xref_engine_lag_events 12',
      'xref_engine_live_actors 3',
      'xref_engine_buffered_identifiers 2',
      'xref_engine_unmatched_events{reason="expired"} 4',
      'xref_engine_audit_records{reason="link"} 5',
    ]) {
      expect(text).toContain(line);
    }
  });

  it('an unknown route → 404 JSON listing the routes', async () => {
    const { app } = make();
    const body = expectError(await app.inject({ method: 'POST', url: '/v2/events' }), 404, 'XREF_NOT_FOUND');
    expect(body.error).toMatch(/^no route POST \/v2\/events: the routes are POST \/v1\/events/);
    expectError(await app.inject({ method: 'GET', url: '/v1/events' }), 404);
  });
});

describe('collector settings', () => {
  it('defaults, and the Segment user kind must be an internal kind of the identity config', async () => {
    const settings = loadSettings({ XREF_WRITE_KEYS: 'k' });
    expect(settings).toMatchObject({ httpPublishDeadlineMs: 5000, httpMaxEventBytes: 32768, httpMaxRequestBytes: 512000, segmentUserKind: 'user_id', httpHost: '0.0.0.0' });
    expect(collectorSettings(settings)).toEqual({ writeKeys: new Set(['k']), limits: defaultLimits(), publishDeadlineMs: 5000, segmentUserKind: 'user_id', errorsPerSecond: 100 });
    const { resolveConfig } = await import('../../src/domain/config.ts');
    const config = resolveConfig({ internal: ['user_id'], schemas: { purchase: true } });
    expect(collectorSettings(loadSettings({ XREF_WRITE_KEYS: 'k', XREF_ERRORS_PER_SECOND: '7' }), { config })).toMatchObject({ config, errorsPerSecond: 7 });
    expect(() => collectorSettings(settings, { config: resolveConfig({ internal: ['db_id'] }) })).toThrow(/XREF_SEGMENT_USER_KIND must be one of the internal kinds/);
    expect(() => loadSettings({ XREF_SEGMENT_USER_KIND: 'no spaces' })).toThrow(/XREF_SEGMENT_USER_KIND/);
    expect(() => loadSettings({ XREF_HTTP_PUBLISH_DEADLINE_MS: '0' })).toThrow(/XREF_HTTP_PUBLISH_DEADLINE_MS/);
    expect(() => loadSettings({ XREF_INSECURE_NO_AUTH: 'maybe' })).toThrow(/XREF_INSECURE_NO_AUTH/);
  });
});
