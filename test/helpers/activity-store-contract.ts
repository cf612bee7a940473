/**
 * The active-people counts' part of the read model contract (ActivityStore), run inside
 * `readModelContract` against every adapter: a counter's changes written at any point load back
 * as its state, with its position; the inputs it is fed come in log order with the resolutions
 * they decided; answers read the counts of a range; writes are fenced by the claim; and the counts
 * go with the events or resolutions they were made from.
 */
import { describe, expect, it } from 'vitest';
import { ActivityCounter } from '../../src/activity/activity-counter.ts';
import { FeatureRules } from '../../src/activity/event-features.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { ActivityFeed } from '../../src/projection/activity-feed.ts';
import type { EventRow, ProjectionBatch, ReadModelStore } from '../../src/projection/read-model.ts';
import { T0, batchOf, eventRow, resolutionRow } from './read-model-contract.ts';

const OWNER = 'projection-a';
/** The mark of a database where nothing was counted. */
const NOTHING = { generation: 0, seq: 0 };
const DAY = 86_400_000;
const config = resolveConfig({
  activity: {
    timeZone: 'Europe/Paris',
    extraTimeZones: ['UTC'],
    buckets: { auth: { linked: true }, site1: { field: 'data.site', equals: 'site1' }, site2: { field: 'data.site', equals: 'site2' } },
    aggregates: { total: ['site1', 'site2'] },
  },
});

const features = new FeatureRules(config);

/** A small log as the counter takes it: [event ids, day, site, resolutions decided: [event seq, user]]. */
const LOG: Array<[Record<string, string>, number, string, Array<[number, string]>]> = [
  [{ cookie: 'c1' }, 0, 'site1', []],
  [{ cookie: 'c2', device: 'd1' }, 0, 'site2', []],
  [{ cookie: 'c1', db_id: "o'brien é" }, 1, 'site1', [[1, "o'brien é"], [3, "o'brien é"]]],
  [{ device: 'd1' }, 2, 'site2', []],
  [{ cookie: 'undefined' }, 3, 'site1', []],
  [{ device: 'd1', db_id: 'u2' }, 9, 'site2', [[2, 'u2'], [4, 'u2'], [6, 'u2']]],
  [{ cookie: 'c3' }, 9, 'site1', []],
];

function event(seq: number): XrefEvent {
  const [ids, day, site] = LOG[seq - 1]!;
  return { id: `e${seq}`, ids, timestamp: new Date(T0 + day * DAY).toISOString(), data: { site } };
}

function feed(counter: ActivityCounter, seq: number): void {
  const [, day, , decided] = LOG[seq - 1]!;
  counter.input(seq, event(seq), T0 + day * DAY);
  for (const [eventSeq, id] of decided) counter.resolved(seq, eventSeq, { kind: 'db_id', id });
  counter.endOfInput(seq);
}

export function activityStoreContract(fresh: (claimed?: boolean) => Promise<ReadModelStore>): void {
  describe('active-people counts', () => {
    it('loads back what was written: the counter\'s state and position, after any input', async () => {
      const store = await fresh();
      expect(await store.activity.load()).toEqual({ mark: { generation: 0, seq: 0 } });
      expect(await store.activity.scalars()).toBeUndefined();
      const counter = new ActivityCounter(config);
      let from = { generation: 0, seq: 0 };
      for (let seq = 1; seq <= LOG.length; seq++) {
        feed(counter, seq);
        if (seq % 3 === 0 || seq === LOG.length) {
          expect(await store.activity.write(counter.takeChanges(), from, seq, OWNER)).toBe(true);
          from = { generation: 0, seq };
          const loaded = await store.activity.load();
          expect(loaded.mark).toEqual(from);
          expect(loaded.state).toEqual(counter.state());
        }
      }
      // a counter restored from it answers as the one that counted
      const restored = ActivityCounter.restore(config, (await store.activity.load()).state!);
      expect(restored.series({ period: 'day', buckets: ['all', 'auth', 'total'] })).toEqual(counter.series({ period: 'day', buckets: ['all', 'auth', 'total'] }));
      expect((await store.activity.scalars())?.scalars).toEqual(counter.scalars());
    });

    it('reads the counts of a range of one zone and period kind, frozen ones beside', async () => {
      const store = await fresh();
      const counter = new ActivityCounter(config);
      for (let seq = 1; seq <= LOG.length; seq++) feed(counter, seq);
      await store.activity.write(counter.takeChanges(), NOTHING, LOG.length, OWNER);
      const answer = counter.series({ period: 'day', buckets: ['all'], tz: 'UTC' });
      const first = Math.floor(T0 / DAY);
      const counts = await store.activity.counts({ zone: 'UTC', period: 'day', from: first, to: first + 10 });
      expect([...counts.keys()]).toEqual([first, first + 1, first + 2, first + 3, first + 9]);
      expect(counts.get(first)?.frozen).toEqual(expect.any(Array));
      expect(counts.get(first + 9)?.frozen).toBeUndefined();
      expect(counts.get(first)?.frozen?.[0]).toBe(answer.series[0]!.counts.all);
      expect(counts.get(first)?.current?.[0]).toBe(answer.series[0]!.restated?.all ?? answer.series[0]!.counts.all);
      expect(await store.activity.counts({ zone: 'Europe/Paris', period: 'month', from: 0, to: 1 })).toEqual(new Map());
    });

    it('gives the inputs after a position in log order, and the resolutions they decided, cut by the limit', async () => {
      const store = await fresh();
      const rows = [1, 2, 3, 5, 6].map((seq) => eventRow(seq, { ids: { cookie: `c${seq}` }, at: seq }));
      const [e1, e2, e3, , e6] = rows.map((row) => row);
      const user = { kind: 'db_id', id: 'u1' };
      const resolutions = [
        { ...resolutionRow(e1!, user), decidedSeq: 3 },
        { ...resolutionRow(e3!, user), decidedSeq: 3 },
        { ...resolutionRow(e2!, { kind: 'db_id', id: 'u2' }), decidedSeq: 6 },
        resolutionRow(e6!, user),
      ];
      await store.apply(batchOf({ events: rows, resolutions }), OWNER);
      const all = await store.activity.inputs(0, 6, 100, features);
      expect(all.through).toBe(6);
      expect(all.events.map((e) => [e.seq, e.features, e.timeMs])).toEqual([1, 2, 3, 5, 6].map((seq) => [seq, { keys: [`cookie:c${seq}`], matched: [0] }, T0 + seq]));
      expect(all.resolutions).toEqual([
        { decidedSeq: 3, eventSeq: 1, user },
        { decidedSeq: 3, eventSeq: 3, user },
        { decidedSeq: 6, eventSeq: 2, user: { kind: 'db_id', id: 'u2' } },
        { decidedSeq: 6, eventSeq: 6, user },
      ]);
      const cut = await store.activity.inputs(1, 6, 2, features);
      expect([cut.through, cut.events.map((e) => e.seq), cut.resolutions.map((r) => r.eventSeq)]).toEqual([3, [2, 3], [1, 3]]);
      const rest = await store.activity.inputs(3, 6, 2, features);
      expect([rest.through, rest.events.map((e) => e.seq), rest.resolutions.map((r) => r.eventSeq)]).toEqual([6, [5, 6], [2, 6]]);
      expect((await store.activity.inputs(6, 6, 2, features)).events).toEqual([]);
    });

    it('gives what the counter reads of each event from its body, under the config it is asked with', async () => {
      const store = await fresh();
      const of = (seq: number, site: string) => eventRow(seq, { ids: { cookie: `c${seq}` }, at: seq, data: { site } });
      await store.apply(batchOf({ events: [of(1, 'site1'), of(2, 'site2')] }), OWNER);
      expect((await store.activity.inputs(0, 2, 100, features)).events.map((e) => e.features)).toEqual([
        { keys: ['cookie:c1'], matched: [0, 1] },
        { keys: ['cookie:c2'], matched: [0, 2] },
      ]);
      const other = new FeatureRules(resolveConfig({ activity: { buckets: { site1: { field: 'data.site', equals: 'site1' } } } }));
      expect((await store.activity.inputs(0, 2, 100, other)).events.map((e) => e.features.matched)).toEqual([[0], []]);
    });

    it('tells the last input whose rows the counting reads: an event, or an input that decided a resolution', async () => {
      const store = await fresh();
      expect(await store.activity.lastInput()).toBe(0);
      const [e1, e2] = [eventRow(1), eventRow(2)];
      await store.apply(batchOf({ events: [e1, e2], resolutions: [{ ...resolutionRow(e1, { kind: 'db_id', id: 'u1' }), decidedSeq: 7 }] }), OWNER);
      expect(await store.activity.lastInput()).toBe(7);
      await store.apply(batchOf({ events: [eventRow(9)] }), OWNER);
      expect(await store.activity.lastInput()).toBe(9);
    });

    it('hands the counting in memory what it would read back of the batches written (activity-feed.ts), and nothing it does not hold', async () => {
      const store = await fresh();
      // an event as the projection makes its row when it counts: its features beside it
      const counted = (row: EventRow & { event: XrefEvent }): EventRow => ({ ...row, counted: features.of(row.event) });
      const rows = Array.from({ length: 12 }, (_, i) => counted(eventRow(i + 1, { ids: { cookie: `c${(i % 4) + 1}` }, at: i * 3_600_000, data: { site: i % 2 === 0 ? 'site1' : 'site2' } })));
      const row = (seq: number) => rows[seq - 1]!;
      const placed = (seq: number, id: string, decidedSeq = seq) => ({ ...resolutionRow(row(seq), { kind: 'db_id', id }), decidedSeq });
      // written before the projection started: read from the database
      await store.apply(batchOf({ events: [row(1), row(2), row(3)], resolutions: [placed(1, 'u1', 3), placed(2, 'u1', 3)] }), OWNER);
      const feed = new ActivityFeed(await store.activity.lastInput());
      const write = async (batch: ProjectionBatch) => feed.written(batch, await store.apply(batch, OWNER));
      // one event placed with two users by one input, in the database's order of their ids (bytewise: '～' before '😀'); a resolution decided later than the batch's events
      await write(batchOf({ events: [row(4), row(5), row(6)], resolutions: [placed(4, '😀'), placed(4, '～'), placed(5, 'u2', 8)] }));
      await write(batchOf({ events: [row(7), row(8)], resolutions: [placed(7, 'u1'), placed(6, 'u2', 8)] }));
      const same = async (after: number, to: number, limit: number) => expect(feed.inputs(after, to, limit)).toEqual(await store.activity.inputs(after, to, limit, features));
      expect(feed.inputs(2, 8, 100)).toBeUndefined();
      await same(3, 5, 100);
      // handed out already (counted again once a write of the counts was refused): read from the database
      expect(feed.inputs(3, 5, 100)).toBeUndefined();
      await same(5, 8, 1);
      await same(6, 8, 100);
      // an event not stored (its id there already): what was written so far is read from the database
      await write(batchOf({ events: [row(9), { ...row(10), id: 'e4' }] }));
      expect(feed.inputs(8, 10, 100)).toBeUndefined();
      expect((await store.activity.inputs(8, 10, 100, features)).events.map((e) => e.seq)).toEqual([9]);
      await write(batchOf({ events: [row(11), row(12)], resolutions: [placed(11, 'u3', 12)] }));
      await same(10, 12, 100);
    });

    it('fences write and reset: XREF_FENCED and nothing written unless the owner holds the claim', async () => {
      const store = await fresh();
      const counter = new ActivityCounter(config);
      feed(counter, 1);
      await store.activity.write(counter.takeChanges(), NOTHING, 1, OWNER);
      const before = await store.dump();
      feed(counter, 2);
      const changes = counter.takeChanges();
      await expect(store.activity.write(changes, { generation: 0, seq: 1 }, 2, 'someone-else')).rejects.toMatchObject({ code: 'XREF_FENCED' });
      await expect(store.activity.reset('someone-else')).rejects.toMatchObject({ code: 'XREF_FENCED' });
      expect(await store.dump()).toEqual(before);
      // changes from a mark that is not the stored one (the counts deleted or moved meanwhile): refused
      expect(await store.activity.write(changes, NOTHING, 2, OWNER)).toBe(false);
      expect(await store.activity.write(changes, { generation: 1, seq: 1 }, 2, OWNER)).toBe(false);
      expect(await store.dump()).toEqual(before);
      await store.activity.reset(OWNER);
      // deleted: nothing counted, one generation on, so a write counted before it is refused
      expect(await store.activity.load()).toEqual({ mark: { generation: 1, seq: 0 } });
      expect(await store.activity.write(changes, { generation: 0, seq: 1 }, 2, OWNER)).toBe(false);
      expect(await store.activity.write(changes, NOTHING, 2, OWNER)).toBe(false);
      expect(await store.activity.write(changes, { generation: 1, seq: 0 }, 2, OWNER)).toBe(true);
    });

    for (const stream of ['in', 'groups'] as const) {
      it(`goes with the ${stream === 'in' ? 'events' : 'resolutions'} it was counted from: resetStreams of ${stream} deletes it`, async () => {
        const store = await fresh();
        const counter = new ActivityCounter(config);
        for (let seq = 1; seq <= LOG.length; seq++) feed(counter, seq);
        await store.activity.write(counter.takeChanges(), NOTHING, LOG.length, OWNER);
        await store.resetStreams(['unmatched', 'audit', 'errors'], OWNER);
        expect((await store.activity.load()).mark).toEqual({ generation: 0, seq: LOG.length });
        await store.resetStreams([stream], OWNER);
        expect(await store.activity.load()).toEqual({ mark: { generation: 1, seq: 0 } });
        const dump = await store.dump();
        for (const table of ['activity_people', 'activity_counts', 'activity_anon', 'activity_pending']) expect(dump[table]).toEqual([]);
        expect(dump.activity_state).toEqual([{ seq: 0, columns: null, zones: null, scalars: null }]);
      });
    }
  });
}
