/**
 * Fuzz: ≥ 10k malformed bodies (random JSON values, a wrong type in each field, huge strings,
 * broken JSON text, deep nesting) against every ingest route through inject(). Every one must get
 * a 4xx with a JSON error message (never a 5xx, never a 2xx, nothing stored), the app must keep
 * answering, and the heap must not grow.
 */
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { AUTH, testApp } from '../helpers/http.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const quiet = pino({ level: 'warn' }, new Writable({ write: (_chunk, _encoding, done) => done() }));
const { app, sink } = testApp({ logger: quiet });
afterAll(() => app.close());

const SEGMENT_ROUTES = ['/v1/track', '/v1/identify', '/v1/page', '/v1/screen', '/v1/group', '/v1/alias'] as const;
const ROUTES = ['/v1/events', '/v1/batch', ...SEGMENT_ROUTES] as const;
type Route = (typeof ROUTES)[number];

let sent = 0;
const failures: string[] = [];

/** Posts one body (JSON text) and checks the answer; returns nothing, records failures. */
async function hit(route: string, text: string): Promise<void> {
  sent++;
  const response = await app.inject({ method: 'POST', url: route, headers: { ...AUTH, 'content-type': 'application/json' }, payload: text });
  let body: { error?: unknown; code?: unknown } | undefined;
  try {
    body = JSON.parse(response.body) as typeof body;
  } catch {
    body = undefined;
  }
  const ok = response.statusCode >= 400 && response.statusCode < 500 && typeof body?.error === 'string' && body.error.length > 0 && typeof body.code === 'string';
  if (!ok && failures.length < 20) failures.push(`${route} ${response.statusCode} ${response.body.slice(0, 200)} <= ${text.slice(0, 200)}`);
  expect(ok, `${route} answered ${response.statusCode} ${response.body.slice(0, 300)} to ${text.slice(0, 300)}`).toBe(true);
}

const ISO = '2024-05-01T12:00:00.000Z';
const scalar = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.string({ maxLength: 30 }));
const notIso = fc.string({ maxLength: 20 }).map((s) => `x${s}`);
/** Anything but a string, an integer or null: a wrong id / messageId. */
const wrongId = fc.oneof(fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)), fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), scalar, { maxKeys: 3 }));
/** Not a string and not null: a wrong event / name / category. */
const wrongText = fc.oneof(fc.integer(), fc.boolean(), fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), scalar, { maxKeys: 2 }));
/** Not an object and not null: a wrong properties / traits / context. */
const wrongObject = fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 10 }), fc.array(scalar, { maxLength: 3 }));
const wrongTime = fc.oneof(fc.integer(), fc.boolean(), fc.array(scalar, { maxLength: 2 }), notIso);
const SKIP_KEYS = new Set(['id', 'ids', 'userId', 'anonymousId', 'previousId', 'batch']);
/** Random objects without the keys an event or a message needs. */
const keyless = fc.dictionary(fc.string({ maxLength: 12 }).filter((k) => !SKIP_KEYS.has(k)), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });

// ------------------------------------------------------------------------------------------
// A valid base per route, then one field replaced by a wrong value.

const nativeBase = () => ({ id: 'n-1', name: 'n', timestamp: ISO, ids: { cookie: 'c' }, data: {}, context: {} });
const nativeBroken: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ v: fc.oneof(wrongId, fc.integer(), fc.constant(''), fc.constant(null)) }).map(({ v }) => ({ ...nativeBase(), id: v })),
  fc.record({ f: fc.constantFrom('name', 'category', 'session_id'), v: fc.oneof(wrongText, fc.constant(''), fc.constant(null)) }).map(({ f, v }) => ({ ...nativeBase(), [f]: v })),
  wrongTime.map((v) => ({ ...nativeBase(), timestamp: v })),
  fc.oneof(wrongObject, fc.constant(null), fc.constant({})).map((v) => ({ ...nativeBase(), ids: v })),
  fc.oneof(wrongId, fc.constant(null)).map((v) => ({ ...nativeBase(), ids: { cookie: v } })),
  fc.string({ maxLength: 10 }).map((k) => ({ ...nativeBase(), ids: { [`${k} !`]: 'v' } })),
  fc.record({ f: fc.constantFrom('data', 'context'), v: fc.oneof(wrongObject, fc.constant(null)) }).map(({ f, v }) => ({ ...nativeBase(), [f]: v })),
  fc.record({ k: fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !['id', 'name', 'timestamp', 'ids', 'category', 'session_id', 'data', 'context'].includes(k)), v: fc.jsonValue({ maxDepth: 1 }) }).map(({ k, v }) => ({
    ...nativeBase(),
    [k]: v,
  })),
);

function segmentBase(type: string): Record<string, unknown> {
  const base: Record<string, unknown> = { type, messageId: 'm-1', anonymousId: 'a-1', userId: 'u-1', timestamp: ISO, context: {} };
  if (type === 'track') base.event = 'E';
  if (type === 'group') base.groupId = 'g-1';
  if (type === 'alias') base.previousId = 'a-1';
  return base;
}
const segmentType = fc.constantFrom('track', 'identify', 'page', 'screen', 'group', 'alias');
const segmentBroken: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ t: segmentType, f: fc.constantFrom('userId', 'anonymousId', 'messageId'), v: wrongId }).map(({ t, f, v }) => ({ ...segmentBase(t), [f]: v })),
  fc.record({ v: wrongId }).map(({ v }) => ({ ...segmentBase('alias'), previousId: v })),
  fc.record({ v: wrongId }).map(({ v }) => ({ ...segmentBase('group'), groupId: v })),
  fc.record({ t: segmentType }).map(({ t }) => ({ ...segmentBase(t), userId: null, anonymousId: '', previousId: undefined })),
  fc.record({ t: segmentType, f: fc.constantFrom('event', 'name', 'category'), v: wrongText }).map(({ t, f, v }) => ({ ...segmentBase(t), [f]: v })),
  fc.record({ t: segmentType, f: fc.constantFrom('properties', 'traits', 'context', 'integrations'), v: wrongObject }).map(({ t, f, v }) => ({ ...segmentBase(t), [f]: v })),
  fc.record({ t: segmentType, f: fc.constantFrom('timestamp', 'sentAt', 'originalTimestamp'), v: wrongTime }).map(({ t, f, v }) => ({ ...segmentBase(t), [f]: v })),
  fc.record({ t: segmentType, v: fc.oneof(fc.integer(), fc.boolean(), fc.array(scalar, { maxLength: 2 })) }).map(({ t, v }) => ({ ...segmentBase(t), receivedAt: v })),
  fc.record({ v: fc.oneof(fc.integer(), fc.string({ maxLength: 10 }).filter((s) => !['track', 'identify', 'page', 'screen', 'group', 'alias'].includes(s))) }).map(({ v }) => ({
    ...segmentBase('track'),
    type: v,
    __inBatchOnly: true,
  })),
  fc.record({ v: fc.oneof(fc.constant(''), fc.constant(null)) }).map(({ v }) => ({ ...segmentBase('track'), event: v, __trackOnly: true })),
);

/** A broken message as a body for a route (the route's own type), or a batch of broken ones. */
function segmentBody(route: Route, messages: Array<Record<string, unknown>>): string | undefined {
  const clean = (m: Record<string, unknown>) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('__')));
  if (route === '/v1/batch') return JSON.stringify({ batch: messages.map(clean) });
  const m = messages[0]!;
  if (m.__inBatchOnly === true) return undefined; // a single route takes its type from the path
  const type = route.slice('/v1/'.length);
  if (m.__trackOnly === true && type !== 'track') return undefined;
  if (m.type !== type) return undefined; // broken for its own type; the route would use another
  return JSON.stringify(clean(m));
}

const route = fc.constantFrom(...ROUTES);

async function run(name: string, runs: number, property: fc.IAsyncProperty<never>) {
  const before = sent;
  const t0 = Date.now();
  await fc.assert(property, { numRuns: runs, seed: Number(process.env.XREF_FUZZ_SEED ?? 20240501) });
  expect(sent - before, name).toBeGreaterThan(0);
  if (process.env.XREF_FUZZ_TIMES) process.stderr.write(`${name}: ${sent - before} in ${Date.now() - t0} ms\n`);
}

async function round(scale = 1) {
  await run(
    'scalars',
    Math.round(1000 * scale),
    fc.asyncProperty(route, scalar, async (r, v) => hit(r, JSON.stringify(v))) as never,
  );
  await run(
    'random objects and arrays without the needed keys',
    Math.round(1600 * scale),
    fc.asyncProperty(route, fc.oneof(keyless, fc.array(fc.oneof(keyless, scalar), { maxLength: 5 })), async (r, v) => {
      if (r === '/v1/batch' && !Array.isArray(v)) return hit(r, JSON.stringify({ batch: [v] }));
      if (Array.isArray(v) && v.length === 0 && r === '/v1/batch') return hit(r, JSON.stringify({ batch: [] }));
      return hit(r, JSON.stringify(v));
    }) as never,
  );
  await run(
    'native events with one wrong field',
    Math.round(1600 * scale),
    fc.asyncProperty(fc.array(nativeBroken, { minLength: 1, maxLength: 4 }), fc.boolean(), async (events, single) =>
      hit('/v1/events', JSON.stringify(single ? events[0] : events)),
    ) as never,
  );
  let segmentHits = 0;
  await run(
    'Segment messages with one wrong field',
    Math.round(3200 * scale),
    fc.asyncProperty(fc.constantFrom(...ROUTES.slice(1)), fc.array(segmentBroken, { minLength: 1, maxLength: 4 }), async (r, messages) => {
      const text = segmentBody(r, messages);
      if (text === undefined) return hit(r, JSON.stringify({ ...messages[0], userId: {}, anonymousId: [] }));
      segmentHits++;
      return hit(r, text);
    }) as never,
  );
  expect(segmentHits).toBeGreaterThan(300 * scale);
  await run(
    'huge strings',
    Math.round(500 * scale),
    fc.asyncProperty(route, fc.integer({ min: 257, max: 40_000 }), fc.constantFrom('userId', 'anonymousId', 'id', 'kind', 'blob'), async (r, length, where) => {
      const huge = 'h'.repeat(length);
      if (r === '/v1/events') {
        if (where === 'kind') return hit(r, JSON.stringify({ id: 'x', ids: { [huge]: 'v' } }));
        if (where === 'blob') return hit(r, JSON.stringify({ id: 'x', ids: length > 33_000 ? { a: 'b' } : {}, data: { blob: huge } }));
        return hit(r, JSON.stringify({ id: where === 'id' ? huge : 'x', ids: { cookie: huge } }));
      }
      const message: Record<string, unknown> = { ...segmentBase(r === '/v1/batch' ? 'track' : r.slice(4)) };
      if (where === 'blob' && length > 33_000) message.context = { blob: huge }; // every type keeps its context
      else if (where === 'id') message.messageId = huge;
      else {
        message.userId = huge;
        message.anonymousId = huge;
        message.previousId = huge;
      }
      return hit(r, JSON.stringify(r === '/v1/batch' ? { batch: [message] } : message));
    }) as never,
  );
  await run(
    'bodies over 500 KB',
    Math.round(20 * scale),
    fc.asyncProperty(route, fc.integer({ min: 512_001, max: 700_000 }), async (r, length) => hit(r, JSON.stringify({ batch: [{ s: 'b'.repeat(length) }] }))) as never,
  );
  await run(
    'broken JSON text',
    Math.round(1800 * scale),
    fc.asyncProperty(
      route,
      fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.record({ v: fc.jsonValue({ maxDepth: 3 }), cut: fc.nat() }).map(({ v, cut }) => {
          const text = JSON.stringify({ id: 'x', ids: { a: 'b' }, data: { v } });
          return text.slice(0, cut % text.length);
        }),
        fc.record({ at: fc.nat(), junk: fc.constantFrom('}', '{', ',', ':', '"', ']', 'x', '\\', "'") }).map(({ at, junk }) => {
          const text = JSON.stringify({ id: 'x', ids: { a: 'b' } });
          const i = at % text.length;
          return `${text.slice(0, i)}${junk}${text.slice(i)}`;
        }),
      ).filter((text) => {
        try {
          JSON.parse(text);
          return false;
        } catch {
          return true;
        }
      }),
      async (r, text) => hit(r, text),
    ) as never,
  );
  await run(
    'deep nesting',
    Math.round(400 * scale),
    fc.asyncProperty(route, fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 500, max: 20_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 20_000, max: 80_000 }) }), fc.constantFrom('array', 'object', 'ids', 'userId'), async (r, depth, shape) => {
      const deepArray = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const deepObject = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      if (shape === 'array') return hit(r, r === '/v1/batch' ? `{"batch":${deepArray}}` : deepArray);
      if (shape === 'object') return hit(r, r === '/v1/batch' ? `{"batch":[${deepObject}]}` : deepObject);
      if (r === '/v1/events') return hit(r, `{"id":"x","ids":${shape === 'ids' ? deepArray : deepObject}}`);
      const message = `{"type":"track","event":"E","messageId":"m","userId":${deepArray},"anonymousId":${deepObject},"previousId":${deepArray},"properties":${deepObject}}`;
      return hit(r, r === '/v1/batch' ? `{"batch":[${message}]}` : message);
    }) as never,
  );
}

describe('fuzz: malformed bodies', () => {
  it('≥ 10k malformed bodies: every one a 4xx with a JSON error, nothing stored, the app still answers, the heap flat', { timeout: 60_000 }, async () => {
    await round(0.2); // warm-up: compiled code, caches, metric series
    gc();
    gc();
    const base = process.memoryUsage().heapUsed;
    const warm = sent;
    await round(1);
    gc();
    gc();
    const grown = process.memoryUsage().heapUsed - base;
    expect(failures).toEqual([]);
    expect(sent - warm).toBeGreaterThanOrEqual(10_000);
    expect(sink.publishes).toBe(0);
    if (process.env.XREF_FUZZ_TIMES) process.stderr.write(`heap grew ${(grown / 1e6).toFixed(2)} MB\n`);
    expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB over ${sent - warm} requests`).toBeLessThan(20 * 1024 * 1024);
    // still answering
    expect((await app.inject({ url: '/livez' })).statusCode).toBe(200);
    const ok = await app.inject({ method: 'POST', url: '/v1/events', headers: AUTH, payload: { id: 'after-fuzz', ids: { cookie: 'c' } } });
    expect(ok.statusCode).toBe(200);
    expect(sink.events.map((e) => e.id)).toEqual(['after-fuzz']);
  });
});
