/**
 * The collector's payload rules and error records: schema, unknown-type and future-timestamp
 * rejections answered by index with the good events stored, every refused item recorded (storm
 * bounded), counted on /metrics, and `seq` in the 2xx answers. The routes are registered on the
 * server as `buildApp` does, with the config and the error budget they take.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { collectorRoutes } from '../../src/http/collector-routes.ts';
import { createMetrics, setEngineGauges } from '../../src/http/metrics.ts';
import { type XrefServer, createServer } from '../../src/http/server.ts';
import { AUTH, WRITE_KEY, basic, expectError } from '../helpers/http.ts';
import { ScriptedSink } from '../helpers/scripted-sink.ts';

const NOW = Date.parse('2024-05-01T12:00:00.000Z');
const PURCHASE = { type: 'object', required: ['price'], properties: { price: { type: 'number' } } };

const apps: XrefServer[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function collector(config: ConfigInput = {}, errorsPerSecond = 100) {
  const sink = new ScriptedSink();
  const metrics = createMetrics({ processMetrics: false });
  const limits = defaultLimits();
  const app = createServer({ logger: pino({ level: 'silent' }), limits, metrics, routes: 'the collector routes' });
  app.register(collectorRoutes, {
    publisher: sink,
    writeKeys: new Set([WRITE_KEY]),
    limits,
    metrics,
    publishDeadlineMs: 150,
    segment: { userKind: 'user_id', limits },
    now: () => NOW,
    publicOrigin: undefined,
    config: resolveConfig(config),
    errorsPerSecond,
  });
  apps.push(app);
  return { app, sink, metrics };
}

const post = (app: XrefServer, url: string, payload: unknown, headers: Record<string, string> = AUTH) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(payload) });

const event = (id: string, extra: Record<string, unknown> = {}) => ({ id, name: 'purchase', ids: { cookie: `c-${id}` }, data: { price: 1 }, ...extra });
const iso = (ms: number) => new Date(NOW + ms).toISOString();

describe('the collector applies the payload rules, by index', () => {
  it('schema, unknown-type and future-timestamp rejections are answered by index; the good ones are stored', async () => {
    const { app, sink } = collector({ schemas: { purchase: PURCHASE, pageview: true }, unknownTypes: 'reject', maxFutureMs: 60_000 });
    const response = await post(app, '/v1/events', [
      event('good1'),
      event('bad-schema', { data: { price: 'free' } }),
      event('unknown', { name: 'signup' }),
      event('future', { timestamp: iso(60_001) }),
      event('edge', { timestamp: iso(60_000) }),
      event('no-data', { name: 'pageview', data: undefined }),
    ]);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({
      success: true,
      accepted: 3,
      duplicates: 0,
      rejected: [
        { index: 1, field: 'data.price', code: 'XREF_SCHEMA_VIOLATION', error: 'data.price must be number, got "free" (schema purchase)' },
        { index: 2, field: 'name', code: 'XREF_UNKNOWN_EVENT_TYPE', error: 'name "signup" has no schema, and unknownTypes is "reject" (known: purchase, pageview)' },
        { index: 3, field: 'timestamp', code: 'XREF_FUTURE_TIMESTAMP', error: `timestamp "${iso(60_001)}" is 60001 ms ahead of its arrival, over maxFutureMs 60000` },
      ],
      seq: 3,
    });
    expect(sink.events.map((e) => e.id)).toEqual(['good1', 'edge', 'no-data']);
  });

  it('the Segment routes too: the future check against the time the request arrived', async () => {
    const { app, sink } = collector({ schemas: { 'Order Completed': PURCHASE } });
    const response = await post(app, '/v1/batch', {
      batch: [
        { type: 'track', messageId: 's1', anonymousId: 'a', event: 'Order Completed', properties: { price: 3 } },
        { type: 'track', messageId: 's2', anonymousId: 'a', event: 'Order Completed', properties: {} },
        { type: 'track', messageId: 's3', anonymousId: 'a', event: 'Clicked', timestamp: iso(300_001) },
      ],
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([
      [1, 'XREF_SCHEMA_VIOLATION'],
      [2, 'XREF_FUTURE_TIMESTAMP'],
    ]);
    expect(sink.events.map((e) => e.id)).toEqual(['s1']);
  });

  it('all refused for the rules → 400 with the code of the first, nothing stored', async () => {
    const { app, sink } = collector({ schemas: { purchase: PURCHASE } });
    const body = expectError(await post(app, '/v1/events', event('x', { data: {} })), 400, 'XREF_SCHEMA_VIOLATION');
    expect(body).toMatchObject({ field: 'data.price', success: false, accepted: 0 });
    expect(sink.events).toEqual([]);
  });
});

describe('every refused item becomes an error record', () => {
  it('with origin http, the route, the index, the field, the value and the raw item; the good ones make none', async () => {
    const { app, sink } = collector({ schemas: { purchase: PURCHASE } });
    const bad = event('bad', { data: { price: 'free' } });
    await post(app, '/v1/events', [event('ok'), bad, { id: 'e2', ids: {} }, 'not an event']);
    expect(sink.errors).toHaveLength(3);
    const [schema, envelope, notObject] = sink.errors;
    expect(schema).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      reason: 'schema_violation',
      code: 'XREF_SCHEMA_VIOLATION',
      message: 'data.price must be number, got "free" (schema purchase)',
      field: 'data.price',
      value: '"free"',
      origin: 'http',
      source: '/v1/events',
      at: '2024-05-01T12:00:00.000Z',
      raw: JSON.stringify(bad),
      index: 1,
      eventId: 'bad',
    });
    expect(envelope).toMatchObject({ reason: 'invalid_event', field: 'ids', value: '{}', index: 2, eventId: 'e2' });
    expect(notObject).toMatchObject({ reason: 'invalid_event', index: 3, raw: '"not an event"' });
    expect(new Set(sink.errors.map((r) => r.id)).size).toBe(3);
  });

  it('limits too; a request refused whole records its items as well; a Segment writeKey is never kept', async () => {
    const { app, sink } = collector();
    await post(app, '/v1/events', event('huge', { data: { blob: 'x'.repeat(40_000) } }));
    expect(sink.errors.map((r) => [r.reason, r.field, r.index])).toEqual([['limit_exceeded', 'event', 0]]);
    expect(sink.errors[0]!.raw).toMatch(/… \[cut: \d+ characters in all\]$/);
    await post(app, '/v1/track', { writeKey: WRITE_KEY, messageId: 'm1', event: 'E' }, {});
    expect(sink.errors[1]).toMatchObject({ reason: 'invalid_event', source: '/v1/track', field: 'userId', index: 0 });
    expect(JSON.parse(sink.errors[1]!.raw!)).toEqual({ messageId: 'm1', event: 'E' });
    expect(JSON.stringify(sink.errors)).not.toContain(WRITE_KEY);
  });

  it('storms are bounded: at most N per reason per second in full, every one counted on /metrics', async () => {
    const { app, sink, metrics } = collector({ schemas: { purchase: PURCHASE } }, 2);
    const bad = (i: number) => event(`bad-${i}`, { data: {} });
    await post(app, '/v1/events', [bad(1), bad(2), bad(3), { id: 'x', ids: {} }, event('ok')]);
    await post(app, '/v1/events', [bad(4)]);
    expect(sink.errors.map((r) => [r.reason, r.index])).toEqual([
      ['schema_violation', 0],
      ['schema_violation', 1],
      ['invalid_event', 3],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('xref_errors_total{reason="schema_violation",origin="http"} 4');
    expect(text).toContain('xref_errors_total{reason="invalid_event",origin="http"} 1');
    expect(text).toContain('xref_errors_dropped_total{reason="schema_violation",origin="http"} 2');
    expect(text).toContain('xref_http_rejected_total{reason="schema_violation"} 4');
  });

  it("the engine's counts reach the same counters, origin engine, as they grow (a new engine's from 0)", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const first = { errorsBy: { future_timestamp: 2 }, errorsDroppedBy: {} as Record<string, number> };
    setEngineGauges(metrics, { errors: first.errorsBy, errorsDropped: first.errorsDroppedBy });
    first.errorsBy.future_timestamp = 5;
    first.errorsDroppedBy.future_timestamp = 1;
    setEngineGauges(metrics, { errors: first.errorsBy, errorsDropped: first.errorsDroppedBy });
    setEngineGauges(metrics, { errors: first.errorsBy, errorsDropped: first.errorsDroppedBy });
    // a standby took over: its own stats, from 0
    setEngineGauges(metrics, { errors: { future_timestamp: 1 }, errorsDropped: {} });
    const text = await metrics.registry.metrics();
    expect(text).toContain('xref_errors_total{reason="future_timestamp",origin="engine"} 6');
    expect(text).toContain('xref_errors_dropped_total{reason="future_timestamp",origin="engine"} 1');
  });
});

describe('seq in the 2xx answers', () => {
  it('is the highest XREF_IN sequence among the events stored or found stored by the request', async () => {
    const { app } = collector();
    expect((await post(app, '/v1/events', [event('a'), event('b')])).json()).toMatchObject({ accepted: 2, seq: 2 });
    expect((await post(app, '/v1/events', event('c'))).json()).toMatchObject({ accepted: 1, seq: 3 });
    // only duplicates: the seq they were stored at
    expect((await post(app, '/v1/events', [event('a')])).json()).toMatchObject({ accepted: 0, duplicates: 1, seq: 1 });
    expect((await post(app, '/v1/events', [event('b'), event('d'), { id: 'bad' }])).json()).toMatchObject({ accepted: 1, duplicates: 1, seq: 4 });
    expect((await post(app, '/v1/track', { messageId: 'm', userId: 'u', event: 'E' }, { authorization: basic(WRITE_KEY) })).json()).toMatchObject({ seq: 5 });
  });
});
