import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CounterImage } from '../../src/activity/counter-image.ts';
import { ActivityCounter } from '../../src/activity/activity-counter.ts';
import { activityOfLog, OfflineActivity } from '../../src/activity/offline-activity.ts';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { UserRef } from '../../src/engine/outputs.ts';
import { groupEvents } from '../../src/group.ts';

const BUCKETS = {
  buckets: {
    auth: { linked: true },
    anon: { linked: false },
    site1: { field: 'data.site', equals: 'site1' },
    site2: { field: 'data.site', equals: 'site2' },
  },
  aggregates: { total: ['site1', 'site2'] },
};

let n = 0;
/** An event: `at` an ISO time, `ids` its identifiers, `site` its data.site. */
const ev = (at: string | undefined, ids: Record<string, string>, site?: string, id = `e${++n}`) => ({ id, ids, ...(at ? { timestamp: at } : {}), ...(site ? { data: { site } } : {}) });

function counts(events: unknown[], period: 'day' | 'week' | 'month', buckets: string[], config: ConfigInput = { activity: BUCKETS }) {
  return activityOfLog(events, config).counter.series({ period, buckets }).series;
}

describe('activity offline (the engine feeding the counter)', () => {
  it("counts activity-tracker's union example: site1 {user1, jdoe} and site2 {jdoe, user2} give 2, 2 and total 3", () => {
    const log = [ev('2024-05-06T09:00:00Z', { db_id: 'user1' }, 'site1'), ev('2024-05-06T09:10:00Z', { db_id: 'jdoe' }, 'site1'), ev('2024-05-06T09:20:00Z', { db_id: 'jdoe' }, 'site2'), ev('2024-05-06T09:30:00Z', { db_id: 'user2' }, 'site2')];
    expect(counts(log, 'day', ['site1', 'site2', 'total'])).toEqual([{ start: '2024-05-06', counts: { site1: 2, site2: 2, total: 3 }, unattributed: 0 }]);
  });

  it('counts the same id twice in a day once', () => {
    const log = [ev('2024-05-06T09:00:00Z', { db_id: 'u1' }), ev('2024-05-06T21:00:00Z', { db_id: 'u1' }), ev('2024-05-06T21:00:00Z', { cookie: 'c1' }), ev('2024-05-06T22:00:00Z', { cookie: 'c1' })];
    expect(counts(log, 'day', ['all', 'auth', 'anon'])[0]!.counts).toEqual({ all: 2, auth: 1, anon: 1 });
  });

  it('counts an anonymous page view at 10:00 and a login at 11:00 the same day as 1 person, the user', () => {
    const log = [ev('2024-05-06T10:00:00Z', { cookie: 'nice_page_visitor' }, 'site1'), ev('2024-05-06T11:00:00Z', { cookie: 'nice_page_visitor', db_id: '123' }, 'site2')];
    expect(counts(log, 'day', ['all', 'auth', 'anon', 'total'])[0]!.counts).toEqual({ all: 1, auth: 1, anon: 0, total: 1 });
  });

  it('counts an anonymous visitor on Monday who logs in on Tuesday as one person in the week', () => {
    const log = [ev('2024-05-06T10:00:00Z', { cookie: 'c1' }, 'site1'), ev('2024-05-07T10:00:00Z', { cookie: 'c1', db_id: 'u1' }, 'site1')];
    expect(counts(log, 'week', ['all', 'auth', 'anon'])).toEqual([{ start: '2024-05-06', counts: { all: 1, auth: 1, anon: 0 }, unattributed: 0 }]);
    expect(counts(log, 'day', ['auth'])).toEqual([
      { start: '2024-05-06', counts: { auth: 1 }, unattributed: 0 },
      { start: '2024-05-07', counts: { auth: 1 }, unattributed: 0 },
    ]);
  });

  it('keeps the frozen count of a closed day when a login arrives after it closed, and says what is known now in restated', () => {
    const log = [
      ev('2024-05-06T09:00:00Z', { db_id: 'u1' }, 'site1'), // the phone app, logged in
      ev('2024-05-06T20:00:00Z', { cookie: 'laptop' }, 'site1'), // the laptop, not yet
      ev('2024-05-09T08:00:00Z', { db_id: 'u2' }, 'site2'), // 9 May: 6 May is closed (close.day 2)
      ev('2024-05-10T08:00:00Z', { cookie: 'laptop', db_id: 'u1' }, 'site2'), // the laptop's login
    ];
    const { counter } = activityOfLog(log, { activity: BUCKETS });
    expect(counter.series({ period: 'day', buckets: ['site1', 'anon'], to: '2024-05-07' }).series).toEqual([
      { start: '2024-05-06', counts: { site1: 2, anon: 1 }, restated: { site1: 1, anon: 0 }, unattributed: 0 },
    ]);
    // the same log cut before the login: the frozen counts are the ones reported then
    const before = activityOfLog(log.slice(0, 3), { activity: BUCKETS }).counter;
    expect(before.series({ period: 'day', buckets: ['site1', 'anon'], to: '2024-05-07' }).series).toEqual([{ start: '2024-05-06', counts: { site1: 2, anon: 1 }, unattributed: 0 }]);
  });

  it('counts each user of a shared browser under relink latest for the days their events belong to them', () => {
    const log = [
      ev('2024-05-06T09:00:00Z', { cookie: 'shared', db_id: 'alice' }),
      ev('2024-05-06T10:00:00Z', { cookie: 'shared' }),
      ev('2024-05-07T08:00:00Z', { cookie: 'shared' }), // still alice's: bob has not logged in yet
      ev('2024-05-07T12:00:00Z', { cookie: 'shared', db_id: 'bob' }), // the newest link wins from here on
      ev('2024-05-07T13:00:00Z', { cookie: 'shared' }),
      ev('2024-05-08T09:00:00Z', { cookie: 'shared' }),
    ];
    const perDay = (config: ConfigInput) => {
      const { counter } = activityOfLog(log, { ...config, activity: BUCKETS });
      return counter.series({ period: 'day', buckets: ['auth'] }).series.map((p) => [p.start, p.counts.auth]);
    };
    expect(perDay({})).toEqual([
      ['2024-05-06', 1],
      ['2024-05-07', 2],
      ['2024-05-08', 1],
    ]);
    const rows = [...activityOfLog(log, { activity: BUCKETS }).counter.rows()].filter((row) => row.period === 'day').map((row) => [row.start, row.person, row.events]);
    expect(rows).toEqual([
      ['2024-05-06', 'user:db_id:alice', 2],
      ['2024-05-07', 'user:db_id:alice', 1],
      ['2024-05-07', 'user:db_id:bob', 2],
      ['2024-05-08', 'user:db_id:bob', 1],
    ]);
    // relink first: the browser stays alice's, bob is counted for his own login only
    const first = activityOfLog(log, { relink: { cookie: 'first' }, activity: BUCKETS }).counter;
    expect([...first.rows()].filter((row) => row.period === 'day').map((row) => [row.start, row.person, row.events])).toEqual([
      ['2024-05-06', 'user:db_id:alice', 2],
      ['2024-05-07', 'user:db_id:alice', 2],
      ['2024-05-07', 'user:db_id:bob', 1],
      ['2024-05-08', 'user:db_id:alice', 1],
    ]);
  });

  it('reports junk-only events as unattributed, untimed ones in the summary, and skips rejected lines and duplicates', () => {
    const run = new OfflineActivity({ activity: BUCKETS });
    run.add(ev('2024-05-06T10:00:00Z', { cookie: 'undefined' }));
    run.add(ev('2024-05-06T10:00:00Z', { anonymous_id: 'null', device: 'guest' }));
    run.add(ev(undefined, { db_id: 'u1' }));
    run.add({ id: 'bad' });
    run.add(ev('2024-05-06T11:00:00Z', { db_id: 'u1' }, undefined, 'same'));
    run.add(ev('2024-05-06T12:00:00Z', { db_id: 'u2' }, undefined, 'same'));
    expect(run.counter.series({ period: 'day', buckets: ['all'] }).series).toEqual([{ start: '2024-05-06', counts: { all: 1 }, unattributed: 2 }]);
    expect(run.summary).toEqual({ events: 4, rejected: 1, duplicates: 1, untimed: 1, unattributed: 2, anonymous: 0 });
    expect(run.rejected.map((r) => [r.index, r.error.message])).toEqual([[3, 'ids is required and must be an object of kind → value, got undefined']]);
  });

  it('counts the daylight-saving days of Europe/Paris as 23 and 25 hours', () => {
    const paris = { activity: { ...BUCKETS, timeZone: 'Europe/Paris' } };
    const log = [
      ev('2024-03-30T22:59:00Z', { db_id: 'a' }), // 23:59 on 30 March
      ev('2024-03-30T23:00:00Z', { db_id: 'b' }), // 00:00 on 31 March (UTC+1)
      ev('2024-03-31T21:59:00Z', { db_id: 'c' }), // 23:59 on 31 March (UTC+2): the day had 23 hours
      ev('2024-03-31T22:00:00Z', { db_id: 'd' }), // 00:00 on 1 April
      ev('2024-10-26T22:00:00Z', { db_id: 'e' }), // 00:00 on 27 October (UTC+2)
      ev('2024-10-27T22:59:00Z', { db_id: 'f' }), // 23:59 on 27 October (UTC+1): the day had 25 hours
      ev('2024-10-27T23:00:00Z', { db_id: 'g' }), // 00:00 on 28 October
    ];
    const { counter } = activityOfLog(log, paris);
    const days = (from: string, to: string) => counter.series({ period: 'day', from, to }).series.map((p) => [p.start, p.counts.all]);
    expect(days('2024-03-30', '2024-04-02')).toEqual([
      ['2024-03-30', 1],
      ['2024-03-31', 2],
      ['2024-04-01', 1],
    ]);
    expect(days('2024-10-27', '2024-10-29')).toEqual([
      ['2024-10-27', 2],
      ['2024-10-28', 1],
    ]);
    expect(counter.series({ period: 'month', from: '2024-03-01', to: '2024-05-01' }).series.map((p) => [p.start, p.counts.all])).toEqual([
      ['2024-03-01', 3],
      ['2024-04-01', 1],
    ]);
    // the same log in UTC: other days
    expect(activityOfLog(log, { activity: BUCKETS }).counter.series({ period: 'day', from: '2024-03-30', to: '2024-04-01' }).series.map((p) => p.counts.all)).toEqual([2, 2]);
  });

  it('counts users exactly as groupEvents groups their events, anonymous people as a from-scratch reference does, and the same however the log is split (property)', () => {
    const users = ['u1', 'u2', 'u3'];
    const cookies = ['c1', 'c2', 'c3', 'c4'];
    const event = fc.record({
      day: fc.integer({ min: 0, max: 20 }),
      hour: fc.integer({ min: 0, max: 23 }),
      user: fc.option(fc.constantFrom(...users), { freq: 3 }),
      cookie: fc.option(fc.constantFrom(...cookies), { freq: 4 }),
      device: fc.option(fc.constantFrom('d1', 'd2', 'undefined'), { freq: 2 }),
      site: fc.constantFrom('site1', 'site2'),
    });
    const config = fc.record({ relink: fc.constantFrom('latest', 'first'), buffer: fc.constantFrom(2, 1000) });
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 40 }), config, fc.nat(), (specs, settings, cut) => {
        // roughly in time order, with some late events
        const log = specs.map((s, i) => {
          const ids: Record<string, string> = {};
          if (s.user !== null) ids.db_id = s.user;
          if (s.cookie !== null) ids.cookie = s.cookie;
          if (s.device !== null) ids.device = s.device;
          if (Object.keys(ids).length === 0) ids.cookie = 'c1';
          const at = new Date(Date.UTC(2024, 0, 1 + Math.max(0, Math.floor(i / 2) - (s.day % 3)), s.hour)).toISOString();
          return { id: `e${i}`, timestamp: at, ids, data: { site: s.site } };
        });
        const input: ConfigInput = { relink: { cookie: settings.relink, device: settings.relink }, buffer: { maxEvents: settings.buffer }, activity: BUCKETS };
        const { counter } = activityOfLog(log, input);
        // every user's days, as groupEvents groups the events
        const expected = new Map<string, Set<string>>();
        for (const [id, byKind] of Object.entries(groupEvents(log, input).groups.db_id ?? {})) {
          for (const values of Object.values(byKind)) {
            for (const events of Object.values(values)) for (const e of events) {
              const day = e.timestamp!.slice(0, 10);
              if (!expected.has(day)) expected.set(day, new Set());
              expected.get(day)!.add(id);
            }
          }
        }
        for (const point of counter.series({ period: 'day', buckets: ['auth', 'all'] }).series) {
          const now = point.restated ?? point.counts;
          expect(now.auth).toBe(expected.get(point.start)?.size ?? 0);
          expect(now.all).toBeGreaterThanOrEqual(now.auth!);
        }
        // the counter's calls, recorded
        type Call = ['input', number, XrefEvent, number | undefined] | ['resolved', number, number, UserRef] | ['end', number];
        const calls: Call[] = [];
        const recorded = new OfflineActivity(input);
        const original = recorded.counter;
        const [input0, resolved0, end0] = [original.input.bind(original), original.resolved.bind(original), original.endOfInput.bind(original)];
        original.input = (seq, e, time) => (calls.push(['input', seq, e, time]), input0(seq, e, time));
        original.resolved = (seq, eventSeq, user) => (calls.push(['resolved', seq, eventSeq, user]), resolved0(seq, eventSeq, user));
        original.endOfInput = (seq) => (calls.push(['end', seq]), end0(seq));
        for (const raw of log) recorded.add(raw);
        const apply = (c: ActivityCounter, call: Call) => (call[0] === 'input' ? c.input(call[1], call[2], call[3]) : call[0] === 'resolved' ? c.resolved(call[1], call[2], call[3]) : c.endOfInput(call[1]));

        // a reference computed from scratch at the end: a resolved event is its user's; the others
        // are grouped by the identifiers of the events not resolved in their own input
        const parent = new Map<string, string>();
        const find = (k: string): string => (parent.has(k) ? find(parent.get(k)!) : k);
        const events = new Map<number, XrefEvent>();
        const owner = new Map<number, string>();
        const resolvedOwn = new Set<number>();
        for (const call of calls) {
          if (call[0] === 'input') events.set(call[1], call[2]);
          if (call[0] === 'resolved') {
            owner.set(call[2], `user:${call[3].kind}:${call[3].id}`);
            if (call[1] === call[2]) resolvedOwn.add(call[2]);
          }
        }
        const anonKeys = (e: XrefEvent) => Object.entries(e.ids).filter(([kind, v]) => kind !== 'db_id' && v !== 'undefined').map(([kind, v]) => `${kind}:${v}`);
        for (const [seq, e] of events) {
          if (resolvedOwn.has(seq)) continue;
          const keys = anonKeys(e);
          for (const k of keys.slice(1)) if (find(k) !== find(keys[0]!)) parent.set(find(k), find(keys[0]!));
        }
        const reference = new Map<string, Map<string, Set<string>>>(); // day → bucket → people
        for (const [seq, e] of events) {
          if (Object.values(e.ids).every((v) => v === 'undefined')) continue; // junk only: unattributed
          const person = owner.get(seq) ?? `anon:${find(anonKeys(e)[0] ?? `#${seq}`)}`;
          const day = e.timestamp!.slice(0, 10);
          const buckets = ['all', person.startsWith('user:') ? 'auth' : 'anon', (e.data as { site: string }).site, 'total'];
          if (!reference.has(day)) reference.set(day, new Map());
          for (const b of buckets) {
            if (!reference.get(day)!.has(b)) reference.get(day)!.set(b, new Set());
            reference.get(day)!.get(b)!.add(person);
          }
        }
        for (const point of counter.series({ period: 'day', buckets: ['all', 'auth', 'anon', 'site1', 'site2', 'total'] }).series) {
          const now = point.restated ?? point.counts;
          for (const [b, n] of Object.entries(now)) expect([point.start, b, n]).toEqual([point.start, b, reference.get(point.start)?.get(b)?.size ?? 0]);
        }

        // split anywhere, the state saved and restored, the rest fed after: the same state and answers
        const at = cut % (calls.length + 1);
        const head = new ActivityCounter(resolveConfig(input));
        calls.slice(0, at).forEach((call) => apply(head, call));
        const resumed = ActivityCounter.restore(resolveConfig(input), JSON.parse(JSON.stringify(head.state())));
        calls.slice(at).forEach((call) => apply(resumed, call));
        expect(resumed.state()).toEqual(counter.state());
        for (const period of ['day', 'week', 'month'] as const) {
          expect(resumed.series({ period, buckets: ['all', 'auth', 'anon', 'total'] })).toEqual(counter.series({ period, buckets: ['all', 'auth', 'anon', 'total'] }));
        }

        // its changes, taken every few calls and written over a stored image (as the read model
        // stores them), give its state at each of those points
        const changing = new ActivityCounter(resolveConfig(input));
        const image = new CounterImage();
        calls.forEach((call, i) => {
          apply(changing, call);
          if ((i + cut) % 4 === 0 || i === at - 1) {
            image.apply(changing.takeChanges());
            expect(image.state()).toEqual(changing.state());
          }
        });
        image.apply(changing.takeChanges());
        expect(image.state()).toEqual(counter.state());
      }),
      { numRuns: 150 },
    );
  });
});
