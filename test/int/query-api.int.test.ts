/**
 * The query API on real read models, SQLite and PostgreSQL, filled as the projection fills them
 * (the offline engine's messages through rows.ts; test/helpers/read-model-fill.ts): filters,
 * inclusive bounds where a date is a whole day, session order across sources, keyset paging
 * across ties with no skip and no repeat (also while events arrive), the 404s, 400s and 405s,
 * the user document equal to `groupEvents()`, the four identifier statuses, the record lists
 * and errors, read tokens both ways, and `min_seq`.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { XrefApp } from '../../src/http/app.ts';
import { groupEvents } from '../../src/group.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { type EventJson, ReadModelQueries } from '../../src/projection/queries.ts';
import type { ErrorRow, ReadModelStore } from '../../src/projection/read-model.ts';
import { AUTH, WRITE_KEY, expectError, testApp } from '../helpers/http.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { type FillInput, type ReadModelFill, addToReadModel, applyBatches, fillReadModel, fromSource, rowsBatch } from '../helpers/read-model-fill.ts';
import { waitFor } from '../helpers/streams.ts';
import { webLog } from '../helpers/web-log.ts';

const READ_TOKEN = 'rt_query_4d1e';
const silent = pino({ level: 'silent' });

interface Served {
  store: ReadModelStore;
  /** Drops its database (PostgreSQL). */
  drop: () => Promise<void>;
  app: XrefApp;
  queries: ReadModelQueries;
  fill: ReadModelFill;
  sink: ReturnType<typeof testApp>['sink'];
}

const opened: Served[] = [];

type ServeArgs = [inputs: readonly FillInput[], config?: ConfigInput, finish?: boolean, read?: (store: ReadModelStore) => ReadModelStore];

/**
 * A read model (SQLite in memory, or a fresh PostgreSQL database) filled with `inputs`, and an
 * app serving it (`read`: what the queries read it through).
 */
async function serveOn(dialect: 'sqlite' | 'postgres', ...[inputs, config = {}, finish = false, read = (store) => store]: ServeArgs): Promise<Served> {
  const database = dialect === 'postgres' ? await freshDatabase() : undefined;
  const store = await openReadModel({ databaseUrl: database?.url ?? 'sqlite::memory:', dataDir: '.', logger: silent });
  const fill = await fillReadModel(store, inputs, { config, finish });
  const queries = new ReadModelQueries(read(store), { config: resolveConfig(config), userEventsCap: 10_000, logger: silent });
  const { app, sink } = testApp({ queries, readTokens: new Set([READ_TOKEN]) });
  const served = { store, app, queries, fill, sink, drop: async () => database?.drop() };
  opened.push(served);
  return served;
}

afterAll(async () => {
  for (const { app, store, drop } of opened) {
    await app.close();
    await store.close();
    await drop();
  }
});

const bearer = { authorization: `Bearer ${READ_TOKEN}` };
const get = (app: XrefApp, url: string, headers: Record<string, string> = bearer) => app.inject({ method: 'GET', url, headers });

async function getJson<T = Record<string, unknown>>(app: XrefApp, url: string): Promise<T> {
  const response = await get(app, url);
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as T;
}

type EventsBody = { events: EventJson[]; next: string | null; watermark: number };
const ids = (body: EventsBody) => body.events.map((e) => e.id);

const T = Date.parse('2021-05-20T10:00:00.000Z');
const at = (ms: number) => new Date(ms).toISOString();

/** Events an analyst filters: one session written by two sources, out of time order, with a tie. */
const SESSION_LOG: FillInput[] = [
  { source: 'web', event: { id: 's1-a', timestamp: at(T), session_id: 's1', category: 'navigation', name: 'pageview', ids: { cookie: 'c-s1' } } },
  { source: 'ios', event: { id: 's1-b', timestamp: at(T + 2000), session_id: 's1', category: 'click', name: 'tap', ids: { device_id: 'd-s1' } } },
  { source: 'web', event: { id: 's1-c', timestamp: at(T + 1000), session_id: 's1', category: 'navigation', name: 'pageview', ids: { cookie: 'c-s1' } } },
  { source: 'ios', event: { id: 's1-d', timestamp: at(T + 2000), session_id: 's1', category: 'click', name: 'tap', ids: { device_id: 'd-s1', db_id: '7' } } },
  { source: 'web', event: { id: 's2-a', timestamp: at(T + 500), session_id: 's2', category: 'navigation', name: 'pageview', ids: { cookie: 'c-s2' } } },
  // the edges of 20 May
  { source: 'web', event: { id: 'b-before', timestamp: '2021-05-19T23:59:59.999Z', name: 'bound', ids: { db_id: '8' } } },
  { source: 'web', event: { id: 'b-first', timestamp: '2021-05-20T00:00:00.000Z', name: 'bound', ids: { db_id: '8' } } },
  { source: 'web', event: { id: 'b-last', timestamp: '2021-05-20T23:59:59.999Z', name: 'bound', ids: { db_id: '8' } } },
  { source: 'web', event: { id: 'b-after', timestamp: '2021-05-21T00:00:00.000Z', name: 'bound', ids: { db_id: '8' } } },
  // an input the engine refuses is no event
  { source: 'web', event: { id: 'bad', ids: {} } },
];

for (const dialect of ['sqlite', 'postgres'] as const) {
describe(`on ${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`, () => {
  const serve = (...args: ServeArgs) => serveOn(dialect, ...args);

  describe('GET /v1/events: filters, bounds, session order, one event', () => {
    let app: XrefApp;
    beforeAll(async () => {
      ({ app } = await serve(SESSION_LOG));
    });

    it('a session comes in the order it happened, whichever source wrote it; ties in log order', async () => {
      const body = await getJson<EventsBody>(app, '/v1/events?session_id=s1');
      expect(ids(body)).toEqual(['s1-a', 's1-c', 's1-b', 's1-d']);
      expect(body.events.map((e) => e.source)).toEqual(['web', 'web', 'ios', 'ios']);
      expect(body.next).toBeNull();
      expect(body.watermark).toBe(SESSION_LOG.length);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?session_id=s1&order=desc'))).toEqual(['s1-d', 's1-b', 's1-c', 's1-a']);
    });

    it('each event: the envelope, its source, input sequence, and the user and identifier it went through', async () => {
      const body = await getJson<EventsBody>(app, '/v1/events?session_id=s1');
      expect(body.events[3]).toEqual({
        id: 's1-d',
        timestamp: at(T + 2000),
        session_id: 's1',
        category: 'click',
        name: 'tap',
        ids: { device_id: 'd-s1', db_id: '7' },
        source: 'ios',
        seq: 4,
        user: { kind: 'db_id', id: '7' },
        // placed by the user id it carries
        via: { kind: 'db_id', value: '7' },
      });
      // s1-b was buffered under d-s1 and placed with db_id 7 when s1-d linked it
      expect(body.events[2]).toMatchObject({ id: 's1-b', user: { kind: 'db_id', id: '7' }, via: { kind: 'device_id', value: 'd-s1' } });
      expect(body.events[0]).toMatchObject({ id: 's1-a', user: null, via: null });
    });

    it('category, name and source filters; without a session, newest first', async () => {
      expect(ids(await getJson<EventsBody>(app, '/v1/events?category=navigation'))).toEqual(['s1-c', 's2-a', 's1-a']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?category=navigation&order=asc'))).toEqual(['s1-a', 's2-a', 's1-c']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?name=tap'))).toEqual(['s1-d', 's1-b']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?source=ios&name=tap&session_id=s1'))).toEqual(['s1-b', 's1-d']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?category=click&source=web'))).toEqual([]);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?user=db_id:7&order=asc'))).toEqual(['s1-b', 's1-d']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?identifier=cookie:c-s1&order=asc'))).toEqual(['s1-a', 's1-c']);
      // the refused input is nowhere
      expect(ids(await getJson<EventsBody>(app, '/v1/events?limit=1000'))).not.toContain('bad');
    });

    it('bounds are inclusive, and a date alone is the whole day in UTC', async () => {
      const day = ids(await getJson<EventsBody>(app, '/v1/events?name=bound&after=2021-05-20&before=2021-05-20&order=asc'));
      expect(day).toEqual(['b-first', 'b-last']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?name=bound&after=2021-05-20&order=asc'))).toEqual(['b-first', 'b-last', 'b-after']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?name=bound&before=2021-05-20&order=asc'))).toEqual(['b-before', 'b-first', 'b-last']);
      // an exact time is a bound to the millisecond, both ends included
      const exact = '/v1/events?name=bound&after=2021-05-20T23:59:59.999Z&before=2021-05-21T00:00:00.000Z&order=asc';
      expect(ids(await getJson<EventsBody>(app, exact))).toEqual(['b-last', 'b-after']);
      expect(ids(await getJson<EventsBody>(app, '/v1/events?name=bound&after=2021-05-20T02:00:00%2B02:00&before=2021-05-20T00:00:00Z'))).toEqual(['b-first']);
    });

    it('GET /v1/events/:id: the same object as in the list, under "event"; 404 as JSON when unknown', async () => {
      const list = await getJson<EventsBody>(app, '/v1/events?session_id=s1');
      expect(await getJson(app, '/v1/events/s1-d')).toEqual({ event: list.events[3] });
      const missing = expectError(await get(app, '/v1/events/no-such-event'), 404, 'XREF_NOT_FOUND');
      expect(missing.error).toMatch(/^event "no-such-event" is not known to the read model/);
      expectError(await get(app, '/v1/events/bad'), 404, 'XREF_NOT_FOUND');
    });

    it('400 naming the parameter and quoting the value: a bad filter, an unknown parameter, limit 1001', async () => {
      const cases: Array<[string, string, RegExp]> = [
        ['/v1/events?limit=1001', 'limit', /^limit must be at most 1000, got "1001"/],
        ['/v1/events?limit=0', 'limit', /"0"/],
        ['/v1/events?colour=red', 'colour', /^unknown parameter "colour" \(value "red"\)/],
        ['/v1/events?after=yesterday', 'after', /^after must be an ISO 8601 time .* got "yesterday"$/],
        ['/v1/events?user=cookie:c-s1', 'user', /internal kind \(db_id, user_id\), got "cookie"/],
        ['/v1/events?order=sideways', 'order', /got "sideways"/],
        ['/v1/events?cursor=nope', 'cursor', /got "nope"/],
        ['/v1/events?name=a&name=b', 'name', /^name must be given once/],
        ['/v1/events/s1-a?x=1', 'x', /takes none/],
        ['/v1/unmatched?kind=a.b', 'kind', /"a\.b"/],
        ['/v1/errors?kind=cookie', 'kind', /http, publish, engine, got "cookie"/],
      ];
      for (const [url, field, message] of cases) {
        const body = expectError(await get(app, url), 400, 'XREF_INVALID_ARGUMENT');
        expect(body.field, url).toBe(field);
        expect(body.error, url).toMatch(message);
      }
    });

    it('405 with Allow: GET for PUT, PATCH, DELETE and POST on an event, whoever asks', async () => {
      for (const method of ['PUT', 'PATCH', 'DELETE', 'POST'] as const) {
        for (const headers of [bearer, AUTH, {}]) {
          const response = await app.inject({ method, url: '/v1/events/s1-a', headers });
          const body = expectError(response, 405, 'XREF_METHOD_NOT_ALLOWED');
          expect(response.headers.allow).toBe('GET');
          expect(body.error).toBe(`${method} is not allowed on /v1/events/s1-a: use GET (events are written with POST /v1/events, and never changed)`);
        }
      }
      // the event is still there
      expect((await get(app, '/v1/events/s1-a')).statusCode).toBe(200);
    });

    it('an unknown route lists the query routes', async () => {
      const body = expectError(await get(app, '/v1/nothing'), 404, 'XREF_NOT_FOUND');
      expect(body.error).toContain('GET /v1/events/<id>, GET /v1/users/<kind>/<id>, GET /v1/identifiers/<kind>/<value>');
    });
  });

  describe('paging: keyset cursors never skip or repeat a row, ties included', () => {
    const TIE = '2021-05-21T12:00:00.000Z';
    /** 60 events at one instant, a few before and after it, from two sources. */
    const tieLog = (from: number, count: number, timestamp = (i: number) => (i % 10 === 0 ? at(Date.parse(TIE) + (i % 20 === 0 ? -1 : 1)) : TIE)) =>
      Array.from({ length: count }, (_, k): FillInput => {
        const i = from + k;
        return { source: i % 2 === 0 ? 'web' : 'ios', event: { id: `tie-${i}`, name: 'tie', timestamp: timestamp(i), ids: { db_id: String(i % 3 + 1) } } };
      });

    /** Every page of `url` (limit 7), following `next`; `between` runs before each next page. */
    async function walk(app: XrefApp, url: string, between: () => Promise<void> = async () => undefined) {
      const seen: EventJson[] = [];
      let next: string | null = null;
      let pages = 0;
      do {
        const body: EventsBody = await getJson<EventsBody>(app, `${url}&limit=7${next === null ? '' : `&cursor=${next}`}`);
        expect(body.events.length).toBeLessThanOrEqual(7);
        seen.push(...body.events);
        next = body.next;
        pages++;
        if (next !== null) await between();
      } while (next !== null);
      return { seen, pages };
    }

    const key = (e: EventJson) => [Date.parse(e.timestamp!), e.seq] as const;
    const ascending = (a: EventJson, b: EventJson) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1];

    it('asc and desc walk every row once, in (time, seq) order', async () => {
      const { app } = await serve(tieLog(0, 60));
      const asc = await walk(app, '/v1/events?name=tie&order=asc');
      expect(asc.seen).toHaveLength(60);
      expect(new Set(asc.seen.map((e) => e.id)).size).toBe(60);
      expect(asc.seen).toEqual([...asc.seen].sort(ascending));
      expect(asc.pages).toBe(9);
      const desc = await walk(app, '/v1/events?name=tie');
      expect(desc.seen.map((e) => e.id)).toEqual([...asc.seen].reverse().map((e) => e.id));
      // a cursor of one order refuses the other
      const first = await getJson<EventsBody>(app, '/v1/events?name=tie&limit=7');
      expectError(await get(app, `/v1/events?name=tie&order=asc&cursor=${first.next}`), 400, 'XREF_INVALID_ARGUMENT');
      expectError(await get(app, `/v1/events?name=tie&source=web&cursor=${first.next}`), 400, 'XREF_INVALID_ARGUMENT');
    });

    it('while events keep arriving at the same instant: every row there at the start comes once; newer ones come once or not at all', async () => {
      const served = await serve(tieLog(0, 60));
      let added = 60;
      const arrive = async () => {
        await addToReadModel(served.store, served.fill, tieLog(added, 5, () => TIE));
        added += 5;
      };
      for (const url of ['/v1/events?name=tie&order=asc', '/v1/events?name=tie']) {
        const before = new Set((await getJson<EventsBody>(served.app, '/v1/events?name=tie&limit=1000')).events.map((e) => e.id));
        const { seen } = await walk(served.app, url, arrive);
        const seenIds = seen.map((e) => e.id);
        expect(new Set(seenIds).size, url).toBe(seenIds.length);
        for (const id of before) expect(seenIds, url).toContain(id);
        const sorted = [...seen].sort(ascending);
        expect(seen, url).toEqual(url.includes('asc') ? sorted : sorted.reverse());
      }
      // ascending, the newcomers (same instant, later in the log) come after the cursor: all of them are seen
      expect(added).toBeGreaterThan(60);
    });
  });

  describe('GET /v1/users/:kind/:id: the document groupEvents() gives', () => {
    const log = webLog({ events: 4000, identifiers: 400, rich: true });
    const report = groupEvents(log);
    const seqOf = new Map(log.map((e, i) => [e.id, i + 1]));
    let served: Served;
    beforeAll(async () => {
      served = await serve(fromSource(log, 'web'), {}, true);
    });

    it("every user's document equals groupEvents() for that user, with their identifiers and counts", async () => {
      const users = Object.keys(report.groups.db_id!);
      expect(users.length).toBeGreaterThan(50);
      // the current link of every identifier: the last link or relink of it
      const links = new Map<string, { user: string; eventId: string }>();
      for (const a of report.audit) if (a.reason === 'link' || a.reason === 'relink') links.set(`${a.identifier.kind}:${a.identifier.value}`, { user: a.user!.id, eventId: a.eventId });
      const timeOf = new Map(log.map((e) => [e.id, e.timestamp!]));
      for (const id of users) {
        const body = await getJson<{ user: unknown; document: unknown; identifiers: Array<{ kind: string; value: string; since: string; linked_by: string }>; counts: { events: number; identifiers: number }; truncated: boolean }>(
          served.app,
          `/v1/users/db_id/${id}`,
        );
        expect(body.user).toEqual({ kind: 'db_id', id });
        expect(body.document, `user ${id}`).toEqual({ db_id: { [id]: report.groups.db_id![id] } });
        const expected = [...links].filter(([, link]) => link.user === id).map(([k, link]) => ({ key: k, linked_by: link.eventId }));
        expect(body.identifiers.map((i) => ({ key: `${i.kind}:${i.value}`, linked_by: i.linked_by })).sort((a, b) => a.key.localeCompare(b.key))).toEqual(expected.sort((a, b) => a.key.localeCompare(b.key)));
        for (const i of body.identifiers) expect(i.since).toBe(timeOf.get(i.linked_by));
        const total = Object.values(report.groups.db_id![id]!).flatMap((byValue) => Object.values(byValue)).flat().length;
        expect(body.counts).toEqual({ events: total, identifiers: expected.length });
        expect(body.truncated).toBe(false);
      }
    });

    it('past the cap: the newest events and truncated; /v1/events?user= pages through them all', async () => {
      const [id, kinds] = Object.entries(report.groups.db_id!).sort(([, a], [, b]) => Object.values(b).flatMap(Object.values).flat().length - Object.values(a).flatMap(Object.values).flat().length)[0]!;
      const all = Object.values(kinds).flatMap((byValue) => Object.values(byValue)).flat();
      expect(all.length).toBeGreaterThan(20);
      const capped = await new ReadModelQueries(served.store, { ...served.queries.options, userEventsCap: 10 }).user({ kind: 'db_id', id });
      expect(capped.truncated).toBe(true);
      expect(capped.counts.events).toBe(all.length);
      const held = Object.values(capped.document.db_id![id]!).flatMap((byValue) => Object.values(byValue)).flat();
      const newest = all.map((e) => seqOf.get(e.id)!).sort((a, b) => b - a).slice(0, 10);
      expect(held.map((e) => seqOf.get(e.id)!).sort((a, b) => b - a)).toEqual(newest);
      let next: string | null = null;
      const paged: string[] = [];
      do {
        const body: EventsBody = await getJson<EventsBody>(served.app, `/v1/events?user=db_id:${id}&limit=25${next === null ? '' : `&cursor=${next}`}`);
        paged.push(...ids(body));
        next = body.next;
      } while (next !== null);
      expect(paged.sort()).toEqual(all.map((e) => e.id).sort());
    });

    it('404 for a user with no events and no links; 400 naming kind for a third-party kind', async () => {
      expect(expectError(await get(served.app, '/v1/users/db_id/no-such-user'), 404, 'XREF_NOT_FOUND').error).toMatch(/^user db_id "no-such-user" is not known to the read model/);
      const body = expectError(await get(served.app, '/v1/users/cookie/t1'), 400, 'XREF_INVALID_ARGUMENT');
      expect(body.field).toBe('kind');
      expect(body.error).toMatch(/^kind must be an internal kind \(db_id, user_id\), got "cookie"/);
    });

    it('the record lists hold what the engine published: every unmatched and audit record, by reason', async () => {
      const all = async (url: string) => {
        const records: Array<Record<string, unknown>> = [];
        let next: string | null = null;
        do {
          const body: { records: Array<Record<string, unknown>>; next: string | null } = await getJson(served.app, `${url}${url.includes('?') ? '&' : '?'}limit=1000${next === null ? '' : `&cursor=${next}`}`);
          records.push(...body.records);
          next = body.next;
        } while (next !== null);
        return records;
      };
      const unmatched = await all('/v1/unmatched');
      expect(unmatched).toHaveLength(report.unmatched.length);
      expect(unmatched[0]).toEqual(expect.objectContaining({ seq: expect.any(Number), reason: expect.any(String), identifier: expect.any(Object), event: expect.any(Object) }));
      expect(await all('/v1/audit')).toHaveLength(report.audit.length);
      expect(await all('/v1/audit?reason=link')).toHaveLength(report.audit.filter((a) => a.reason === 'link').length);
      expect(await all('/v1/unmatched?kind=cookie&reason=unlinked')).toHaveLength(report.unmatched.filter((u) => u.identifier.kind === 'cookie' && u.reason === 'unlinked').length);
    });
  });

  describe('GET /v1/identifiers/:kind/:value: linked, buffering, unmatched, unknown', () => {
    const U = Date.parse('2021-05-22T00:00:00.000Z');
    const HOUR = 3_600_000;
    const config: ConfigInput = { buffer: { ttlMs: HOUR } };
    const event = (id: string, ms: number, identifiers: Record<string, string>): FillInput => ({ source: 'web', event: { id, timestamp: at(ms), ids: identifiers } });
    const LOG = [
      event('late-1', U, { cookie: 'c-late' }),
      event('un-1', U + 1000, { cookie: 'c-un' }),
      event('junk-1', U + 1000, { cookie: 'null' }),
      // two hours on: the buffers of c-late and c-un expire
      event('later', U + 2 * HOUR, { anonymous_id: 'a-x' }),
      event('late-2', U + 2 * HOUR + 1000, { db_id: '2', cookie: 'c-late' }),
      event('buf-1', U + 2 * HOUR + 2000, { cookie: 'c-buf' }),
      event('buf-2', U + 2 * HOUR + 3000, { cookie: 'c-buf' }),
      event('linked-1', U + 2 * HOUR + 4000, { cookie: 'c-linked' }),
      event('linked-2', U + 2 * HOUR + 5000, { db_id: '1', cookie: 'c-linked' }),
      event('slash', U + 2 * HOUR + 6000, { cookie: 'c/slash x' }),
    ];
    let app: XrefApp;
    beforeAll(async () => {
      ({ app } = await serve(LOG, config));
    });

    it('linked: the user, since (event time) and the event that linked it', async () => {
      expect(await getJson(app, '/v1/identifiers/cookie/c-linked')).toEqual({
        identifier: { kind: 'cookie', value: 'c-linked' },
        status: 'linked',
        user: { kind: 'db_id', id: '1' },
        since: at(U + 2 * HOUR + 5000),
        linked_by: 'linked-2',
      });
    });

    it('buffering: how many wait, the oldest one, when they expire, and the events', async () => {
      const body = await getJson<{ status: string; buffered: { count: number; oldest: string; expires: string; events: EventJson[] } }>(app, '/v1/identifiers/cookie/c-buf');
      expect(body).toMatchObject({ identifier: { kind: 'cookie', value: 'c-buf' }, status: 'buffering' });
      expect(body.buffered).toMatchObject({ count: 2, oldest: at(U + 2 * HOUR + 2000), expires: at(U + 3 * HOUR + 2000) });
      expect(body.buffered.events.map((e) => e.id)).toEqual(['buf-1', 'buf-2']);
      expect(body.buffered.events[0]).toMatchObject({ source: 'web', seq: 6, user: null, via: null });
      // a value holding a slash and a space, encoded in the path
      expect(await getJson(app, `/v1/identifiers/cookie/${encodeURIComponent('c/slash x')}`)).toMatchObject({ identifier: { kind: 'cookie', value: 'c/slash x' }, status: 'buffering' });
    });

    it('unmatched: the reasons and counts', async () => {
      expect(await getJson(app, '/v1/identifiers/cookie/c-un')).toEqual({ identifier: { kind: 'cookie', value: 'c-un' }, status: 'unmatched', unmatched: [{ reason: 'expired', count: 1 }] });
      expect(await getJson(app, '/v1/identifiers/cookie/null')).toMatchObject({ status: 'unmatched', unmatched: [{ reason: 'junk', count: 1 }] });
    });

    it('unknown, with a 200', async () => {
      const response = await get(app, '/v1/identifiers/cookie/nobody');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ identifier: { kind: 'cookie', value: 'nobody' }, status: 'unknown' });
    });

    it('the facts of the other statuses ride along: a link beside the events that expired before it', async () => {
      expect(await getJson(app, '/v1/identifiers/cookie/c-late')).toEqual({
        identifier: { kind: 'cookie', value: 'c-late' },
        status: 'linked',
        user: { kind: 'db_id', id: '2' },
        since: at(U + 2 * HOUR + 1000),
        linked_by: 'late-2',
        unmatched: [{ reason: 'expired', count: 1 }],
      });
    });

    it('an internal id is linked to itself once its user is known, else unknown', async () => {
      expect(await getJson(app, '/v1/identifiers/db_id/1')).toEqual({
        identifier: { kind: 'db_id', value: '1' },
        status: 'linked',
        user: { kind: 'db_id', id: '1' },
        since: at(U + 2 * HOUR + 4000),
        linked_by: 'linked-1',
      });
      expect(await getJson(app, '/v1/identifiers/db_id/999')).toEqual({ identifier: { kind: 'db_id', value: '999' }, status: 'unknown' });
    });

    it('400 naming kind for a kind that is no kind name', async () => {
      expect(expectError(await get(app, '/v1/identifiers/coo%20kie/x'), 400, 'XREF_INVALID_ARGUMENT').field).toBe('kind');
    });
  });

  describe('GET /v1/errors', () => {
    const D = Date.parse('2021-06-01T08:00:00.000Z');
    const errorRow = (n: number, reason: string, origin: string): ErrorRow => {
      const record = { id: `err-${n}`, reason, code: `XREF_${reason.toUpperCase()}`, message: `refused ${n}`, field: 'data.price', value: '"ten"', origin, source: origin === 'http' ? '/v1/events' : 'xref.in.web', at: at(D + n * 1000), raw: '{"id":"e"}' };
      return { id: record.id, streamSeq: n, reason, origin, timeMs: D + n * 1000, record };
    };
    const ROWS = [
      errorRow(1, 'schema_violation', 'http'),
      errorRow(2, 'future_timestamp', 'engine'),
      errorRow(3, 'schema_violation', 'publish'),
      errorRow(4, 'unknown_event_type', 'http'),
      errorRow(5, 'schema_violation', 'engine'),
    ];
    let app: XrefApp;
    beforeAll(async () => {
      const served = await serve([]);
      app = served.app;
      await applyBatches(served.store, [rowsBatch({ errors: ROWS })]);
    });

    it('lists the records as published, newest first, filtered by reason and origin (kind), paged', async () => {
      const all = await getJson<{ records: Array<{ id: string }>; next: string | null }>(app, '/v1/errors');
      expect(all.records).toEqual([...ROWS].reverse().map((r) => r.record));
      expect(all.next).toBeNull();
      expect((await getJson<{ records: Array<{ id: string }> }>(app, '/v1/errors?reason=schema_violation&order=asc')).records.map((r) => r.id)).toEqual(['err-1', 'err-3', 'err-5']);
      expect((await getJson<{ records: Array<{ id: string }> }>(app, '/v1/errors?kind=engine')).records.map((r) => r.id)).toEqual(['err-5', 'err-2']);
      expect((await getJson<{ records: Array<{ id: string }> }>(app, `/v1/errors?after=${at(D + 2000)}&before=${at(D + 4000)}`)).records.map((r) => r.id)).toEqual(['err-4', 'err-3', 'err-2']);
      const first = await getJson<{ records: Array<{ id: string }>; next: string }>(app, '/v1/errors?limit=2');
      expect(first.records.map((r) => r.id)).toEqual(['err-5', 'err-4']);
      const second = await getJson<{ records: Array<{ id: string }>; next: string | null }>(app, `/v1/errors?limit=2&cursor=${first.next}`);
      expect(second.records.map((r) => r.id)).toEqual(['err-3', 'err-2']);
      const last = await getJson<{ records: Array<{ id: string }>; next: string | null }>(app, `/v1/errors?limit=2&cursor=${second.next}`);
      expect(last).toEqual({ records: [ROWS[0]!.record], next: null });
      expectError(await get(app, `/v1/unmatched?limit=2&cursor=${first.next}`), 400, 'XREF_INVALID_ARGUMENT');
    });
  });

  describe('GET /v1/errors: what the engine refused, as it refuses it', () => {
    const config: ConfigInput = {
      schemas: { purchase: { type: 'object', required: ['price'], properties: { price: { type: 'number' } } }, pageview: { type: 'object' } },
      unknownTypes: 'reject',
      maxFutureMs: 60_000,
    };
    const P = Date.parse('2021-06-02T10:00:00.000Z');
    const LOG: FillInput[] = [
      { source: 'web', event: { id: 'ok', name: 'purchase', timestamp: at(P), ids: { db_id: '1' }, data: { price: 5 } } },
      { source: 'web', event: { id: 'cheap', name: 'purchase', timestamp: at(P + 1000), ids: { db_id: '1' }, data: { price: 'ten' } } },
      { source: 'web', event: { id: 'odd', name: 'teleport', timestamp: at(P + 2000), ids: { db_id: '1' } } },
      { source: 'ios', event: { id: 'ahead', name: 'pageview', timestamp: at(P + 3_600_000), ids: { db_id: '1' } }, publishedMs: P + 3000 },
    ];
    let app: XrefApp;
    beforeAll(async () => {
      ({ app } = await serve(LOG, config));
    });

    it('schema, unknown-type and future-timestamp rejections are records of /v1/errors, and no events', async () => {
      const { records } = await getJson<{ records: Array<Record<string, unknown>> }>(app, '/v1/errors?order=asc');
      expect(records.map((r) => [r.reason, r.eventId ?? null, r.origin])).toEqual([
        ['schema_violation', 'cheap', 'engine'],
        ['unknown_event_type', 'odd', 'engine'],
        ['future_timestamp', 'ahead', 'engine'],
      ]);
      expect(records[0]).toMatchObject({ code: 'XREF_SCHEMA_VIOLATION', seq: 2, source: 'xref.in.web' });
      expect((await getJson<{ records: unknown[] }>(app, '/v1/errors?reason=future_timestamp')).records).toHaveLength(1);
      expect((await getJson<{ records: unknown[] }>(app, '/v1/errors?kind=http')).records).toHaveLength(0);
      expect(ids(await getJson<EventsBody>(app, '/v1/events'))).toEqual(['ok']);
    });
  });

  describe('read tokens, both ways', () => {
    let served: Served;
    beforeAll(async () => {
      served = await serve(SESSION_LOG.slice(0, 2));
    });

    it('every query route takes a read token only: none, a write key or a wrong token gets a 401 naming the header', async () => {
      const routes = ['/v1/events', '/v1/events/s1-a', '/v1/users/db_id/7', '/v1/identifiers/cookie/c-s1', '/v1/unmatched', '/v1/audit', '/v1/errors'];
      for (const url of routes) {
        expect((await get(served.app, url)).statusCode, url).not.toBe(401);
        for (const headers of [{}, AUTH, { authorization: `Bearer ${WRITE_KEY}` }, { authorization: 'Bearer rt_wrong' }]) {
          const response = await get(served.app, url, headers);
          const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
          expect(response.headers['www-authenticate']).toBe('Bearer realm="xref"');
          expect(body.error, url).toContain('Authorization');
        }
      }
    });

    it('a read token never writes; the write key still does, beside the query routes', async () => {
      const post = (headers: Record<string, string>) =>
        served.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ id: 'w-1', ids: { cookie: 'c' } }) });
      const refused = await post(bearer);
      expectError(refused, 401, 'XREF_UNAUTHORIZED');
      expect(refused.headers['www-authenticate']).toBe('Basic realm="xref"');
      expect(served.sink.events).toHaveLength(0);
      const stored = await post(AUTH);
      expect(stored.statusCode, stored.body).toBe(200);
      expect(served.sink.events.map((e) => e.id)).toEqual(['w-1']);
    });

    it('without queries, the app has no query routes', async () => {
      const { app } = testApp({ readTokens: new Set([READ_TOKEN]) });
      try {
        expectError(await get(app, '/v1/events'), 404, 'XREF_NOT_FOUND');
        expectError(await get(app, '/v1/users/db_id/1'), 404, 'XREF_NOT_FOUND');
      } finally {
        await app.close();
      }
    });
  });

  describe('read your writes: min_seq and wait_ms', () => {
    let served: Served;
    /** How often the queries looked at the watermark. */
    let looks = 0;
    beforeAll(async () => {
      const counting = (store: ReadModelStore): ReadModelStore =>
        new Proxy(store, {
          get(target, key, receiver) {
            if (key === 'watermark') return () => (looks++, target.watermark());
            const value: unknown = Reflect.get(target, key, receiver);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
      served = await serve(SESSION_LOG.slice(0, 3), {}, false, counting);
    });

    it('answers at once when the read model holds min_seq already', async () => {
      const body = await getJson<EventsBody>(served.app, '/v1/events?min_seq=3');
      expect(body.watermark).toBe(3);
      expect(body.events).toHaveLength(3);
    });

    it('409 naming the watermark when it does not get there within wait_ms', async () => {
      const started = Date.now();
      const response = await get(served.app, '/v1/events?min_seq=9&wait_ms=120');
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
      const body = expectError(response, 409, 'XREF_NOT_CAUGHT_UP');
      expect(body).toMatchObject({ field: 'min_seq', watermark: 3, min_seq: 9 });
      expect(body.error).toMatch(/^the read model is at input 3, not yet at min_seq 9, after \d+ ms/);
    });

    it('waits for the projection, and answers with the rows once it got there', async () => {
      const before = looks;
      // then() sends the request now; it waits, looking at the watermark again and again
      const answer = get(served.app, '/v1/events?min_seq=5&wait_ms=10000&order=asc').then((response) => response);
      await waitFor('the request to wait for min_seq', () => looks >= before + 2, 5000);
      const more: XrefEvent[] = [
        { id: 'w-4', timestamp: at(T + 3000), ids: { cookie: 'c-w' } },
        { id: 'w-5', timestamp: at(T + 4000), ids: { cookie: 'c-w' } },
      ];
      await addToReadModel(served.store, served.fill, fromSource(more));
      const response = await answer;
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json() as EventsBody;
      expect(body.watermark).toBe(5);
      expect(ids(body)).toContain('w-5');
    });
  });
});
}
