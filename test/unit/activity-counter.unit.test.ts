import { describe, expect, it } from 'vitest';
import { resolveActivityConfig } from '../../src/activity/activity-config.ts';
import { ActivityCounter, type CounterState } from '../../src/activity/activity-counter.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { isXrefError } from '../../src/domain/errors.ts';

const SITES = {
  buckets: {
    auth: { linked: true },
    anon: { linked: false },
    site1: { field: 'data.site', equals: 'site1' },
    site2: { field: 'data.site', equals: 'site2' },
    signups: { name: 'registration' },
  },
  aggregates: { total: ['site1', 'site2'] },
};

function newCounter(activity: object = SITES, config: object = {}) {
  return new ActivityCounter(resolveConfig({ ...config, activity }));
}

interface Input {
  ids: Record<string, string>;
  at?: string;
  site?: string;
  name?: string;
  /** Resolutions the engine decided while applying this input: [event seq, db_id]. */
  resolves?: [number, string][];
}

/** Feeds inputs 1, 2, … in order, as the streaming side will. */
function feed(counter: ActivityCounter, inputs: Input[], first = 1) {
  inputs.forEach((input, i) => {
    const seq = first + i;
    const event: XrefEvent = { id: `e${seq}`, ids: input.ids, ...(input.name ? { name: input.name } : {}), ...(input.site ? { data: { site: input.site } } : {}) };
    counter.input(seq, event, input.at === undefined ? undefined : Date.parse(input.at));
    for (const [eventSeq, user] of input.resolves ?? []) counter.resolved(seq, eventSeq, { kind: 'db_id', id: user });
    counter.endOfInput(seq);
  });
  return counter;
}

const user = (id: string, at: string, site?: string, seq?: number): Input => ({ ids: { db_id: id }, at, site, resolves: seq === undefined ? undefined : [[seq, id]] });

function day(counter: ActivityCounter, buckets: string[], from?: string, to?: string) {
  return counter.series({ period: 'day', buckets, from, to }).series;
}

function thrown(f: () => unknown): Error & { code?: string; field?: string } {
  try {
    f();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('activity counter', () => {
  it("counts activity-tracker's union example: site1 {user1, jdoe} and site2 {jdoe, user2} give 2, 2 and total 3", () => {
    const counter = feed(newCounter(), [user('user1', '2024-01-01T09:00:00Z', 'site1', 1), user('jdoe', '2024-01-01T10:00:00Z', 'site1', 2), user('jdoe', '2024-01-01T11:00:00Z', 'site2', 3), user('user2', '2024-01-01T12:00:00Z', 'site2', 4)]);
    expect(day(counter, ['site1', 'site2', 'total', 'all'])).toEqual([{ start: '2024-01-01', counts: { site1: 2, site2: 2, total: 3, all: 3 }, unattributed: 0 }]);
  });

  it('counts the same id twice in a day once', () => {
    const counter = feed(newCounter(), [user('u1', '2024-01-01T09:00:00Z', 'site1', 1), user('u1', '2024-01-01T18:00:00Z', 'site1', 2)]);
    expect(day(counter, ['all', 'site1'])[0]!.counts).toEqual({ all: 1, site1: 1 });
  });

  it('counts an anonymous person until resolved, then the activity moves to the user and counts once', () => {
    const counter = newCounter();
    feed(counter, [{ ids: { cookie: 'c1' }, at: '2024-01-01T10:00:00Z', site: 'site1' }]);
    expect(day(counter, ['all', 'auth', 'anon'])[0]!.counts).toEqual({ all: 1, auth: 0, anon: 1 });
    // the login at 11:00 flushes the 10:00 page view: both belong to u1
    feed(counter, [{ ids: { cookie: 'c1', db_id: 'u1' }, at: '2024-01-01T11:00:00Z', site: 'site2', resolves: [[1, 'u1'], [2, 'u1']] }], 2);
    expect(day(counter, ['all', 'auth', 'anon', 'site1', 'site2', 'total'])[0]!.counts).toEqual({ all: 1, auth: 1, anon: 0, site1: 1, site2: 1, total: 1 });
    expect([...counter.rows()].filter((row) => row.period === 'day')).toEqual([
      { timeZone: 'UTC', period: 'day', start: '2024-01-01', person: 'user:db_id:u1', linked: true, events: 2, hits: { auth: 2, anon: 2, site1: 1, site2: 1 } },
    ]);
  });

  it('merges anonymous clusters when an unresolved event joins them, in every period, and moves events one by one', () => {
    const counter = feed(newCounter(), [
      { ids: { cookie: 'c1' }, at: '2024-01-01T10:00:00Z', site: 'site1' },
      { ids: { device: 'd1' }, at: '2024-01-02T10:00:00Z', site: 'site2' },
    ]);
    expect(counter.series({ period: 'week', buckets: ['all', 'anon'] }).series[0]!.counts).toEqual({ all: 2, anon: 2 });
    // an event seen with both: one person, in the week and in each day
    feed(counter, [{ ids: { cookie: 'c1', device: 'd1' }, at: '2024-01-02T11:00:00Z', site: 'site2' }], 3);
    expect(counter.series({ period: 'week', buckets: ['all', 'site1', 'site2', 'total'] }).series[0]!.counts).toEqual({ all: 1, site1: 1, site2: 1, total: 1 });
    expect(day(counter, ['all'])).toMatchObject([{ counts: { all: 1 } }, { counts: { all: 1 } }]);
    // only the first event is placed with u1 (e.g. the others expired): u1 and the anonymous rest are two people
    feed(counter, [{ ids: { db_id: 'u1' }, at: '2024-01-02T12:00:00Z', resolves: [[1, 'u1'], [4, 'u1']] }], 4);
    const week = counter.series({ period: 'week', buckets: ['all', 'auth', 'anon', 'site1', 'site2', 'total'] }).series[0]!;
    expect(week.counts).toEqual({ all: 2, auth: 1, anon: 1, site1: 1, site2: 1, total: 2 });
    // the person leaves site1 in the day of 1 January only when none of their events there match: the anonymous one has none left
    expect(day(counter, ['anon', 'auth', 'site1'])).toMatchObject([{ counts: { anon: 0, auth: 1, site1: 1 } }, { counts: { anon: 1, auth: 1, site1: 0 } }]);
  });

  it('does not merge clusters through an event that was resolved in its own input', () => {
    const counter = feed(newCounter(), [
      { ids: { cookie: 'c1' }, at: '2024-01-01T10:00:00Z' },
      { ids: { cookie: 'c2' }, at: '2024-01-01T10:00:00Z' },
      // seen together, but placed with u1 at once (e.g. c1 or c2 already linked): nothing merges
      { ids: { cookie: 'c1', device: 'c2' }, at: '2024-01-01T11:00:00Z', resolves: [[3, 'u1']] },
    ]);
    expect(day(counter, ['all', 'anon', 'auth'])[0]!.counts).toEqual({ all: 3, anon: 2, auth: 1 });
  });

  it('freezes a period when it closes: a later login changes restated, never the frozen count', () => {
    const counter = feed(newCounter(), [
      // u1 on the phone, and anonymously on a laptop, on 1 January
      user('u1', '2024-01-01T09:00:00Z', 'site1', 1),
      { ids: { cookie: 'laptop' }, at: '2024-01-01T10:00:00Z', site: 'site1' },
      // 4 January: the day of 1 January closes (2 days after it ends)
      user('u2', '2024-01-04T00:00:00Z', 'site2', 3),
    ]);
    expect(counter.closedThrough('day')).toBe('2024-01-01');
    expect(day(counter, ['site1', 'all'], '2024-01-01', '2024-01-02')).toEqual([{ start: '2024-01-01', counts: { site1: 2, all: 2 }, unattributed: 0 }]);
    // 5 January: u1 logs in on the laptop; the page view of 1 January was u1's
    feed(counter, [{ ids: { cookie: 'laptop', db_id: 'u1' }, at: '2024-01-05T08:00:00Z', resolves: [[2, 'u1'], [4, 'u1']] }], 4);
    expect(day(counter, ['site1', 'all'], '2024-01-01', '2024-01-06')).toEqual([
      { start: '2024-01-01', counts: { site1: 2, all: 2 }, restated: { site1: 1, all: 1 }, unattributed: 0 },
      { start: '2024-01-02', counts: { site1: 0, all: 0 }, unattributed: 0 },
      { start: '2024-01-03', counts: { site1: 0, all: 0 }, unattributed: 0 },
      { start: '2024-01-04', counts: { site1: 0, all: 1 }, unattributed: 0 },
      { start: '2024-01-05', counts: { site1: 0, all: 1 }, unattributed: 0 },
    ]);
    // the week is still open: it counts what is known now, u1 and u2
    expect(counter.series({ period: 'week', buckets: ['all'] }).series).toEqual([{ start: '2024-01-01', counts: { all: 2 }, unattributed: 0 }]);
  });

  it('a range with only one bound runs from (or to) the activity, never past the bound given', () => {
    expect(day(newCounter(), ['all'], undefined, '2024-04-01')).toEqual([]);
    const counter = feed(newCounter(), [user('u1', '2024-01-03T10:00:00Z', undefined, 1), user('u2', '2024-01-05T10:00:00Z', undefined, 2)]);
    expect(day(counter, ['all'], undefined, '2024-01-05').map((point) => point.start)).toEqual(['2024-01-03', '2024-01-04']);
    expect(day(counter, ['all'], undefined, '2024-01-01')).toEqual([]);
    expect(day(counter, ['all'], '2024-01-04').map((point) => point.start)).toEqual(['2024-01-04', '2024-01-05']);
  });

  it('closes on the watermark (the greatest event time), with close counts per period kind', () => {
    const counter = feed(newCounter({ close: { day: 0, week: 0, month: 0 } }), [user('u1', '2024-01-31T23:00:00Z', undefined, 1), user('u2', '2024-02-01T00:00:00Z', undefined, 2)]);
    expect(counter.closedThrough('day')).toBe('2024-01-31');
    expect(counter.closedThrough('month')).toBe('2024-01-01');
    expect(counter.closedThrough('week')).toBe('2024-01-22');
    // an event older than the watermark moves nothing back: closed stays closed, a late event is restated
    feed(counter, [user('u3', '2024-01-31T10:00:00Z', undefined, 3)], 3);
    expect(counter.closedThrough('day')).toBe('2024-01-31');
    expect(day(counter, ['all'], '2024-01-31', '2024-02-02')).toEqual([
      { start: '2024-01-31', counts: { all: 1 }, restated: { all: 2 }, unattributed: 0 },
      { start: '2024-02-01', counts: { all: 1 }, unattributed: 0 },
    ]);
  });

  it('reports junk-only events as unattributed and untimed events in no period', () => {
    const counter = feed(newCounter(SITES, { junkValues: ['test'] }), [
      { ids: { cookie: 'undefined' }, at: '2024-01-01T10:00:00Z' },
      { ids: { cookie: ' TEST ', device: '0' }, at: '2024-01-01T11:00:00Z' },
      { ids: { cookie: 'c1' } },
      user('u1', '2024-01-01T12:00:00Z', undefined, 4),
    ]);
    expect(day(counter, ['all'])).toEqual([{ start: '2024-01-01', counts: { all: 1 }, unattributed: 2 }]);
    expect(counter.summary).toEqual({ events: 4, untimed: 1, unattributed: 2, anonymous: 0 });
  });

  it('matches buckets by linked, field/equals (one value or a list, dotted paths), exact names and /patterns/, ANDed', () => {
    const counter = feed(
      newCounter({
        buckets: {
          eu: { field: 'data.site', equals: ['fr', 'de'] },
          signups: { name: 'registration' },
          checkout: { name: '/^checkout[.-]/i' },
          authFr: { linked: true, field: 'data.site', equals: 'fr' },
        },
      }),
      [
        { ids: { cookie: 'a' }, at: '2024-01-01T10:00:00Z', site: 'fr', name: 'registration' },
        { ids: { cookie: 'b' }, at: '2024-01-01T10:00:00Z', site: 'us', name: 'Checkout.Start' },
        { ids: { cookie: 'c' }, at: '2024-01-01T10:00:00Z', site: 'de', name: 'checkout' },
        { ids: { db_id: 'u1' }, at: '2024-01-01T10:00:00Z', site: 'fr', resolves: [[4, 'u1']] },
      ],
    );
    expect(day(counter, ['eu', 'signups', 'checkout', 'authFr'])[0]!.counts).toEqual({ eu: 3, signups: 1, checkout: 1, authFr: 1 });
  });

  it('answers every period of the range, with 0s where nothing happened, and only the buckets asked (default all)', () => {
    const counter = feed(newCounter(), [user('u1', '2024-01-01T10:00:00Z', 'site1', 1), user('u1', '2024-01-04T10:00:00Z', 'site1', 2)]);
    expect(counter.series({ period: 'day' })).toEqual({
      period: 'day',
      timeZone: 'UTC',
      series: [
        { start: '2024-01-01', counts: { all: 1 }, unattributed: 0 },
        { start: '2024-01-02', counts: { all: 0 }, unattributed: 0 },
        { start: '2024-01-03', counts: { all: 0 }, unattributed: 0 },
        { start: '2024-01-04', counts: { all: 1 }, unattributed: 0 },
      ],
    });
    expect(counter.series({ period: 'month', from: '2023-11-15', to: '2024-03-01', buckets: ['site1'] }).series.map((p) => [p.start, p.counts.site1])).toEqual([
      ['2023-11-01', 0],
      ['2023-12-01', 0],
      ['2024-01-01', 1],
      ['2024-02-01', 0],
    ]);
    expect(newCounter().series({ period: 'week' }).series).toEqual([]);
  });

  it('counts in the configured zone, and in extra zones a request may ask for', () => {
    const counter = feed(newCounter({ ...SITES, timeZone: 'America/New_York', extraTimeZones: ['UTC'] }), [user('u1', '2024-03-01T03:00:00Z', undefined, 1), user('u2', '2024-03-01T06:00:00Z', undefined, 2)]);
    expect(counter.series({ period: 'day' })).toMatchObject({ timeZone: 'America/New_York', series: [{ start: '2024-02-29', counts: { all: 1 } }, { start: '2024-03-01', counts: { all: 1 } }] });
    expect(counter.series({ period: 'day', tz: 'utc' })).toMatchObject({ timeZone: 'UTC', series: [{ start: '2024-03-01', counts: { all: 2 } }] });
    expect(counter.series({ period: 'month', tz: 'UTC' }).series[0]).toMatchObject({ start: '2024-03-01', counts: { all: 2 } });
    const other = thrown(() => counter.series({ period: 'day', tz: 'Asia/Tokyo' }));
    expect([other.code, other.field, other.message]).toEqual(['XREF_INVALID_ARGUMENT', 'tz', 'tz "Asia/Tokyo" is not a zone activity is counted in (counted: America/New_York, UTC; add it to activity.extraTimeZones)']);
    const bad = thrown(() => counter.series({ period: 'day', tz: 'Nowhere/Land' }));
    expect([bad.field, bad.message]).toEqual(['tz', 'tz must be an IANA time zone (e.g. UTC, Europe/Paris), got "Nowhere/Land"']);
  });

  it('refuses an unknown bucket, a bad period and more than 1,000 periods, naming them', () => {
    const counter = newCounter();
    const bucket = thrown(() => counter.series({ period: 'day', buckets: ['site1', 'site9'] }));
    expect([bucket.code, bucket.field, bucket.message]).toEqual(['XREF_INVALID_ARGUMENT', 'bucket', 'bucket "site9" is not a configured bucket (known: all, auth, anon, site1, site2, signups, total)']);
    expect(thrown(() => counter.series({ period: 'year' })).field).toBe('period');
    const range = thrown(() => counter.series({ period: 'day', from: '2021-01-01', to: '2024-01-01' }));
    expect([range.field, range.message]).toEqual(['to', 'from 2021-01-01 to 2024-01-01 spans 1095 days, over the limit of 1000 periods per answer: narrow from/to or ask for a longer period']);
    expect(counter.series({ period: 'week', from: '2021-01-01', to: '2024-01-01' }).series).toHaveLength(157);
  });

  it('gives the same counts, frozen ones included, when fed in one go or through a saved state', () => {
    const inputs: Input[] = [
      { ids: { cookie: 'c1' }, at: '2024-01-01T10:00:00Z', site: 'site1' },
      user('u1', '2024-01-01T11:00:00Z', 'site2', 2),
      { ids: { cookie: 'c2' }, at: '2024-01-02T10:00:00Z', site: 'site2' },
      { ids: { cookie: 'c2', device: 'd2' }, at: '2024-01-03T10:00:00Z' },
      { ids: { cookie: 'undefined' }, at: '2024-01-03T10:00:00Z' },
      user('u2', '2024-01-06T10:00:00Z', 'site1', 6),
      { ids: { cookie: 'c1', db_id: 'u1' }, at: '2024-01-07T10:00:00Z', resolves: [[1, 'u1'], [7, 'u1']] },
      { ids: { device: 'd2', db_id: 'u2' }, at: '2024-01-20T10:00:00Z', resolves: [[3, 'u2'], [4, 'u2'], [8, 'u2']] },
    ];
    const answers = (counter: ActivityCounter) =>
      (['day', 'week', 'month'] as const).map((period) => counter.series({ period, buckets: ['all', 'auth', 'anon', 'site1', 'site2', 'total'] }));
    const whole = feed(newCounter(), inputs);
    for (let split = 0; split <= inputs.length; split++) {
      const first = feed(newCounter(), inputs.slice(0, split));
      const saved = JSON.parse(JSON.stringify(first.state())) as CounterState;
      const resumed = feed(ActivityCounter.restore(resolveConfig({ activity: SITES }), saved), inputs.slice(split), split + 1);
      expect(answers(resumed)).toEqual(answers(whole));
      expect(resumed.state()).toEqual(whole.state());
    }
    // and frozen counts did freeze: the first days were restated by the later logins
    expect(whole.series({ period: 'day', buckets: ['anon'], to: '2024-01-03' }).series).toEqual([
      { start: '2024-01-01', counts: { anon: 1 }, restated: { anon: 0 }, unattributed: 0 },
      { start: '2024-01-02', counts: { anon: 1 }, restated: { anon: 0 }, unattributed: 0 },
    ]);
    const other = thrown(() => ActivityCounter.restore(resolveConfig({ activity: { buckets: { x: { linked: true } } } }), whole.state()));
    expect(other.code).toBe('XREF_INVALID_CONFIG');
  });
});

describe('activity config', () => {
  it('has defaults: UTC, close day 2, week 1, month 1, no buckets; the config file accepts the activity key', () => {
    expect(resolveActivityConfig()).toEqual({ timeZone: 'UTC', extraTimeZones: [], close: { day: 2, week: 1, month: 1 }, buckets: [], aggregates: [] });
    const config = resolveConfig({ activity: { timeZone: 'europe/paris', close: { day: 3 }, buckets: { auth: { linked: true } }, aggregates: { any: ['auth'] } } });
    expect(config.activity).toEqual({
      timeZone: 'Europe/Paris',
      extraTimeZones: [],
      close: { day: 3, week: 1, month: 1 },
      buckets: [{ bucket: 'auth', linked: true }],
      aggregates: [{ bucket: 'any', members: ['auth'] }],
    });
    expect(Object.isFrozen(config.activity!.buckets[0])).toBe(true);
  });

  it.each([
    [{ timeZone: 'Mars/Olympus' }, 'activity.timeZone', 'config activity.timeZone must be an IANA time zone (e.g. UTC, Europe/Paris), got "Mars/Olympus"'],
    [{ extraTimeZones: ['UTC', 5] }, 'activity.extraTimeZones[1]', 'config activity.extraTimeZones[1] must be an IANA time zone (e.g. UTC, Europe/Paris), got 5'],
    [{ close: { day: -1 } }, 'activity.close.day', 'config activity.close.day must be a non-negative integer (days after the day ends), got -1'],
    [{ close: { year: 1 } }, 'activity.close.year', 'config activity.close.year is not a period (known: day, week, month), got 1'],
    [{ buckets: { site1: { field: 'data.site' } } }, 'activity.buckets.site1.equals', 'config activity.buckets.site1.equals must be a string, number, boolean or null, or a non-empty list of them, given with field, got undefined'],
    [{ buckets: { site1: { field: 'data.site', equals: [{ a: 1 }] } } }, 'activity.buckets.site1.equals', 'config activity.buckets.site1.equals must be a string, number, boolean or null, or a non-empty list of them, given with field, got [{"a":1}]'],
    [{ buckets: { site1: { field: 'data..site', equals: 'x' } } }, 'activity.buckets.site1.field', 'config activity.buckets.site1.field must be a dotted path into the event (e.g. data.site), given with equals, got "data..site"'],
    [{ buckets: { s: { name: '/(/' } } }, 'activity.buckets.s.name', 'config activity.buckets.s.name is not a valid regular expression (Invalid regular expression: /(/: Unterminated group), got "/(/"'],
    [{ buckets: { s: { name: '/a/g' } } }, 'activity.buckets.s.name', 'config activity.buckets.s.name must be a name, or a regular expression /…/ with flags among i, m, s, u, got "/a/g"'],
    [{ buckets: { s: { linked: 'yes' } } }, 'activity.buckets.s.linked', 'config activity.buckets.s.linked must be true (known users) or false (anonymous people), got "yes"'],
    [{ buckets: { s: { linkd: true } } }, 'activity.buckets.s.linkd', 'config activity.buckets.s.linkd is not a bucket rule key (known: linked, field, equals, name), got true'],
    [{ buckets: { s: {} } }, 'activity.buckets.s', 'config activity.buckets.s must have at least one of linked, field (with equals), name, got {}'],
    [{ buckets: { all: { linked: true } } }, 'activity.buckets key', 'config activity.buckets key is reserved: "all" is the answer\'s key for every active person, got "all"'],
    [{ buckets: { a: { linked: true } }, aggregates: { total: ['a', 'b'] } }, 'activity.aggregates.total[1]', 'config activity.aggregates.total[1] must name a bucket (known: a), got "b"'],
    [{ aggregates: { total: [] } }, 'activity.aggregates.total', 'config activity.aggregates.total must be a non-empty list of bucket names, got []'],
    [{ bucket: {} }, 'activity.bucket', 'config activity.bucket is not an activity key (known: timeZone, extraTimeZones, close, buckets, aggregates), got {}'],
  ])('refuses %j naming %s', (activity, field, message) => {
    const error = thrown(() => resolveConfig({ activity }));
    expect(isXrefError(error, 'XREF_INVALID_CONFIG')).toBe(true);
    expect([error.field, error.message]).toEqual([field, message]);
  });
});
