/**
 * Forgetting a user, the store's part (docs/read-model.md), run inside `readModelContract` against
 * every adapter: a forget applied with an audit batch deletes the user's events, resolutions,
 * identifier rows, unmatched and audit rows, links and per-person activity rows (rows of the same
 * batch too), and nothing of anyone else; the active-people counts stay as they were, also once
 * the counter is loaded again; the receipt says per table what went and that nothing is left; a
 * forget is applied once per request, fenced by the claim; a suppressed event is deleted; control
 * audit records are audit rows.
 */
import { describe, expect, it } from 'vitest';
import { ActivityCounter } from '../../src/activity/activity-counter.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { UserRef } from '../../src/engine/outputs.ts';
import { auditId } from '../../src/engine/records.ts';
import type { AuditRow, EventRow, ForgetRow, ReadModelStore, ResolutionRow } from '../../src/projection/read-model.ts';
import { messageRows } from '../../src/projection/rows.ts';
import { T0, auditRow, batchOf, eventRow, resolutionRow, unmatchedRow } from './read-model-contract.ts';

const OWNER = 'projection-a';
const REQUEST = '6f1c2b4e-0d3a-4c5b-9e8f-7a6b5c4d3e2f';
const config = resolveConfig({ activity: { buckets: { auth: { linked: true } } } });
const u = (id: string): UserRef => ({ kind: 'db_id', id });
const cookie = (value: string) => ({ kind: 'cookie', value });
const email = (value: string) => ({ kind: 'email', value });
const DAY = 86_400_000;

const encoder = new TextEncoder();
/** A control input's audit record as the projection reads it from XREF_AUDIT. */
export function controlAudit(streamSeq: number, record: Record<string, unknown>) {
  const made = messageRows('audit', { seq: streamSeq, subject: `xref.audit.${String(record.reason)}`, data: encoder.encode(JSON.stringify(record)), publishedMs: () => T0 + 60_000 }, () => {
    throw new Error('not an input');
  });
  if (made.table !== 'audit') throw new Error(`not an audit row: ${made.table === 'none' ? made.why : made.table}`);
  return made;
}

/** An audit row naming a second user: a relink's `previous`, a conflict's `claimedBy`. */
function namingAudit(streamSeq: number, reason: 'relink' | 'conflict', identifier: { kind: string; value: string }, user: UserRef, other: UserRef, row: EventRow): AuditRow {
  const base = auditRow(streamSeq, reason, identifier, user, row);
  const outputId = auditId(row.id, reason, `${identifier.kind}:${identifier.value}`);
  const field = reason === 'relink' ? 'previous' : 'claimedBy';
  return { ...base, record: { outputId, reason, identifier, user, [field]: other, seq: row.seq, eventId: row.id } };
}

/**
 * u1 (cluster: its id, cookie c1, email m1) and u2 (cookie c2, cookie c4): u1's events, unmatched
 * and buffered events carrying c1 or m1, an event of u2 carrying c1 (a conflict), c4 relinked from
 * u1 to u2, and events of no one.
 */
function scene() {
  const day = (n: number) => n * DAY;
  const e = [
    eventRow(1, { ids: { cookie: 'c1' }, at: day(0) }),
    eventRow(2, { ids: { cookie: 'c1', db_id: 'u1' }, at: day(0) + 1 }),
    eventRow(3, { ids: { cookie: 'c2', db_id: 'u2' }, at: day(0) + 2 }),
    eventRow(4, { ids: { cookie: 'c1', db_id: 'u2' }, at: day(1) }),
    eventRow(5, { ids: { email: 'm1' }, at: day(1) + 1 }),
    eventRow(6, { ids: { cookie: 'c9' }, at: day(1) + 2 }),
    eventRow(7, { ids: { email: 'm1', db_id: 'u1' }, at: day(2) }),
    eventRow(8, { ids: { cookie: 'c1' }, at: day(2) + 1 }),
    eventRow(9, { ids: { cookie: 'c3' }, at: day(2) + 2 }),
    eventRow(10, { ids: { cookie: 'c4', db_id: 'u2' }, at: day(3) }),
    eventRow(11, { ids: { cookie: 'c5', email: 'm1' }, at: day(3) + 1 }),
    eventRow(12, { ids: { cookie: 'c6', device: 'd6' }, at: day(3) + 2 }),
  ] as const;
  const [e1, e2, e3, e4, e5, e6, e7, , , e10, e11] = e;
  const resolutions: ResolutionRow[] = [
    { ...resolutionRow(e1, u('u1'), cookie('c1')), decidedSeq: 2 },
    resolutionRow(e2, u('u1'), cookie('c1')),
    resolutionRow(e3, u('u2'), cookie('c2')),
    resolutionRow(e4, u('u2'), { kind: 'db_id', value: 'u2' }),
    resolutionRow(e7, u('u1'), email('m1')),
    resolutionRow(e10, u('u2'), cookie('c4')),
  ];
  const unmatched = [unmatchedRow(1, e5, 'expired', email('m1')), unmatchedRow(2, e6, 'expired', cookie('c9')), unmatchedRow(3, e11, 'expired', cookie('c5'))];
  const audit = [
    auditRow(1, 'link', cookie('c1'), u('u1'), e2),
    auditRow(2, 'link', cookie('c4'), u('u1'), e2),
    auditRow(3, 'link', cookie('c2'), u('u2'), e3),
    namingAudit(4, 'conflict', cookie('c1'), u('u1'), u('u2'), e4),
    auditRow(5, 'link', email('m1'), u('u1'), e7),
    namingAudit(6, 'relink', cookie('c4'), u('u2'), u('u1'), e10),
    // a user whose id differs from u1's in case only (SQLite's LIKE would not tell them apart)
    namingAudit(7, 'relink', cookie('c7'), u('u2'), u('U1'), e10),
  ];
  const batch = batchOf({ events: [...e], resolutions, unmatched, audit });
  /** The counts of the scene, as the counter writes them. */
  const counter = new ActivityCounter(config);
  for (const row of e) {
    counter.input(row.seq, row.event, row.timeMs);
    for (const r of resolutions.filter((r) => r.decidedSeq === row.seq)) counter.resolved(row.seq, r.eventSeq, r.user);
    counter.endOfInput(row.seq);
  }
  const forget: ForgetRow = { request: REQUEST, streamSeq: 8, user: u('u1'), identifiers: [{ kind: 'db_id', value: 'u1' }, cookie('c1'), email('m1')], at: '2021-06-05T00:00:00.000Z' };
  const record = controlAudit(8, { outputId: `${REQUEST}:forget`, reason: 'forget', request: REQUEST, seq: 13, by: 'cli:ana', at: '2021-06-04T00:00:00.000Z', erased: { XREF_IN: 6 }, through: { XREF_IN: 13, XREF_GROUPS: 6 } });
  return { e, batch, counter, forget, record };
}

type Dump = Readonly<Record<string, readonly unknown[]>>;
type Row = Record<string, unknown>;

/** The rows of `table` in `dump` for which `keep` holds. */
const rowsOf = (dump: Dump, table: string, keep: (row: Row) => boolean = () => true) => (dump[table] as Row[]).filter(keep);

export function forgetContract(fresh: (claimed?: boolean) => Promise<ReadModelStore>): void {
  describe('forgetting a user', () => {
    async function filled() {
      const store = await fresh();
      const s = scene();
      await store.apply(s.batch, OWNER);
      expect(await store.activity.write(s.counter.takeChanges(), { generation: 0, seq: 0 }, 12, OWNER)).toBe(true);
      return { store, s, before: await store.dump() };
    }

    it('finds where a forget looks: the users of a kind, a user\'s linked identifiers and those its events carry', async () => {
      const { store } = await filled();
      expect((await store.userIds('db_id')).sort()).toEqual(['u1', 'u2']);
      expect(await store.userIds('email')).toEqual([]);
      const ids = (await store.userIdentifiers(u('u1'))).map((i) => `${i.kind}:${i.value}`).sort();
      // c4 is u2's now (relinked): not u1's link, nor carried by u1's events
      expect(ids).toEqual(['cookie:c1', 'db_id:u1', 'email:m1']);
    });

    it("deletes the user's rows and nothing of anyone else's; the counts stay; the receipt says what went and that nothing is left", async () => {
      const { store, s, before } = await filled();
      const keys = new Set(['cookie:c1', 'email:m1']);
      const expectedActivity = {
        activity_people: rowsOf(before, 'activity_people', (r) => r.person === 'user:db_id:u1' || keys.has(String(r.person).slice('anon:'.length))).length,
        activity_anon: rowsOf(before, 'activity_anon', (r) => keys.has(String(r.id)) || keys.has(String(r.parent))).length,
        activity_pending: rowsOf(before, 'activity_pending', (r) => keys.has(String(r.anchor))).length,
      };
      expect(expectedActivity.activity_people).toBeGreaterThan(1);
      expect(expectedActivity.activity_anon).toBeGreaterThan(0);
      expect(expectedActivity.activity_pending).toBeGreaterThan(0);

      await store.apply(batchOf({ audit: [s.record.row], forgets: [s.forget] }), OWNER);
      const after = await store.dump();
      // u1's events, and the events carrying c1 or m1 that no one else has
      expect(rowsOf(after, 'events').map((r) => r.seq)).toEqual([3, 4, 6, 9, 10, 12]);
      expect(rowsOf(after, 'event_ids', (r) => r.seq === 4)).toHaveLength(2);
      expect(rowsOf(after, 'resolutions').map((r) => r.event_seq)).toEqual([3, 4, 10]);
      expect(rowsOf(after, 'unmatched').map((r) => r.event_seq)).toEqual([6]);
      expect(rowsOf(after, 'links').map((r) => `${r.kind}:${r.value}>${r.user_id}`)).toEqual(['cookie:c2>u2', 'cookie:c4>u2', 'cookie:c7>u2']);
      expect(rowsOf(after, 'audit').map((r) => r.stream_seq).sort()).toEqual([3, 7, 8]);
      // the active-people counts are as they were: only the person rows went
      expect(after.activity_counts).toEqual(before.activity_counts);
      for (const table of ['activity_people', 'activity_anon', 'activity_pending']) {
        const name = (r: Row) => JSON.stringify(r);
        expect(JSON.stringify(after[table])).not.toMatch(/u1|c1|m1/);
        expect(rowsOf(after, table).map(name)).toEqual(rowsOf(before, table).map(name).filter((r) => !/"(user:db_id:u1|anon:cookie:c1|anon:email:m1|cookie:c1|email:m1)"/.test(r)));
      }
      // nothing of u1 is asked any more
      expect(await store.userEvents(u('u1'), 10)).toEqual({ total: 0, events: [] });
      expect(await store.userLinks(u('u1'))).toEqual([]);
      for (const id of [cookie('c1'), email('m1')]) expect(await store.identifier(id, 10)).toEqual({ buffered: { count: 0, oldestMs: null, events: [] }, unmatched: [] });
      expect((await store.userEvents(u('u2'), 10)).total).toBe(3);

      const receipt = await store.erasure(REQUEST);
      expect(receipt).toEqual({
        request: REQUEST,
        deleted: { events: 6, event_ids: 9, resolutions: 3, retractions: 0, unmatched: 2, audit: 5, links: 2, ...expectedActivity },
        remaining: 0,
        at: s.forget.at,
      });
      expect(await store.erasure('00000000-0000-4000-8000-000000000000')).toBeUndefined();
      // the counter's memory may hold what went: its next write is refused, it loads the counts again
      expect((await store.activity.load()).mark).toEqual({ generation: 1, seq: 12 });
      expect(await store.activity.write(s.counter.takeChanges(), { generation: 0, seq: 12 }, 12, OWNER)).toBe(false);
    });

    it('keeps what forgotten people counted once the counter is loaded again, and counts on from there', async () => {
      const { store, s } = await filled();
      const ask = { period: 'day', buckets: ['all', 'auth'] } as const;
      const counted = s.counter.series(ask);
      await store.apply(batchOf({ audit: [s.record.row], forgets: [s.forget] }), OWNER);
      const loaded = await store.activity.load();
      const counter = ActivityCounter.restore(config, loaded.state!);
      // the rows alone give fewer people: the forgotten one's rows are gone
      expect(counter.series(ask)).not.toEqual(counted);
      counter.adoptCounts(loaded.counts!);
      expect(counter.series(ask)).toEqual(counted);
      // and counting on changes only what the new input changes
      const next = eventRow(13, { ids: { cookie: 'c3', db_id: 'u3' }, at: 3 * DAY + 10 });
      counter.input(13, next.event, next.timeMs);
      counter.resolved(13, 13, u('u3'));
      counter.endOfInput(13);
      s.counter.input(13, next.event, next.timeMs);
      s.counter.resolved(13, 13, u('u3'));
      s.counter.endOfInput(13);
      expect(counter.series(ask)).toEqual(s.counter.series(ask));
      expect(await store.activity.write(counter.takeChanges(), loaded.mark, 13, OWNER)).toBe(true);
      expect((await store.activity.counts({ zone: 'UTC', period: 'day', from: 0, to: 100_000 })).get(Math.floor((T0 + 3 * DAY) / DAY))?.current?.[0]).toBe(
        s.counter.series({ period: 'day', buckets: ['all'] }).series.at(-1)!.counts.all,
      );
    });

    it('erases rows of the forget\'s own batch, and applies a request once: again, it changes nothing', async () => {
      const store = await fresh();
      const s = scene();
      await store.apply({ ...s.batch, audit: [...s.batch.audit, s.record.row], forgets: [s.forget] }, OWNER);
      const dump = await store.dump();
      expect(rowsOf(dump, 'events').map((r) => r.seq)).toEqual([3, 4, 6, 9, 10, 12]);
      const receipt = await store.erasure(REQUEST);
      expect(receipt?.remaining).toBe(0);
      expect(receipt?.deleted.events).toBe(6);
      // the same forget again (read again after a crash, or by a rebuild of the audit stream), even with rows of the user back
      await store.apply({ ...s.batch, forgets: [{ ...s.forget, at: '2030-01-01T00:00:00.000Z' }] }, OWNER);
      expect(await store.erasure(REQUEST)).toEqual(receipt);
      await store.resetStreams(['audit'], OWNER);
      expect(await store.erasure(REQUEST)).toEqual(receipt);
    });

    it('writes a receipt of nothing for a user the read model does not hold', async () => {
      const store = await fresh();
      const s = scene();
      await store.apply(s.batch, OWNER);
      const before = await store.dump();
      await store.apply(batchOf({ forgets: [{ request: REQUEST, streamSeq: 1, identifiers: [], at: s.forget.at }] }), OWNER);
      const after = await store.dump();
      expect({ ...after, erasures: [] }).toEqual(before);
      expect(await store.erasure(REQUEST)).toMatchObject({ deleted: { events: 0, audit: 0, activity_people: 0 }, remaining: 0 });
    });

    it('is fenced: XREF_FENCED and nothing deleted unless the owner holds the claim', async () => {
      const { store, s, before } = await filled();
      await expect(store.apply(batchOf({ forgets: [s.forget] }), 'someone-else')).rejects.toMatchObject({ code: 'XREF_FENCED' });
      expect(await store.dump()).toEqual(before);
      expect(await store.erasure(REQUEST)).toBeUndefined();
    });

    it('deletes a suppressed event read before the engine erased it (by its input and id, nothing else)', async () => {
      const store = await fresh();
      const kept = eventRow(1, { id: 'dup', ids: { cookie: 'k' } });
      const dropped = eventRow(2, { id: 'gone', ids: { cookie: 'c1', email: 'm1' } });
      await store.apply(batchOf({ events: [kept, dropped] }), OWNER);
      const record = controlAudit(1, { outputId: 'gone:suppressed', reason: 'suppressed', request: REQUEST, seq: 2, eventId: 'gone', kind: 'cookie' });
      expect(record.control).toEqual({ suppressed: { streamSeq: 1, seq: 2, eventId: 'gone' } });
      await store.apply(batchOf({ audit: [record.row], suppressed: [{ streamSeq: 1, seq: 2, eventId: 'gone' }, { streamSeq: 1, seq: 1, eventId: 'not-dup' }] }), OWNER);
      const dump = await store.dump();
      expect(rowsOf(dump, 'events').map((r) => r.id)).toEqual(['dup']);
      expect(rowsOf(dump, 'event_ids').map((r) => r.value)).toEqual(['k']);
    });

    it('keeps control audit records as audit rows: reason, request, input, who and when, no id', async () => {
      const store = await fresh();
      const s = scene();
      const suppressed = controlAudit(9, { outputId: 'e20:suppressed', reason: 'suppressed', request: REQUEST, seq: 20, eventId: 'e20', kind: 'cookie' });
      const lifted = controlAudit(10, { outputId: `${REQUEST}:unsuppress`, reason: 'unsuppress', request: REQUEST, seq: 21, by: 'cli:ana', at: '2021-06-06T00:00:00.000Z', kind: 'cookie', lifted: true });
      expect(s.record.control).toEqual({ forget: { request: REQUEST, streamSeq: 8, seq: 13, through: { XREF_IN: 13, XREF_GROUPS: 6 } } });
      expect(lifted.control).toBeUndefined();
      await store.apply(batchOf({ audit: [s.record.row, suppressed.row, lifted.row] }), OWNER);
      const listed = await store.records('audit', { filter: {}, order: 'asc', limit: 10 });
      expect(listed.map((r) => r.record.reason)).toEqual(['forget', 'suppressed', 'unsuppress']);
      expect(listed[0]?.record).toMatchObject({ request: REQUEST, by: 'cli:ana', seq: 13 });
      expect((await store.records('audit', { filter: { reason: 'suppressed', kind: 'cookie' }, order: 'asc', limit: 10 })).map((r) => r.seq)).toEqual([9]);
      expect(rowsOf(await store.dump(), 'audit').map((r) => [r.stream_seq, r.reason, r.kind, r.value, r.event_seq, r.event_id]).sort()).toEqual([
        [10, 'unsuppress', 'cookie', '', 21, ''],
        [8, 'forget', '', '', 13, ''],
        [9, 'suppressed', 'cookie', '', 20, 'e20'],
      ]);
      expect(await store.counts()).toMatchObject({ audit: 3, links: 0 });
    });
  });
}
