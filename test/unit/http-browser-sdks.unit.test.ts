/**
 * What the SDKs that nobody here wrote need from the collector, without a network:
 * - RudderStack's Node SDK labels its (gzipped) JSON application/x-www-form-urlencoded;
 * - analytics.js (@segment/analytics-next) first fetches GET /v1/projects/<key>/settings and then
 *   posts where that document's Segment.io integration says;
 * - refused requests (4xx) are logged at info, without the key or the body.
 */
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { type XrefApp } from '../../src/http/app.ts';
import { INSECURE_NO_AUTH } from '../../src/http/auth.ts';
import { parsePublicUrl } from '../../src/http/cdn-settings.ts';
import { collectorSettings } from '../../src/http/collector.ts';
import { AUTH, WRITE_KEY, basic, expectError, testApp, useTestApps } from '../helpers/http.ts';

const make = useTestApps();

const batch = (id: string) => JSON.stringify({ batch: [{ type: 'track', messageId: id, event: 'Clicked', anonymousId: 'a1' }] });
const compressors: Record<string, (text: string) => Buffer> = {
  identity: (text) => Buffer.from(text),
  gzip: (text) => gzipSync(text),
  deflate: (text) => deflateSync(text),
  br: (text) => brotliCompressSync(text),
};

describe('request bodies: JSON however it is labelled', () => {
  it('JSON labelled application/json, text/plain or application/x-www-form-urlencoded, compressed or not, is stored', async () => {
    const { app, sink } = make();
    const types = ['application/json', 'application/json; charset=utf-8', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8'];
    const sent: string[] = [];
    for (const type of types) {
      for (const [encoding, compress] of Object.entries(compressors)) {
        const id = `${type}|${encoding}`;
        sent.push(id);
        const response = await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, 'content-type': type, 'content-encoding': encoding }, payload: compress(batch(id)) });
        expect(response.statusCode, `${id}: ${response.body}`).toBe(200);
        expect(response.json()).toEqual({ success: true, accepted: 1, duplicates: 0, rejected: [], seq: sent.length });
      }
    }
    expect(sink.events.map((e) => e.id)).toEqual(sent);
    expect(sink.events[0]).toMatchObject({ name: 'Clicked', ids: { anonymous_id: 'a1' } });
  });

  it('RudderStack\'s request as its Node SDK sends it (gzip, form-urlencoded label, Basic auth) → 200', async () => {
    const { app, sink } = make();
    const body = {
      batch: [
        { type: 'page', anonymousId: 'rs-anon', name: 'Home', messageId: 'rs-1', channel: 'server', originalTimestamp: '2024-05-01T11:59:00.000Z', sentAt: '2024-05-01T11:59:30.000Z', _metadata: { nodeVersion: '20' } },
      ],
      timestamp: '2024-05-01T11:59:30.000Z',
      sentAt: '2024-05-01T11:59:30.000Z',
    };
    const response = await app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip', 'user-agent': 'analytics-node/3.0.13' },
      payload: gzipSync(JSON.stringify(body)),
    });
    expect(response.statusCode, response.body).toBe(200);
    // event time with the client's clock skew removed: received 12:00:00, sent 30 s after the event
    expect(sink.events).toEqual([expect.objectContaining({ id: 'rs-1', name: 'page', ids: { anonymous_id: 'rs-anon' }, timestamp: '2024-05-01T11:59:30.000Z', data: { name: 'Home' } })]);
  });

  it('a body that is not JSON, or a media type that is not one of those → 400/415 naming content-type and the value', async () => {
    const { app, sink } = make();
    const send = (type: string | undefined, payload: string | Buffer, encoding?: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { ...AUTH, ...(type === undefined ? {} : { 'content-type': type }), ...(encoding === undefined ? {} : { 'content-encoding': encoding }) },
        payload,
      });

    const form = expectError(await send('application/x-www-form-urlencoded', 'batch=1&writeKey=x'), 415, 'XREF_UNSUPPORTED_MEDIA_TYPE');
    expect(form.field).toBe('content-type');
    expect(form.error).toMatch(/^Content-Type "application\/x-www-form-urlencoded" is read as JSON only, and this body is not JSON/);
    const gzippedForm = expectError(await send('application/x-www-form-urlencoded', gzipSync('a=1'), 'gzip'), 415);
    expect(gzippedForm.field).toBe('content-type');

    for (const type of ['application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream']) {
      const body = expectError(await send(type, batch('x')), 415, 'XREF_UNSUPPORTED_MEDIA_TYPE');
      expect(body.field).toBe('content-type');
      expect(body.error).toContain(`Content-Type ${JSON.stringify(type)} is not supported`);
      expect(body.error).toMatch(/application\/json, text\/plain .* or application\/x-www-form-urlencoded/);
    }
    const none = expectError(await send(undefined, batch('x')), 415);
    expect(none).toMatchObject({ field: 'content-type' });
    expect(none.error).toMatch(/^Content-Type \(none\) is not supported/);

    // JSON that is broken stays a JSON error, whatever the label
    for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded']) {
      expect(expectError(await send(type, '{"batch": ['), 400, 'XREF_INVALID_JSON').field).toBe('body');
      expect(expectError(await send(type, '  '), 400, 'XREF_INVALID_JSON').error).toMatch(/empty/);
    }
    expect(sink.publishes).toBe(0);
  });
});

describe('GET /v1/projects/:writeKey/settings (analytics.js)', () => {
  const get = (app: XrefApp, key: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: `/v1/projects/${encodeURIComponent(key)}/settings`, headers });

  it('a configured key → the settings document, its Segment.io integration pointing at this server (from Host), no auth, CORS', async () => {
    const { app } = make();
    const response = await get(app, WRITE_KEY, { host: 'collector.internal:8080', origin: 'https://shop.example.com' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    const doc = response.json();
    expect(doc.integrations).toEqual({
      'Segment.io': { apiKey: WRITE_KEY, apiHost: 'collector.internal:8080/v1', protocol: 'http', addBundledMetadata: false, unbundledIntegrations: [], maybeBundledConfigIds: {} },
    });
    // nothing for analytics.js to load or send elsewhere: no remote metrics, plugins, middleware
    expect(doc).toMatchObject({ metrics: { sampleRate: 0 }, remotePlugins: [], enabledMiddleware: {}, middlewareSettings: {}, legacyVideoPluginsEnabled: false, edgeFunction: {} });
    expect(doc.plan.track.__default).toEqual({ enabled: true, integrations: {} });
  });

  it('behind a TLS proxy: X-Forwarded-Proto https → protocol https', async () => {
    const { app } = make();
    const doc = (await get(app, WRITE_KEY, { host: 'xref.example.com', 'x-forwarded-proto': 'https, http' })).json();
    expect(doc.integrations['Segment.io']).toMatchObject({ apiHost: 'xref.example.com/v1', protocol: 'https' });
  });

  it('XREF_PUBLIC_URL wins over the request (a path prefix included)', async () => {
    const { app } = make({ publicUrl: 'https://Track.Example.com/xref/' });
    const doc = (await get(app, WRITE_KEY, { host: '10.0.0.7:8080', 'x-forwarded-proto': 'http' })).json();
    expect(doc.integrations['Segment.io']).toMatchObject({ apiKey: WRITE_KEY, apiHost: 'track.example.com/xref/v1', protocol: 'https' });
    const port = make({ publicUrl: 'http://127.0.0.1:9000' });
    expect((await get(port.app, WRITE_KEY)).json().integrations['Segment.io']).toMatchObject({ apiHost: '127.0.0.1:9000/v1', protocol: 'http' });
  });

  it('an unknown key → 404 with a JSON error that does not repeat the key, CORS too; counted as unauthorized', async () => {
    const { app, metrics } = make();
    const response = await get(app, 'wk_unknown_55aa', { host: 'x.example.com' });
    const body = expectError(response, 404, 'XREF_NOT_FOUND');
    expect(body.error).toMatch(/no settings for this write key/);
    expect(response.body).not.toContain('wk_unknown_55aa');
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect((await metrics.registry.getSingleMetricAsString('xref_http_rejected_total'))).toMatch(/reason="unauthorized"} 1/);
    expect((await get(app, '', { host: 'x.example.com' })).statusCode).toBe(404);
  });

  it('a Host header that is no host name → 400 naming host; with --insecure-no-auth any key gets its document', async () => {
    const { app } = make();
    const body = expectError(await get(app, WRITE_KEY, { host: 'evil"host/path' }), 400, 'XREF_INVALID_REQUEST');
    expect(body.field).toBe('host');
    expect(body.error).toMatch(/XREF_PUBLIC_URL/);
    const open = make({ writeKeys: INSECURE_NO_AUTH });
    expect((await get(open.app, 'any-key', { host: 'localhost:8080' })).json().integrations['Segment.io']).toMatchObject({ apiKey: 'any-key', apiHost: 'localhost:8080/v1' });
  });

  it('the CORS preflight allows GET and the headers analytics.js sends (Authorization, X-Retry-Count)', async () => {
    const { app } = make();
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/p',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-retry-count' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
    expect(preflight.headers['access-control-allow-methods']).toMatch(/GET/);
    expect(preflight.headers['access-control-allow-headers']).toBe('authorization,content-type,x-retry-count');
    const plain = await app.inject({ method: 'OPTIONS', url: '/v1/projects/k/settings', headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'GET' } });
    expect(plain.headers['access-control-allow-headers']).toMatch(/Authorization.*X-Retry-Count/);
  });
});

describe('XREF_PUBLIC_URL', () => {
  it('read with the collector settings; a bad value is refused naming the variable and the value', () => {
    const settings = (env: Record<string, string>) => loadSettings({ XREF_WRITE_KEYS: 'k', ...env });
    expect(collectorSettings(settings({})).publicUrl).toBeUndefined();
    expect(collectorSettings(settings({ XREF_PUBLIC_URL: ' https://xref.example.com ' })).publicUrl).toBe('https://xref.example.com');
    for (const bad of ['xref.example.com', 'ftp://xref.example.com', 'https://user:pw@xref.example.com', 'https://xref.example.com/?a=1', 'https://xref.example.com/#x', 'https://xref.example.com/v1']) {
      expect(() => collectorSettings(settings({ XREF_PUBLIC_URL: bad })), bad).toThrow(`config XREF_PUBLIC_URL must be the URL browsers reach this server at`);
      expect(() => collectorSettings(settings({ XREF_PUBLIC_URL: bad })), bad).toThrow(`got ${JSON.stringify(bad)}`);
    }
    expect(() => testApp({ publicUrl: 'nope' })).toThrow(/XREF_PUBLIC_URL .* got "nope"/);
  });

  it('parsePublicUrl: scheme, host[:port] and path prefix', () => {
    expect(parsePublicUrl(undefined)).toBeUndefined();
    expect(parsePublicUrl('')).toBeUndefined();
    expect(parsePublicUrl('https://xref.example.com')).toEqual({ protocol: 'https', host: 'xref.example.com' });
    expect(parsePublicUrl('https://xref.example.com:443/')).toEqual({ protocol: 'https', host: 'xref.example.com' });
    expect(parsePublicUrl('http://[::1]:8080/a/b//')).toEqual({ protocol: 'http', host: '[::1]:8080/a/b' });
  });
});

describe('refused requests are logged at info, without the key or the body', () => {
  const SECRET_BODY = 'body-secret-9d3f';
  const infoLines = (lines: string[]) =>
    lines.map((line) => JSON.parse(line) as Record<string, unknown> & { level: number; msg: string }).filter((entry) => entry.level === 30 && entry.msg.startsWith('request refused'));

  it('401, 415, 400, 413 and 404 each log one info line with the status and code', async () => {
    const { app, lines } = make({ limits: { ...(await import('../../src/domain/limits.ts')).defaultLimits(), batchBytes: 2000 } });
    const json = { 'content-type': 'application/json' };
    const answers = [
      await app.inject({ method: 'POST', url: '/v1/batch', headers: json, payload: batch(SECRET_BODY) }), // 401: no key
      await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...json, authorization: basic('wk_wrong_header_k') }, payload: batch(SECRET_BODY) }), // 401
      await app.inject({ method: 'POST', url: '/v1/t', headers: json, payload: JSON.stringify({ writeKey: 'wk_wrong_body_k', event: SECRET_BODY, anonymousId: 'a' }) }), // 401
      await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, 'content-type': 'application/x-www-form-urlencoded' }, payload: `a=${SECRET_BODY}` }), // 415
      await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, ...json }, payload: `{"batch": [${SECRET_BODY}` }), // 400 invalid JSON
      await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, ...json }, payload: JSON.stringify({ batch: [{ type: 'track', event: 'E', userId: { secret: SECRET_BODY } }] }) }), // 400 all rejected
      await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, ...json }, payload: JSON.stringify({ batch: [], pad: SECRET_BODY.repeat(200) }) }), // 413
      await app.inject({ method: 'GET', url: '/v1/projects/wk_unknown_path_k/settings?x=1' }), // 404
      await app.inject({ method: 'GET', url: '/v2/nothing' }), // 404
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([401, 401, 401, 415, 400, 400, 413, 404, 404]);

    const logged = infoLines(lines);
    expect(logged.map((entry) => [entry.status, entry.code])).toEqual([
      [401, 'XREF_UNAUTHORIZED'],
      [401, 'XREF_UNAUTHORIZED'],
      [401, 'XREF_UNAUTHORIZED'],
      [415, 'XREF_UNSUPPORTED_MEDIA_TYPE'],
      [400, 'XREF_INVALID_JSON'],
      [400, 'XREF_INVALID_EVENT'],
      [413, 'XREF_LIMIT_EXCEEDED'],
      [404, 'XREF_NOT_FOUND'],
      [404, 'XREF_NOT_FOUND'],
    ]);
    expect(logged[0]).toMatchObject({ msg: 'request refused: 401 XREF_UNAUTHORIZED', why: expect.stringMatching(/write key is required/), req: { method: 'POST', url: '/v1/batch' } });
    expect(logged[3]).toMatchObject({ field: 'content-type', why: expect.stringContaining('"application/x-www-form-urlencoded"') });
    expect(logged[5]).toMatchObject({ rejected: [{ index: 0, field: 'userId', code: 'XREF_INVALID_EVENT' }] });
    expect(logged[7]).toMatchObject({ req: { method: 'GET', url: '/v1/projects/[redacted]/settings' } });
    expect(logged[1]!.req).toMatchObject({ headers: { authorization: '[redacted]' } });

    const all = lines.join('');
    for (const secret of [SECRET_BODY, 'wk_wrong_header_k', 'wk_wrong_body_k', 'wk_unknown_path_k', WRITE_KEY, basic('wk_wrong_header_k').slice(6), AUTH.authorization.slice(6)]) {
      expect(all, secret).not.toContain(secret);
    }
  });

  it('a stored request logs nothing at info', async () => {
    const { app, lines } = make();
    expect((await app.inject({ method: 'POST', url: '/v1/batch', headers: { ...AUTH, 'content-type': 'application/json' }, payload: batch('ok') })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v1/projects/${WRITE_KEY}/settings` })).statusCode).toBe(200);
    expect(lines.map((line) => JSON.parse(line) as { level: number }).filter((entry) => entry.level >= 30)).toEqual([]);
    expect(lines.join('')).not.toContain(WRITE_KEY);
  });
});
