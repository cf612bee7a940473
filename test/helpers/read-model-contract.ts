/**
 * One contract for every ReadModelStore adapter (SQLite, PostgreSQL): the same batches, the same
 * questions, the same answers. It proves what the port's doc comments promise: one transaction per
 * batch, idempotent, positions forward only, fenced by the claim, and the queries' filters, orders
 * and keyset pages (ties included, rows arriving between pages: never a skip, never a repeat).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { Identifier } from '../../src/domain/identifiers.ts';
import type { UserRef } from '../../src/engine/outputs.ts';
import { auditId, resolvedId, unmatchedId } from '../../src/engine/records.ts';
import { activityStoreContract } from './activity-store-contract.ts';
import { forgetContract } from './forget-contract.ts';
import { unlinkContract } from './unlink-contract.ts';
import {
  type AuditRow,
  type ErrorRow,
  type EventFilter,
  type EventRow,
  type Keyset,
  type Order,
  type PageQuery,
  type ProjectedStream,
  type ProjectionBatch,
  type ReadModelStore,
  type RecordFilter,
  type RecordList,
  type ResolutionRow,
  type StoredEvent,
  type StoredRecord,
  type UnmatchedRow,
  eventRow as rowOf,
} from '../../src/projection/read-model.ts';

export interface ReadModelFixture {
  /** A store over an empty, migrated database. */
  readonly store: ReadModelStore;
  /** Closes the store and lets the database go. */
  done(): Promise<void>;
}

/** 2021-06-01T00:00:00Z: the scenes' first second. */
export const T0 = Date.parse('2021-06-01T00:00:00Z');
const OWNER = 'projection-a';

// --- rows ---------------------------------------------------------------------------------------

interface EventSpec {
  readonly id?: string;
  readonly ids?: Record<string, string>;
  readonly session?: string;
  readonly category?: string;
  readonly name?: string;
  readonly source?: string;
  /** Event time, ms after T0. */
  readonly at?: number;
  readonly data?: Record<string, unknown>;
}

/** A stored event's row and, for the checks, the event it was made of. */
type TestEventRow = EventRow & { readonly event: XrefEvent };

/** An XREF_IN event at `seq` (id `e<seq>`, cookie `c<seq>`, source `web`, time T0 unless told). */
export function eventRow(seq: number, spec: EventSpec = {}): TestEventRow {
  const timeMs = T0 + (spec.at ?? 0);
  const event: XrefEvent = {
    id: spec.id ?? `e${seq}`,
    timestamp: new Date(timeMs).toISOString(),
    ids: spec.ids ?? { cookie: `c${seq}` },
    ...(spec.name === undefined ? {} : { name: spec.name }),
    ...(spec.category === undefined ? {} : { category: spec.category }),
    ...(spec.session === undefined ? {} : { session_id: spec.session }),
    data: spec.data ?? { n: seq },
  };
  return { ...rowOf(seq, event, spec.source ?? 'web', timeMs), event };
}

const firstId = (row: EventRow): Identifier => {
  const [kind, value] = Object.entries(row.ids)[0] as [string, string];
  return { kind, value };
};

/** A resolution as the engine publishes it: decided by its own input, its output id `<event id>:<user kind>.<user id>`. */
export function resolutionRow(row: EventRow, user: UserRef, via: Identifier = firstId(row)): ResolutionRow {
  return { eventSeq: row.seq, user, via, decidedSeq: row.seq, outputId: resolvedId(row.id, user) };
}

export function unmatchedRow(streamSeq: number, row: TestEventRow, reason: string, identifier: Identifier = firstId(row)): UnmatchedRow {
  return {
    outputId: unmatchedId(row.id),
    streamSeq,
    eventSeq: row.seq,
    reason,
    identifier,
    timeMs: row.timeMs,
    record: { seq: row.seq, reason, identifier, event: row.event },
  };
}

export function auditRow(streamSeq: number, reason: string, identifier: Identifier, user: UserRef | undefined, row: EventRow, timeMs = row.timeMs): AuditRow {
  const outputId = auditId(row.id, reason, `${identifier.kind}:${identifier.value}`);
  const record = { outputId, reason, identifier, ...(user === undefined ? {} : { user }), seq: row.seq, eventId: row.id };
  return { outputId, streamSeq, reason, identifier, ...(user === undefined ? {} : { user }), eventSeq: row.seq, eventId: row.id, timeMs, record };
}

export function errorRow(streamSeq: number, reason: string, origin: string, at: number): ErrorRow {
  const id = `err-${streamSeq}`;
  return { id, streamSeq, reason, origin, timeMs: T0 + at, record: { id, reason, code: `XREF_${reason.toUpperCase()}`, message: 'bad', origin, at: new Date(T0 + at).toISOString() } };
}

export function batchOf(parts: Partial<ProjectionBatch>): ProjectionBatch {
  return { events: [], resolutions: [], unmatched: [], audit: [], errors: [], positions: [], ...parts };
}

const position = (stream: ProjectedStream, seq: number, created = '2021-06-01T00:00:00.000Z') => ({ stream, seq, created });
const user = (id: string): UserRef => ({ kind: 'db_id', id });
const seqs = (rows: readonly { seq: number }[]) => rows.map((row) => row.seq);

/** Every page of a query, `limit` rows at a time; `between(last)` runs after each full page (`last`: its cursor). */
export async function pageAll<R extends { seq: number; timeMs: number }>(
  read: (query: PageQuery<never>) => Promise<R[]>,
  order: Order,
  limit: number,
  between: (last: Keyset) => Promise<void> = async () => undefined,
): Promise<R[]> {
  const all: R[] = [];
  let from: Keyset | undefined;
  for (let page = 0; page < 10_000; page++) {
    const rows = await read({ filter: undefined as never, order, limit, ...(from === undefined ? {} : { from }) });
    expect(rows.length).toBeLessThanOrEqual(limit);
    all.push(...rows);
    const last = rows.at(-1);
    if (last === undefined || rows.length < limit) return all;
    from = { timeMs: last.timeMs, seq: last.seq };
    await between(from);
  }
  throw new Error('pageAll: too many pages');
}

// --- the scene most queries read ----------------------------------------------------------------

/**
 * Five events over three seconds (two pairs sharing a time), three of them resolved, one with two
 * resolutions, one unmatched, and an identifier linked.
 */
function scene() {
  const e1 = eventRow(1, { session: 's1', category: 'web', name: 'page', source: 'web', at: 0, ids: { cookie: 'c1' } });
  const e2 = eventRow(2, { session: 's1', category: 'web', name: 'click', source: 'ios', at: 1000, ids: { cookie: 'c1', db_id: 'u1' } });
  const e3 = eventRow(3, { session: 's2', category: 'app', name: 'page', source: 'web', at: 1000, ids: { cookie: 'c2' } });
  const e4 = eventRow(4, { name: 'signup', source: 'web', at: 2000, ids: { email: 'a@x' } });
  const e5 = eventRow(5, { session: 's1', category: 'web', name: 'page', source: 'web', at: 0, ids: { cookie: 'c3' } });
  const events = [e1, e2, e3, e4, e5];
  const resolutions = [
    resolutionRow(e1, user('u1'), { kind: 'cookie', value: 'c1' }),
    resolutionRow(e2, user('u1'), { kind: 'db_id', value: 'u1' }),
    resolutionRow(e3, user('u2'), { kind: 'cookie', value: 'c2' }),
    // e3 also went to u0 (lower output id: the one every answer without a user filter carries)
    resolutionRow(e3, user('u0'), { kind: 'cookie', value: 'c2' }),
  ];
  const unmatched = [unmatchedRow(1, e4, 'unlinked', { kind: 'email', value: 'a@x' })];
  const audit = [auditRow(1, 'link', { kind: 'cookie', value: 'c1' }, user('u1'), e2, T0 + 5000)];
  const positions = [position('in', 5), position('groups', 4), position('unmatched', 1), position('audit', 1)];
  return { e1, e2, e3, e4, e5, batch: batchOf({ events, resolutions, unmatched, audit, positions }) };
}

// --- the suite ----------------------------------------------------------------------------------

export function readModelContract(name: string, open: () => Promise<ReadModelFixture>): void {
  describe(`the read model contract: ${name}`, () => {
    let fixtures: ReadModelFixture[] = [];
    afterEach(async () => {
      await Promise.all(fixtures.map((f) => f.done()));
      fixtures = [];
    });
    /** A fresh store, claimed by OWNER unless told not to. */
    async function fresh(claimed = true): Promise<ReadModelStore> {
      const fixture = await open();
      fixtures.push(fixture);
      if (claimed) expect(await fixture.store.claim(OWNER, 60_000)).toBe(true);
      return fixture.store;
    }
    const page = (store: ReadModelStore, filter: EventFilter, order: Order = 'asc', limit = 100) => store.events({ filter, order, limit });

    describe('migrations and identity', () => {
      it('is at schema version 6, and migrating again changes nothing (its instance id included)', async () => {
        const store = await fresh();
        expect(await store.schemaVersion()).toBe(6);
        const id = await store.instanceId();
        expect(id).toMatch(/^[0-9a-f]{12}$/);
        await store.apply(scene().batch, OWNER);
        const before = await store.dump();
        await store.migrate();
        expect(await store.schemaVersion()).toBe(6);
        expect(await store.instanceId()).toBe(id);
        expect(await store.dump()).toEqual(before);
      });

      it('an empty database has no positions, a watermark of 0 and no rows', async () => {
        const store = await fresh(false);
        expect((await store.positions()).size).toBe(0);
        expect(await store.watermark()).toBe(0);
        expect(await store.counts()).toEqual({ events: 0, resolutions: 0, unmatched: 0, audit: 0, errors: 0, links: 0 });
        expect(await store.dump()).toEqual({
          positions: [],
          events: [],
          event_ids: [],
          resolutions: [],
          retractions: [],
          unmatched: [],
          audit: [],
          errors: [],
          links: [],
          activity_state: [{ seq: 0, columns: null, zones: null, scalars: null }],
          activity_people: [],
          activity_counts: [],
          activity_anon: [],
          activity_pending: [],
          erasures: [],
        });
      });
    });

    describe('the claim', () => {
      it('is taken when free, renewed by its holder, refused to another while in force, and taken once it expired', async () => {
        const store = await fresh(false);
        expect(await store.claim('a', 60_000)).toBe(true);
        expect(await store.claim('a', 60_000)).toBe(true);
        expect(await store.claim('b', 60_000)).toBe(false);
        // a renewal that runs out at once (a negative ttl: already past) leaves it to the next one
        expect(await store.claim('a', -1)).toBe(true);
        expect(await store.claim('b', 60_000)).toBe(true);
        expect(await store.claim('a', 60_000)).toBe(false);
      });

      it('is given up only by its holder', async () => {
        const store = await fresh(false);
        expect(await store.claim('a', 60_000)).toBe(true);
        await store.release('b');
        expect(await store.claim('b', 60_000)).toBe(false);
        await store.release('a');
        expect(await store.claim('b', 60_000)).toBe(true);
      });

      it('fences apply and resetStreams: refused with XREF_FENCED, nothing written, unless the owner holds it', async () => {
        const store = await fresh(false);
        const { batch } = scene();
        await expect(store.apply(batch, OWNER)).rejects.toMatchObject({ code: 'XREF_FENCED' });
        expect((await store.counts()).events).toBe(0);
        expect(await store.claim(OWNER, 60_000)).toBe(true);
        await store.apply(batchOf({ events: [batch.events[0] as EventRow], positions: [position('in', 1)] }), OWNER);
        // another projection takes over once this one's claim ran out: the old one writes nothing more
        expect(await store.claim(OWNER, -1)).toBe(true);
        expect(await store.claim('projection-b', 60_000)).toBe(true);
        const before = await store.dump();
        await expect(store.apply(batch, OWNER)).rejects.toMatchObject({ code: 'XREF_FENCED' });
        await expect(store.resetStreams(['in'], OWNER)).rejects.toMatchObject({ code: 'XREF_FENCED' });
        expect(await store.dump()).toEqual(before);
        await store.apply(batch, 'projection-b');
        expect((await store.counts()).events).toBe(5);
      });
    });

    describe('apply', () => {
      it('writes rows and positions; the same batch again, or batches that overlap, give the same database', async () => {
        const once = await fresh();
        const { batch } = scene();
        await once.apply(batch, OWNER);
        const expected = await once.dump();
        expect(await once.counts()).toEqual({ events: 5, resolutions: 4, unmatched: 1, audit: 1, errors: 0, links: 1 });
        await once.apply(batch, OWNER);
        expect(await once.dump()).toEqual(expected);

        const overlapping = await fresh();
        const half = (rows: readonly unknown[], from: number, to: number) => rows.slice(from, to);
        await overlapping.apply(
          batchOf({ events: half(batch.events, 0, 3) as EventRow[], resolutions: half(batch.resolutions, 0, 2) as ResolutionRow[], positions: [position('in', 3), position('groups', 2)] }),
          OWNER,
        );
        await overlapping.apply(
          batchOf({ ...batch, events: half(batch.events, 1, 5) as EventRow[], resolutions: half(batch.resolutions, 1, 4) as ResolutionRow[] }),
          OWNER,
        );
        expect(await overlapping.dump()).toEqual(expected);
      });

      it('moves positions forward only: a stale batch never moves one back', async () => {
        const store = await fresh();
        await store.apply(batchOf({ positions: [position('in', 10, 'first'), position('errors', 3, 'first')] }), OWNER);
        await store.apply(batchOf({ positions: [position('in', 5, 'stale'), position('errors', 4, 'next')] }), OWNER);
        const positions = await store.positions();
        expect(positions.get('in')).toEqual({ stream: 'in', seq: 10, created: 'first' });
        expect(positions.get('errors')).toEqual({ stream: 'errors', seq: 4, created: 'next' });
        expect(positions.has('groups')).toBe(false);
        expect(await store.watermark()).toBe(10);
      });

      it('keeps the first event of an id: a duplicate beyond the dedup window is stored neither as an event nor by its identifiers', async () => {
        const store = await fresh();
        const first = eventRow(1, { id: 'same', ids: { cookie: 'a' } });
        const duplicate = eventRow(7, { id: 'same', ids: { cookie: 'b' }, at: 500 });
        await store.apply(batchOf({ events: [first], positions: [position('in', 1)] }), OWNER);
        await store.apply(batchOf({ events: [duplicate], positions: [position('in', 7)] }), OWNER);
        // and within one batch: the lower seq wins
        await store.apply(batchOf({ events: [eventRow(9, { id: 'twin', ids: { cookie: 'd' } }), eventRow(8, { id: 'twin', ids: { cookie: 'c' } })] }), OWNER);
        const dump = await store.dump();
        expect(seqs(dump.events as Array<{ seq: number }>)).toEqual([1, 8]);
        expect(dump.event_ids).toEqual([
          { kind: 'cookie', value: 'a', seq: 1 },
          { kind: 'cookie', value: 'c', seq: 8 },
        ]);
        expect((await store.event('same'))?.seq).toBe(1);
        expect(await store.watermark()).toBe(7);
      });

      it('keeps an identifier on the link or relink of the latest event; conflicts and refusals change nothing', async () => {
        const store = await fresh();
        const [e1, e2, e3, e4] = [eventRow(1, { at: 0 }), eventRow(2, { at: 1000 }), eventRow(3, { at: 2000 }), eventRow(4, { at: 3000 })];
        const c = { kind: 'cookie', value: 'x' };
        await store.apply(batchOf({ events: [e1, e2, e3, e4], audit: [auditRow(1, 'link', c, user('u1'), e1)] }), OWNER);
        await store.apply(batchOf({ audit: [auditRow(3, 'relink', c, user('u2'), e3), auditRow(4, 'conflict', c, user('u3'), e4), auditRow(5, 'refused', c, user('u4'), e4)] }), OWNER);
        // a late batch holding an older link (a redelivery) does not move it back
        await store.apply(batchOf({ audit: [auditRow(2, 'link', c, user('u1'), e2)] }), OWNER);
        expect((await store.identifier(c, 10)).link).toEqual({ identifier: c, user: user('u2'), sinceMs: e3.timeMs, linkedBy: 'e3', seq: 3 });
        expect(await store.userLinks(user('u1'))).toEqual([]);
        expect(await store.counts()).toMatchObject({ audit: 5, links: 1 });
      });
    });

    describe('events', () => {
      it('filters by session, category, name, source, user and identifier, every field ANDed', async () => {
        const store = await fresh();
        await store.apply(scene().batch, OWNER);
        const q = async (filter: EventFilter) => seqs(await page(store, filter));
        expect(await q({})).toEqual([1, 5, 2, 3, 4]);
        expect(await q({ sessionId: 's1' })).toEqual([1, 5, 2]);
        expect(await q({ category: 'web' })).toEqual([1, 5, 2]);
        expect(await q({ name: 'page' })).toEqual([1, 5, 3]);
        expect(await q({ source: 'ios' })).toEqual([2]);
        expect(await q({ user: user('u1') })).toEqual([1, 2]);
        expect(await q({ user: user('u2') })).toEqual([3]);
        expect(await q({ identifier: { kind: 'cookie', value: 'c1' } })).toEqual([1, 2]);
        expect(await q({ identifier: { kind: 'db_id', value: 'u1' } })).toEqual([2]);
        expect(await q({ sessionId: 's1', name: 'page' })).toEqual([1, 5]);
        expect(await q({ sessionId: 's1', source: 'web', category: 'web', name: 'page', user: user('u1'), identifier: { kind: 'cookie', value: 'c1' } })).toEqual([1]);
        expect(await q({ user: user('u1'), identifier: { kind: 'cookie', value: 'c2' } })).toEqual([]);
        expect(await q({ sessionId: 'nope' })).toEqual([]);
        expect(await q({ user: user('nobody') })).toEqual([]);
      });

      it('takes inclusive time bounds', async () => {
        const store = await fresh();
        await store.apply(scene().batch, OWNER);
        expect(seqs(await page(store, { afterMs: T0 + 1000 }))).toEqual([2, 3, 4]);
        expect(seqs(await page(store, { beforeMs: T0 + 1000 }))).toEqual([1, 5, 2, 3]);
        expect(seqs(await page(store, { afterMs: T0 + 1000, beforeMs: T0 + 1000 }))).toEqual([2, 3]);
        expect(seqs(await page(store, { afterMs: T0 + 1, beforeMs: T0 + 999 }))).toEqual([]);
        expect(seqs(await page(store, { sessionId: 's1', afterMs: T0, beforeMs: T0 }))).toEqual([1, 5]);
      });

      it('orders by (event time, seq), ascending or descending, and stops at the limit', async () => {
        const store = await fresh();
        await store.apply(scene().batch, OWNER);
        expect(seqs(await page(store, {}, 'desc'))).toEqual([4, 3, 2, 5, 1]);
        expect(seqs(await page(store, {}, 'asc', 2))).toEqual([1, 5]);
        expect(seqs(await page(store, { sessionId: 's1' }, 'desc', 2))).toEqual([2, 5]);
        expect(seqs(await store.events({ filter: {}, order: 'asc', limit: 10, from: { timeMs: T0, seq: 1 } }))).toEqual([5, 2, 3, 4]);
        expect(seqs(await store.events({ filter: {}, order: 'desc', limit: 10, from: { timeMs: T0 + 1000, seq: 3 } }))).toEqual([2, 5, 1]);
      });

      it('answers each event with its envelope, source, time and resolution (with a user filter, that user; else the lowest output id)', async () => {
        const store = await fresh();
        const { batch, e2, e3, e4 } = scene();
        await store.apply(batch, OWNER);
        const all = await page(store, {});
        const bySeq = new Map(all.map((row) => [row.seq, row]));
        expect(bySeq.get(2)).toEqual({ seq: 2, event: e2.event, source: 'ios', timeMs: e2.timeMs, user: user('u1'), via: { kind: 'db_id', value: 'u1' } } satisfies StoredEvent);
        expect(bySeq.get(3)?.user).toEqual(user('u0'));
        expect(bySeq.get(4)).toMatchObject({ event: e4.event, user: null, via: null });
        expect((await page(store, { user: user('u2') }))[0]).toEqual({ seq: 3, event: e3.event, source: 'web', timeMs: e3.timeMs, user: user('u2'), via: { kind: 'cookie', value: 'c2' } });
        expect(await store.event('e3')).toEqual(bySeq.get(3));
        expect(await store.event('e4')).toEqual(bySeq.get(4));
        expect(await store.event('missing')).toBeUndefined();
      });

      it('leaves out a resolution whose event is not projected yet, until it is', async () => {
        const store = await fresh();
        const early = eventRow(10, { at: 100 });
        await store.apply(batchOf({ resolutions: [resolutionRow(early, user('u9'))], positions: [position('groups', 1)] }), OWNER);
        expect(await page(store, { user: user('u9') })).toEqual([]);
        expect(await store.userEvents(user('u9'), 10)).toEqual({ total: 0, events: [] });
        await store.apply(batchOf({ events: [early], positions: [position('in', 10)] }), OWNER);
        expect(seqs(await page(store, { user: user('u9') }))).toEqual([10]);
        expect((await store.userEvents(user('u9'), 10)).total).toBe(1);
        // with a second resolution still waiting for its event: counted once that event is there
        const later = eventRow(11, { at: 200 });
        await store.apply(batchOf({ resolutions: [resolutionRow(later, user('u9'))] }), OWNER);
        expect(await store.userEvents(user('u9'), 1)).toMatchObject({ total: 1, events: [{ seq: 10 }] });
      });

      for (const order of ['asc', 'desc'] as const) {
        it(`pages across ties (${order}) with no skip and no repeat, even while events arrive between pages`, async () => {
          const store = await fresh();
          // 60 events: 40 share one time, the rest on either side, in an order unrelated to seq
          const initial = Array.from({ length: 60 }, (_, i) => eventRow(i + 1, { session: 's', at: i < 10 ? 1000 - i : i < 50 ? 2000 : 3000 + (i % 3), ids: { cookie: `c${i % 4}` } }));
          await store.apply(batchOf({ events: initial, resolutions: initial.filter((r) => r.seq % 2 === 0).map((r) => resolutionRow(r, user('u'))) }), OWNER);
          let next = 61;
          /** The rows that arrived past the cursor of the page they arrived after: a page to come must hold them. */
          const arrivedAhead = new Set<number>();
          const ahead = (row: { timeMs: number; seq: number }, cursor: Keyset) =>
            order === 'asc' ? row.timeMs > cursor.timeMs || (row.timeMs === cursor.timeMs && row.seq > cursor.seq) : row.timeMs < cursor.timeMs || (row.timeMs === cursor.timeMs && row.seq < cursor.seq);
          let arrivals = 0;
          const arrive = async (cursor: Keyset) => {
            // after each of a run's first pages: newer inputs (larger seq) at the tie time, before and after every other, resolved to the user
            if (arrivals++ >= 4) return;
            const rows = [eventRow(next, { session: 's', at: 2000, ids: { cookie: 'c0' } }), eventRow(next + 1, { session: 's', at: 500 }), eventRow(next + 2, { session: 's', at: 9000 })];
            next += 3;
            for (const row of rows) if (ahead(row, cursor)) arrivedAhead.add(row.seq);
            await store.apply(batchOf({ events: rows, resolutions: rows.map((r) => resolutionRow(r, user('u'))) }), OWNER);
          };
          const filters: EventFilter[] = [{}, { sessionId: 's' }, { user: user('u') }, { identifier: { kind: 'cookie', value: 'c0' } }, { sessionId: 's', afterMs: T0 + 990, beforeMs: T0 + 3001 }];
          for (const filter of filters) {
            for (const limit of [1, 3, 7]) {
              const before = new Set(seqs(await page(store, filter, order, 10_000)));
              arrivedAhead.clear();
              arrivals = 0;
              const paged = await pageAll((query) => store.events({ ...query, filter }), order, limit, arrive);
              const after = await page(store, filter, order, 10_000);
              expect(after.length).toBeGreaterThan(before.size);
              // in order, every row there at the start and every one that arrived ahead of the cursor, each once
              const expected = after.filter((row) => before.has(row.seq) || arrivedAhead.has(row.seq));
              expect(seqs(paged)).toEqual(seqs(expected));
              expect(new Set(seqs(paged)).size).toBe(paged.length);
            }
          }
        });
      }
    });

    describe('users and identifiers', () => {
      it("gives a user's newest events by log order, returned in log order, and their total", async () => {
        const store = await fresh();
        const rows = Array.from({ length: 12 }, (_, i) => eventRow(i + 1, { at: (12 - i) * 1000 }));
        await store.apply(batchOf({ events: rows, resolutions: rows.filter((r) => r.seq !== 6).map((r) => resolutionRow(r, user('u'), { kind: 'cookie', value: `v${r.seq}` })) }), OWNER);
        const answer = await store.userEvents(user('u'), 4);
        expect(answer.total).toBe(11);
        expect(answer.events).toEqual(rows.slice(8).map((r) => ({ seq: r.seq, event: r.event, via: { kind: 'cookie', value: `v${r.seq}` } })));
        expect((await store.userEvents(user('u'), 100)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
        expect((await store.userEvents(user('u'), 100)).total).toBe(11);
        expect((await store.userEvents(user('u'), 11)).total).toBe(11);
        expect((await store.userEvents(user('u'), 10)).total).toBe(11);
        expect(await store.userEvents(user('nobody'), 4)).toEqual({ total: 0, events: [] });
      });

      it("lists a user's links in the order they were linked, since the linking event's time (null until it is projected)", async () => {
        const store = await fresh();
        const [e1, e2, e3] = [eventRow(1, { at: 100 }), eventRow(2, { at: 200 }), eventRow(3, { at: 300 })];
        const u = user('u1');
        await store.apply(
          batchOf({ events: [e1, e3], audit: [auditRow(1, 'link', { kind: 'email', value: 'm' }, u, e3), auditRow(2, 'link', { kind: 'cookie', value: 'k' }, u, e2), auditRow(3, 'link', { kind: 'cookie', value: 'a' }, u, e1)] }),
          OWNER,
        );
        expect(await store.userLinks(u)).toEqual([
          { identifier: { kind: 'cookie', value: 'a' }, user: u, sinceMs: e1.timeMs, linkedBy: 'e1', seq: 1 },
          { identifier: { kind: 'cookie', value: 'k' }, user: u, sinceMs: null, linkedBy: 'e2', seq: 2 },
          { identifier: { kind: 'email', value: 'm' }, user: u, sinceMs: e3.timeMs, linkedBy: 'e3', seq: 3 },
        ]);
        await store.apply(batchOf({ events: [e2] }), OWNER);
        expect((await store.userLinks(u))[1]?.sinceMs).toBe(e2.timeMs);
        expect(await store.userLinks(user('u2'))).toEqual([]);
      });

      it('knows an identifier: its link, its buffered events (neither resolved nor unmatched) and its unmatched records per reason', async () => {
        const store = await fresh();
        const { batch, e2 } = scene();
        await store.apply(batch, OWNER);
        const c1 = { kind: 'cookie', value: 'c1' };
        expect(await store.identifier(c1, 10)).toEqual({
          link: { identifier: c1, user: user('u1'), sinceMs: e2.timeMs, linkedBy: 'e2', seq: 2 },
          buffered: { count: 0, oldestMs: null, events: [] },
          unmatched: [],
        });
        // e5 carries c3 and went nowhere yet; more c3 events wait, one of them later unmatched
        const waiting = [eventRow(20, { at: 9000, ids: { cookie: 'c3' } }), eventRow(21, { at: 50, ids: { cookie: 'c3', email: 'q' } }), eventRow(22, { at: 7000, ids: { cookie: 'c3' } })];
        await store.apply(batchOf({ events: waiting, unmatched: [unmatchedRow(2, waiting[2]!, 'expired', { kind: 'cookie', value: 'c3' })] }), OWNER);
        const c3 = await store.identifier({ kind: 'cookie', value: 'c3' }, 2);
        expect(c3.link).toBeUndefined();
        expect(c3.buffered.count).toBe(3);
        expect(c3.buffered.oldestMs).toBe(T0 + 0);
        expect(seqs(c3.buffered.events)).toEqual([5, 20]);
        expect(c3.buffered.events[0]).toMatchObject({ event: scene().e5.event, source: 'web', user: null, via: null });
        expect(c3.unmatched).toEqual([{ reason: 'expired', count: 1 }]);
        // unmatched by the identifier it was held under
        expect(await store.identifier({ kind: 'email', value: 'a@x' }, 10)).toEqual({ buffered: { count: 0, oldestMs: null, events: [] }, unmatched: [{ reason: 'unlinked', count: 1 }] });
        expect(await store.identifier({ kind: 'cookie', value: 'never' }, 10)).toEqual({ buffered: { count: 0, oldestMs: null, events: [] }, unmatched: [] });
      });
    });

    describe('records: unmatched, audit, errors', () => {
      async function withRecords() {
        const store = await fresh();
        const rows = Array.from({ length: 9 }, (_, i) => eventRow(i + 1, { at: i < 6 ? 1000 : 2000 + i, ids: { [i % 2 === 0 ? 'cookie' : 'email']: `v${i}` } }));
        const reasons = ['expired', 'junk', 'unlinked'];
        const unmatched = rows.map((r, i) => unmatchedRow(i + 1, r, reasons[i % 3] as string));
        const audit = rows.map((r, i) => auditRow(i + 1, i % 2 === 0 ? 'link' : 'conflict', firstId(r), user(`u${i}`), r, T0 + (i < 6 ? 1000 : 2000 + i)));
        const origins = ['http', 'publish', 'engine'];
        const errors = rows.map((_, i) => errorRow(i + 1, i % 2 === 0 ? 'invalid_event' : 'schema_violation', origins[i % 3] as string, i < 6 ? 1000 : 2000 + i));
        await store.apply(batchOf({ events: rows, unmatched, audit, errors, positions: [position('unmatched', 9), position('audit', 9), position('errors', 9)] }), OWNER);
        return { store, unmatched, audit, errors };
      }
      const list = (store: ReadModelStore, name: RecordList, filter: RecordFilter, order: Order = 'asc', limit = 100) => store.records(name, { filter, order, limit });

      it('pages each list by (time, stream seq), ties included, both ways', async () => {
        const { store, errors } = await withRecords();
        for (const name of ['unmatched', 'audit', 'errors'] as const) {
          for (const order of ['asc', 'desc'] as const) {
            const all = await list(store, name, {}, order);
            expect(seqs(all)).toEqual(order === 'asc' ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : [9, 8, 7, 6, 5, 4, 3, 2, 1]);
            for (const limit of [1, 2, 4]) {
              const paged = await pageAll<StoredRecord>((query) => store.records(name, { ...query, filter: {} }), order, limit);
              expect(paged).toEqual(all);
            }
          }
        }
        expect((await list(store, 'errors', {}))[0]).toEqual({ seq: 1, timeMs: T0 + 1000, record: errors[0]?.record });
      });

      it('filters by reason, by kind (errors: origin) and by inclusive time bounds', async () => {
        const { store, unmatched, audit } = await withRecords();
        expect(seqs(await list(store, 'unmatched', { reason: 'junk' }))).toEqual([2, 5, 8]);
        expect(seqs(await list(store, 'unmatched', { kind: 'email' }))).toEqual([2, 4, 6, 8]);
        expect(seqs(await list(store, 'unmatched', { kind: 'email', reason: 'junk' }, 'desc'))).toEqual([8, 2]);
        expect(seqs(await list(store, 'audit', { reason: 'link' }))).toEqual([1, 3, 5, 7, 9]);
        expect(seqs(await list(store, 'audit', { kind: 'cookie', afterMs: T0 + 1000, beforeMs: T0 + 1000 }))).toEqual([1, 3, 5]);
        expect(seqs(await list(store, 'errors', { kind: 'engine' }))).toEqual([3, 6, 9]);
        expect(seqs(await list(store, 'errors', { reason: 'schema_violation', afterMs: T0 + 2007 }))).toEqual([8]);
        expect(seqs(await list(store, 'errors', { beforeMs: T0 + 2006 }))).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect(seqs(await list(store, 'errors', { reason: 'nope' }))).toEqual([]);
        expect((await list(store, 'unmatched', { reason: 'expired' }))[0]?.record).toEqual(unmatched[0]?.record);
        expect((await list(store, 'audit', { reason: 'conflict' }))[0]?.record).toEqual(audit[1]?.record);
      });
    });

    describe('resetStreams', () => {
      const tablesOf: Record<ProjectedStream, string[]> = { in: ['events', 'event_ids'], groups: ['resolutions'], unmatched: ['unmatched'], audit: ['audit', 'links'], errors: ['errors'] };
      for (const stream of ['in', 'groups', 'unmatched', 'audit', 'errors'] as const) {
        it(`of ${stream}: deletes only its rows and its position`, async () => {
          const store = await fresh();
          const { batch } = scene();
          await store.apply(batchOf({ ...batch, errors: [errorRow(1, 'invalid_json', 'http', 0)], positions: [...batch.positions, position('errors', 1)] }), OWNER);
          const before = await store.dump();
          await store.resetStreams([stream], OWNER);
          const after = await store.dump();
          for (const table of Object.keys(before)) {
            if (table === 'positions') expect(after.positions).toEqual((before.positions as Array<{ stream: string }>).filter((p) => p.stream !== stream));
            else if (tablesOf[stream].includes(table)) expect(after[table]).toEqual([]);
            else expect(after[table]).toEqual(before[table]);
          }
          expect(await store.watermark()).toBe(stream === 'in' ? 0 : 5);
          // and the stream reads anew into it
          await store.apply(batch, OWNER);
          expect((await store.counts()).events).toBe(5);
        });
      }
    });

    describe('dump', () => {
      it('gives every table but the claim, the instance and the migrations, rows by key, bodies parsed', async () => {
        const store = await fresh();
        const { batch, e1, e4 } = scene();
        await store.apply(batchOf({ ...batch, events: [...batch.events].reverse(), errors: [errorRow(2, 'invalid_json', 'http', 0), errorRow(1, 'invalid_json', 'publish', 0)] }), OWNER);
        const dump = await store.dump();
        expect(Object.keys(dump).sort()).toEqual([
          'activity_anon',
          'activity_counts',
          'activity_pending',
          'activity_people',
          'activity_state',
          'audit',
          'erasures',
          'errors',
          'event_ids',
          'events',
          'links',
          'positions',
          'resolutions',
          'retractions',
          'unmatched',
        ]);
        expect(dump.events?.[0]).toEqual({ seq: 1, id: 'e1', name: 'page', category: 'web', session_id: 's1', source: 'web', time_ms: e1.timeMs, body: e1.event });
        expect(dump.events?.[3]).toMatchObject({ seq: 4, category: null, session_id: null, body: e4.event });
        expect((dump.resolutions as Array<{ event_seq: number; user_id: string }>).map((r) => `${r.event_seq}:${r.user_id}`)).toEqual(['1:u1', '2:u1', '3:u0', '3:u2']);
        expect((dump.errors as Array<{ id: string }>).map((r) => r.id)).toEqual(['err-1', 'err-2']);
        expect((dump.positions as Array<{ stream: string }>).map((r) => r.stream)).toEqual(['audit', 'groups', 'in', 'unmatched']);
        expect(dump.links).toEqual([{ kind: 'cookie', value: 'c1', user_kind: 'db_id', user_id: 'u1', event_seq: 2, event_id: 'e2' }]);
        expect(dump.audit?.[0]).toMatchObject({ reason: 'link', body: batch.audit[0]?.record });
      });
    });

    activityStoreContract(fresh);
    forgetContract(fresh);
    unlinkContract(fresh);

    it('keeps text as it was given: quotes, unicode, and keys that sort bytewise', async () => {
      const store = await fresh();
      const odd = ["it's", 'a"b', 'é', 'Z', 'a', '日本', 'back\\slash', 'with space'];
      const rows = odd.map((value, i) => eventRow(i + 1, { session: value, ids: { cookie: value } }));
      await store.apply(batchOf({ events: rows }), OWNER);
      for (const value of odd) {
        expect(seqs(await page(store, { sessionId: value }))).toEqual([odd.indexOf(value) + 1]);
        expect(seqs(await page(store, { identifier: { kind: 'cookie', value } }))).toEqual([odd.indexOf(value) + 1]);
      }
      const ids = ((await store.dump()).event_ids as Array<{ value: string }>).map((r) => r.value);
      expect(ids).toEqual([...odd].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b)))));
    });
  });
}
