import { describe, expect, it } from 'vitest';
import { checkRange, MAX_PERIODS, periodStart, ZoneCalendar } from '../../src/activity/periods.ts';
import { isXrefError } from '../../src/domain/errors.ts';

const ms = (iso: string) => Date.parse(iso);
const startOf = (calendar: ZoneCalendar, kind: 'day' | 'week' | 'month', iso: string) => periodStart(kind, calendar.periodOf(kind, ms(iso)));

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('activity periods', () => {
  const utc = new ZoneCalendar('UTC');

  it('puts an instant in its UTC day, ISO week (Monday first) and calendar month', () => {
    expect(startOf(utc, 'day', '2024-01-07T23:59:59.999Z')).toBe('2024-01-07');
    expect(startOf(utc, 'day', '2024-01-08T00:00:00Z')).toBe('2024-01-08');
    // Sunday 7 January is in the week of Monday 1 January; Monday 8 January starts the next
    expect(startOf(utc, 'week', '2024-01-07T23:59:59Z')).toBe('2024-01-01');
    expect(startOf(utc, 'week', '2024-01-08T00:00:00Z')).toBe('2024-01-08');
    // a week across the new year is one week, named by its Monday
    expect(startOf(utc, 'week', '2025-01-01T12:00:00Z')).toBe('2024-12-30');
    expect(startOf(utc, 'week', '2024-12-30T00:00:00Z')).toBe('2024-12-30');
    // months, leap day included
    expect(startOf(utc, 'month', '2024-02-29T23:59:59Z')).toBe('2024-02-01');
    expect(startOf(utc, 'month', '2024-03-01T00:00:00Z')).toBe('2024-03-01');
    expect(startOf(utc, 'month', '2023-12-31T23:00:00Z')).toBe('2023-12-01');
  });

  it('counts in a configured zone: its midnight, not UTC midnight, starts a day, a week and a month', () => {
    const ny = new ZoneCalendar('America/New_York');
    // 04:30 UTC on 1 March is still 29 February in New York (UTC-5)
    expect(startOf(ny, 'day', '2024-03-01T04:30:00Z')).toBe('2024-02-29');
    expect(startOf(ny, 'month', '2024-03-01T04:30:00Z')).toBe('2024-02-01');
    expect(startOf(ny, 'day', '2024-03-01T05:00:00Z')).toBe('2024-03-01');
    // Monday 00:30 in Tokyo is still Sunday in UTC
    const tokyo = new ZoneCalendar('Asia/Tokyo');
    expect(startOf(tokyo, 'week', '2024-01-07T15:30:00Z')).toBe('2024-01-08');
    expect(startOf(utc, 'week', '2024-01-07T15:30:00Z')).toBe('2024-01-01');
    expect(new ZoneCalendar('europe/paris').zone).toBe('Europe/Paris');
  });

  it('has daylight-saving days of 23 and 25 hours in Europe/Paris', () => {
    const paris = new ZoneCalendar('Europe/Paris');
    const day = (iso: string) => paris.dayOf(ms(iso));
    // last Sunday of March 2024: the clocks go from 02:00 to 03:00
    const march31 = day('2024-03-31T12:00:00Z');
    expect(paris.dayStartMs(march31)).toBe(ms('2024-03-30T23:00:00Z'));
    expect(paris.dayStartMs(march31 + 1) - paris.dayStartMs(march31)).toBe(23 * 3600_000);
    expect(periodStart('day', day('2024-03-30T22:59:59Z'))).toBe('2024-03-30');
    expect(periodStart('day', day('2024-03-30T23:00:00Z'))).toBe('2024-03-31');
    expect(periodStart('day', day('2024-03-31T21:59:59Z'))).toBe('2024-03-31');
    expect(periodStart('day', day('2024-03-31T22:00:00Z'))).toBe('2024-04-01');
    // last Sunday of October 2024: 03:00 goes back to 02:00
    const october27 = day('2024-10-27T12:00:00Z');
    expect(paris.dayStartMs(october27)).toBe(ms('2024-10-26T22:00:00Z'));
    expect(paris.dayStartMs(october27 + 1) - paris.dayStartMs(october27)).toBe(25 * 3600_000);
    expect(periodStart('day', day('2024-10-27T22:59:59Z'))).toBe('2024-10-27');
    expect(periodStart('day', day('2024-10-27T23:00:00Z'))).toBe('2024-10-28');
    // the week and the month of the short day start at their local midnights
    expect(paris.periodStartMs('week', paris.periodOf('week', ms('2024-03-31T12:00:00Z')))).toBe(ms('2024-03-24T23:00:00Z'));
    expect(paris.periodStartMs('month', paris.periodOf('month', ms('2024-04-15T12:00:00Z')))).toBe(ms('2024-03-31T22:00:00Z'));
  });

  it('reads from (inclusive) and to (exclusive) as dates or ISO times: the periods overlapping [from, to)', () => {
    const paris = new ZoneCalendar('Europe/Paris');
    expect(periodStart('day', paris.bound('day', 'from', '2024-03-30'))).toBe('2024-03-30');
    expect(periodStart('day', paris.bound('day', 'to', '2024-04-02'))).toBe('2024-04-02');
    // a to date inside a week keeps that week; a to date on a Monday leaves it out
    expect(periodStart('week', utc.bound('week', 'to', '2024-01-10'))).toBe('2024-01-15');
    expect(periodStart('week', utc.bound('week', 'to', '2024-01-08'))).toBe('2024-01-08');
    expect(periodStart('week', utc.bound('week', 'from', '2024-01-10'))).toBe('2024-01-08');
    // ISO times: with an offset, or read in the zone
    expect(periodStart('day', paris.bound('day', 'from', '2024-03-30T23:30:00Z'))).toBe('2024-03-31');
    expect(periodStart('day', paris.bound('day', 'to', '2024-03-31T00:00:00+01:00'))).toBe('2024-03-31');
    expect(periodStart('day', paris.bound('day', 'to', '2024-03-31T00:00:01+01:00'))).toBe('2024-04-01');
    expect(periodStart('day', paris.bound('day', 'from', '2024-03-31T01:30'))).toBe('2024-03-31');
    const bad = thrown(() => utc.bound('day', 'from', '2024-02-30'));
    expect(isXrefError(bad, 'XREF_INVALID_ARGUMENT') && bad.field).toBe('from');
    expect((bad as Error).message).toBe('from must be a date (YYYY-MM-DD) or an ISO 8601 time, got "2024-02-30"');
  });

  it('closes a period the configured number of periods after it ends, by the watermark', () => {
    // close 2: the day of 1 January closes when 4 January starts
    const jan1 = utc.periodOf('day', ms('2024-01-01T10:00:00Z'));
    expect(utc.closedThrough('day', ms('2024-01-03T23:59:59Z'), 2)).toBe(jan1 - 1);
    expect(utc.closedThrough('day', ms('2024-01-04T00:00:00Z'), 2)).toBe(jan1);
    expect(utc.closedThrough('day', ms('2024-01-02T00:00:00Z'), 0)).toBe(jan1);
    expect(utc.closedThrough('day', -Infinity, 2)).toBe(-Infinity);
    // close 1: the week of 1 January closes when 15 January starts; January when March starts
    const week = utc.periodOf('week', ms('2024-01-01T10:00:00Z'));
    expect(utc.closedThrough('week', ms('2024-01-14T23:59:59Z'), 1)).toBe(week - 1);
    expect(utc.closedThrough('week', ms('2024-01-15T00:00:00Z'), 1)).toBe(week);
    const january = utc.periodOf('month', ms('2024-01-01T10:00:00Z'));
    expect(utc.closedThrough('month', ms('2024-02-29T23:59:59Z'), 1)).toBe(january - 1);
    expect(utc.closedThrough('month', ms('2024-03-01T00:00:00Z'), 1)).toBe(january);
  });

  it(`refuses a range of more than ${MAX_PERIODS} periods, naming the limit, and a bad zone`, () => {
    const from = utc.bound('day', 'from', '2020-01-01');
    expect(() => checkRange('day', from, from + MAX_PERIODS, {})).not.toThrow();
    const error = thrown(() => checkRange('day', from, from + MAX_PERIODS + 1, {}));
    expect(isXrefError(error, 'XREF_INVALID_ARGUMENT') && error.field).toBe('to');
    expect((error as Error).message).toBe('from 2020-01-01 to 2022-09-28 spans 1001 days, over the limit of 1000 periods per answer: narrow from/to or ask for a longer period');
    const backwards = thrown(() => checkRange('day', from, from - 1, { from: '2020-01-01', to: '2019-12-31' }));
    expect((backwards as Error).message).toBe('to must not be before from, got from "2020-01-01" and to "2019-12-31"');
    const zone = thrown(() => new ZoneCalendar('Mars/Olympus'));
    expect(isXrefError(zone, 'XREF_INVALID_ARGUMENT') && zone.field).toBe('tz');
    expect(() => new ZoneCalendar('+02:00')).toThrow(/time zone must be an IANA time zone/);
  });
});
