/**
 * Unlinking an identifier, the store's part (docs/read-model.md), run inside `readModelContract`
 * against every adapter: a retraction takes its resolution out of the user's events (a resolution
 * of the same batch too) and keeps what it was; the event shows as it is now (buffering,
 * unmatched, or placed again, with the same user or another); each retraction is applied once; an
 * unlink ends the identifier's link made before it; the counts' inputs hold the retracted
 * resolutions and the retractions; streams reset and forgets take the retractions with them.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ActivityCounter } from '../../src/activity/activity-counter.ts';
import { FeatureRules } from '../../src/activity/event-features.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { UserRef } from '../../src/engine/outputs.ts';
import { resolvedId, retractionId, unmatchedId } from '../../src/engine/records.ts';
import { ActivityCounting } from '../../src/projection/activity-counting.ts';
import type { ReadModelStore, ResolutionRow, RetractionRow, UnlinkRow } from '../../src/projection/read-model.ts';
import { controlAudit } from './forget-contract.ts';
import { auditRow, batchOf, eventRow, resolutionRow, unmatchedRow } from './read-model-contract.ts';

const OWNER = 'projection-a';
const DAY = 86_400_000;
const WRONG: UserRef = { kind: 'db_id', id: 'wrong' };
const RIGHT: UserRef = { kind: 'db_id', id: 'right' };
const ck = { kind: 'cookie', value: 'ck' };
const REQUEST = '0b7e4c2a-5d1f-4e3b-8a9c-6f5e4d3c2b1a';
/** The unlink input. */
const L = 4;
const config = resolveConfig({ activity: { close: { day: 1, week: 1, month: 1 }, buckets: { auth: { linked: true }, anon: { linked: false } } } });
const features = new FeatureRules(config);

/** A retraction of `resolution` by the unlink at L, as rows.ts makes it. */
function retraction(streamSeq: number, resolution: ResolutionRow, eventId: string, seq = L): RetractionRow {
  return { outputId: retractionId(resolution.outputId!, seq), streamSeq, retracted: resolution.outputId!, eventId, user: resolution.user, seq };
}

/** `resolution` placed again after the unlink at L, with `user`, by input `decidedSeq`. */
function placedAgain(resolution: ResolutionRow, eventId: string, user: UserRef, decidedSeq: number): ResolutionRow {
  return { ...resolution, user, decidedSeq, outputId: resolvedId(eventId, user, L) };
}

/**
 * A wrong link and its unlink: e1 (cookie ck) flushed to `wrong` by e2 (wrong's login with ck),
 * e3 (ck, three days later) resolved to wrong through it; the unlink (input 4) takes e1 and e3 back (e2 carries
 * wrong's own id); e1, too old, leaves unmatched; e5, right's login with ck, flushes e3 to right.
 */
function scene() {
  const e1 = eventRow(1, { ids: { cookie: 'ck' }, at: 0 });
  const e2 = eventRow(2, { ids: { cookie: 'ck', db_id: 'wrong' }, at: 1000 });
  // three days on: the first day closes before the unlink
  const e3 = eventRow(3, { ids: { cookie: 'ck' }, at: 3 * DAY });
  const e5 = eventRow(5, { ids: { cookie: 'ck', db_id: 'right' }, at: 3 * DAY + 1000 });
  const r1 = { ...resolutionRow(e1, WRONG, ck), decidedSeq: 2 };
  const r2 = resolutionRow(e2, WRONG, { kind: 'db_id', value: 'wrong' });
  const r3 = resolutionRow(e3, WRONG, ck);
  const wrongLink = auditRow(1, 'link', ck, WRONG, e2);
  const before = batchOf({ events: [e1, e2, e3], resolutions: [r1, r2, r3], audit: [wrongLink] });
  const unlinkAudit = controlAudit(2, { outputId: `${REQUEST}:unlink`, reason: 'unlink', request: REQUEST, seq: L, by: 'cli:test', at: '2021-06-04T00:00:00.000Z', kind: 'cookie', found: true, retracted: 2, block: false });
  const unlink: UnlinkRow = { streamSeq: 2, seq: L, identifier: ck };
  const expired = { ...unmatchedRow(1, e1, 'expired', ck), outputId: unmatchedId(e1.event.id, L) };
  const retractions = [retraction(4, r1, 'e1'), retraction(5, r3, 'e3')];
  const taken = batchOf({ retractions, unmatched: [expired], audit: [unlinkAudit.row], unlinks: [unlink] });
  const right = [placedAgain(r3, 'e3', RIGHT, 5), resolutionRow(e5, RIGHT, { kind: 'db_id', value: 'right' })];
  const after = batchOf({ events: [e5], resolutions: right, audit: [auditRow(3, 'link', ck, RIGHT, e5)] });
  return { e1, e2, e3, e5, r1, r2, r3, before, taken, after, unlinkAudit, unlink, retractions };
}

type Row = Record<string, unknown>;
const rows = async (store: ReadModelStore, table: string) => (await store.dump())[table] as Row[];
const userSeqs = async (store: ReadModelStore, user: UserRef) => (await store.userEvents(user, 10)).events.map((e) => e.seq);
const pageSeqs = async (store: ReadModelStore, user: UserRef) => (await store.events({ filter: { user }, order: 'asc', limit: 10 })).map((e) => e.seq);

export function unlinkContract(fresh: (claimed?: boolean) => Promise<ReadModelStore>): void {
  describe('unlinking an identifier', () => {
    it("takes the retracted resolutions out of the user's events, keeps what they were, and shows each event as it is now", async () => {
      const store = await fresh();
      const s = scene();
      await store.apply(s.before, OWNER);
      expect(await userSeqs(store, WRONG)).toEqual([1, 2, 3]);
      expect(s.unlinkAudit.control).toEqual({ unlink: { request: REQUEST, streamSeq: 2, seq: L, kind: 'cookie', found: true } });
      await store.apply(s.taken, OWNER);
      // wrong keeps its own login only; the events stay, resolved to no one
      expect(await userSeqs(store, WRONG)).toEqual([2]);
      expect(await pageSeqs(store, WRONG)).toEqual([2]);
      expect((await store.userEvents(WRONG, 10)).total).toBe(1);
      for (const id of ['e1', 'e3']) expect(await store.event(id)).toMatchObject({ user: null, via: null });
      expect((await rows(store, 'events')).map((r) => r.seq)).toEqual([1, 2, 3]);
      // who is ck: no longer wrong's; e3 waits in a buffer, e1 left unmatched
      const who = await store.identifier(ck, 10);
      expect(who.link).toBeUndefined();
      expect([who.buffered.count, who.buffered.events.map((e) => e.seq), who.unmatched]).toEqual([1, [3], [{ reason: 'expired', count: 1 }]]);
      expect(await store.userLinks(WRONG)).toEqual([]);
      // what was taken back, and what it had been
      expect(await store.retracted(WRONG)).toEqual([
        { eventSeq: 1, eventId: 'e1', via: ck, unlinkSeq: L, retracted: 'e1:db_id.wrong', outputId: `e1:db_id.wrong:retracted-${L}` },
        { eventSeq: 3, eventId: 'e3', via: ck, unlinkSeq: L, retracted: 'e3:db_id.wrong', outputId: `e3:db_id.wrong:retracted-${L}` },
      ]);
      expect((await rows(store, 'retractions')).map((r) => [r.event_seq, r.decided_seq, r.stream_seq])).toEqual([
        [1, 2, 4],
        [3, 3, 5],
      ]);
      expect(await store.records('audit', { filter: { reason: 'unlink' }, order: 'asc', limit: 10 })).toMatchObject([{ seq: 2, record: { request: REQUEST, retracted: 2 } }]);

      // right's login flushes e3 to right
      await store.apply(s.after, OWNER);
      expect(await userSeqs(store, RIGHT)).toEqual([3, 5]);
      expect(await userSeqs(store, WRONG)).toEqual([2]);
      expect(await store.event('e3')).toMatchObject({ user: RIGHT, via: ck });
      const now = await store.identifier(ck, 10);
      expect([now.link?.user, now.link?.seq, now.buffered.count]).toEqual([RIGHT, 5, 0]);
      expect(await store.retracted(RIGHT)).toEqual([]);
    });

    it('takes back a resolution of its own batch, and the event placed again with the same user is the one standing, in one batch or over two', async () => {
      const s = scene();
      const again = placedAgain(s.r3, 'e3', WRONG, 5);
      const [, r3Back] = s.retractions;
      const one = await fresh();
      await one.apply(batchOf({ ...s.before, retractions: [r3Back!], resolutions: [...s.before.resolutions, again] }), OWNER);
      const two = await fresh();
      await two.apply(s.before, OWNER);
      await two.apply(batchOf({ retractions: [r3Back!], resolutions: [again] }), OWNER);
      for (const store of [one, two]) {
        expect((await rows(store, 'resolutions')).map((r) => [r.event_seq, r.user_id, r.output_id, r.decided_seq])).toEqual([
          [1, 'wrong', 'e1:db_id.wrong', 2],
          [2, 'wrong', 'e2:db_id.wrong', 2],
          [3, 'wrong', `e3:db_id.wrong:after-${L}`, 5],
        ]);
        expect(await userSeqs(store, WRONG)).toEqual([1, 2, 3]);
        expect((await rows(store, 'retractions')).map((r) => [r.output_id, r.event_seq, r.via_value, r.decided_seq])).toEqual([[`e3:db_id.wrong:retracted-${L}`, 3, 'ck', 3]]);
      }
    });

    it('applies each retraction once: read again after its event was placed again, it changes nothing', async () => {
      const store = await fresh();
      const s = scene();
      const again = placedAgain(s.r3, 'e3', WRONG, 5);
      await store.apply(s.before, OWNER);
      await store.apply(batchOf({ retractions: s.retractions }), OWNER);
      await store.apply(batchOf({ resolutions: [again] }), OWNER);
      const dump = await store.dump();
      await store.apply(batchOf({ retractions: s.retractions }), OWNER);
      expect(await store.dump()).toEqual(dump);
      // a retraction of a resolution the read model never held is kept, saying nothing of what it was
      const unknown = { ...retraction(9, { ...s.r1, outputId: 'e9:db_id.wrong' }, 'e9') };
      await store.apply(batchOf({ retractions: [unknown] }), OWNER);
      expect((await store.retracted(WRONG)).find((r) => r.eventId === 'e9')).toEqual({ eventSeq: null, eventId: 'e9', via: null, unlinkSeq: L, retracted: 'e9:db_id.wrong', outputId: `e9:db_id.wrong:retracted-${L}` });
      expect((await rows(store, 'resolutions')).map((r) => r.output_id)).toEqual(['e2:db_id.wrong', `e3:db_id.wrong:after-${L}`]);
    });

    it("ends the link the stream set before the unlink's record, in its batch or stored; a link record after it sets it again", async () => {
      const s = scene();
      const rightLink = s.after.audit[0]!;
      const same = await fresh();
      await same.apply(batchOf({ audit: [...s.before.audit, s.unlinkAudit.row], unlinks: [s.unlink] }), OWNER);
      expect((await same.identifier(ck, 10)).link).toBeUndefined();
      expect(await same.linkedValues('cookie')).toEqual([]);
      // a link after the unlink in the same batch: it stands
      const after = await fresh();
      await after.apply(batchOf({ audit: [...s.before.audit, s.unlinkAudit.row, rightLink], unlinks: [s.unlink] }), OWNER);
      expect((await after.identifier(ck, 10)).link).toMatchObject({ user: RIGHT, seq: 5 });

      const stored = await fresh();
      await stored.apply(batchOf({ audit: s.before.audit }), OWNER);
      expect(await stored.linkedValues('cookie')).toEqual(['ck']);
      expect(await stored.linkedValues('email')).toEqual([]);
      await stored.apply(batchOf({ audit: [s.unlinkAudit.row], unlinks: [s.unlink] }), OWNER);
      expect(await stored.userLinks(WRONG)).toEqual([]);
      await stored.apply(batchOf({ audit: [rightLink] }), OWNER);
      expect((await stored.identifier(ck, 10)).link).toMatchObject({ user: RIGHT, seq: 5 });
    });

    it('gives the counts the retracted resolutions, decided by their inputs, and the retractions at the unlink with their events; counted, they restate the closed days', async () => {
      const store = await fresh();
      const s = scene();
      for (const batch of [s.before, s.taken, s.after]) await store.apply(batch, OWNER);
      const inputs = await store.activity.inputs(0, 5, 100, features);
      expect(inputs.resolutions.map((r) => [r.decidedSeq, r.eventSeq, r.user.id])).toEqual([
        [2, 1, 'wrong'],
        [2, 2, 'wrong'],
        [3, 3, 'wrong'],
        [5, 3, 'right'],
        [5, 5, 'right'],
      ]);
      expect(inputs.retractions.map((t) => [t.seq, t.eventSeq, t.user.id, t.features.keys, t.timeMs])).toEqual([
        [L, 1, 'wrong', ['cookie:ck'], s.e1.timeMs],
        [L, 3, 'wrong', ['cookie:ck'], s.e3.timeMs],
      ]);
      expect((await store.activity.inputs(3, 5, 1, features)).retractions).toEqual(inputs.retractions);
      expect((await store.activity.inputs(4, 5, 100, features)).retractions).toEqual([]);

      // counted from the store as the counter would be fed them
      const counting = await ActivityCounting.open({ store, config, owner: OWNER, logger: pino({ level: 'silent' }), chunk: 2 });
      await counting.advance(5, () => {}, () => false);
      await counting.settle();
      const counter = new ActivityCounter(config);
      const feed = (seq: number, row?: { event: typeof s.e1.event; timeMs: number }) => row !== undefined && counter.input(seq, row.event, row.timeMs);
      feed(1, s.e1);
      counter.endOfInput(1);
      feed(2, s.e2);
      counter.resolved(2, 1, WRONG);
      counter.resolved(2, 2, WRONG);
      counter.endOfInput(2);
      feed(3, s.e3);
      counter.resolved(3, 3, WRONG);
      counter.endOfInput(3);
      counter.retracted(L, 1, WRONG, s.e1.event, s.e1.timeMs);
      counter.retracted(L, 3, WRONG, s.e3.event, s.e3.timeMs);
      counter.endOfInput(L);
      feed(5, s.e5);
      counter.resolved(5, 3, RIGHT);
      counter.resolved(5, 5, RIGHT);
      counter.endOfInput(5);
      const loaded = await store.activity.load();
      expect(loaded.state).toEqual(counter.state());
      // the first day, closed with wrong alone, is restated: wrong's login and e1, taken back, as an anonymous person; e3's day is right's now
      const days = counter.series({ period: 'day', buckets: ['all', 'auth', 'anon'] }).series;
      expect([days[0], days.at(-1)]).toEqual([
        { start: '2021-06-01', counts: { all: 1, auth: 1, anon: 0 }, restated: { all: 2, auth: 1, anon: 1 }, unattributed: 0 },
        { start: '2021-06-04', counts: { all: 1, auth: 1, anon: 0 }, unattributed: 0 },
      ]);
    });

    it('goes with the groups stream, and a forget of the user takes what was taken back from it', async () => {
      const s = scene();
      const reset = await fresh();
      for (const batch of [s.before, s.taken]) await reset.apply(batch, OWNER);
      await reset.resetStreams(['groups'], OWNER);
      expect(await rows(reset, 'retractions')).toEqual([]);

      // a user whose every resolution was taken back is still one a forget finds
      const store = await fresh();
      const gone: UserRef = { kind: 'db_id', id: 'gone' };
      const r9 = resolutionRow(eventRow(9, { ids: { cookie: 'c9' } }), gone);
      await store.apply(batchOf({ events: [eventRow(9, { ids: { cookie: 'c9' } })], resolutions: [r9] }), OWNER);
      await store.apply(batchOf({ retractions: [retraction(2, r9, 'e9')] }), OWNER);
      expect(await store.userIds('db_id')).toEqual(['gone']);
      await store.apply(batchOf({ forgets: [{ request: REQUEST, streamSeq: 1, user: gone, identifiers: [{ kind: 'db_id', value: 'gone' }], at: '2021-06-05T00:00:00.000Z' }] }), OWNER);
      expect(await store.retracted(gone)).toEqual([]);
      expect(await store.erasure(REQUEST)).toMatchObject({ deleted: { retractions: 1 }, remaining: 0 });
    });
  });
}
