import { DateTime } from 'luxon';
import { XrefError, quote } from '../domain/errors.ts';
import { type PeriodKind, requestedZone } from './activity-config.ts';

export { isPeriodKind, PERIOD_KINDS, type PeriodKind, requestedZone } from './activity-config.ts';

/**
 * Periods of activity in an IANA time zone: the day, the ISO week (Monday first) and the calendar
 * month. A period is named by an integer index, so that periods compare and iterate as numbers:
 * - a day by its local date, as days since 1970-01-01 (the civil date, whatever its length: a
 *   daylight-saving day is 23 or 25 hours long and is still one day);
 * - a week by the index of its Monday divided by 7 (1970-01-01 was a Thursday, so `(day + 3) / 7`);
 * - a month as `year * 12 + month - 1`.
 * `start` of a period is its first local date, `YYYY-MM-DD`. docs/activity.md says how it is used.
 */

/** The most periods one answer may hold. */
export const MAX_PERIODS = 1000;

const DAY_MS = 24 * 60 * 60 * 1000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Days since 1970-01-01 of a civil date. */
export function dayNumber(year: number, month: number, day: number): number {
  return Math.floor(Date.UTC(year, month - 1, day) / DAY_MS);
}

/** `YYYY-MM-DD` of a day number. */
export function dayDate(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** The day number of a `YYYY-MM-DD` date, or undefined when it is not one (e.g. 2024-02-30). */
export function parseDate(value: string): number | undefined {
  const m = DATE.exec(value);
  if (m === null) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const n = dayNumber(year, month, day);
  return dayDate(n) === value ? n : undefined;
}

/** The period (of this kind) a day falls in. */
export function periodOfDay(kind: PeriodKind, day: number): number {
  if (kind === 'day') return day;
  if (kind === 'week') return Math.floor((day + 3) / 7);
  const date = new Date(day * DAY_MS);
  return date.getUTCFullYear() * 12 + date.getUTCMonth();
}

/** The first day of a period. */
export function firstDay(kind: PeriodKind, index: number): number {
  if (kind === 'day') return index;
  if (kind === 'week') return index * 7 - 3;
  return dayNumber(Math.floor(index / 12), (((index % 12) + 12) % 12) + 1, 1);
}

/** `start` of a period: its first day, `YYYY-MM-DD`. */
export function periodStart(kind: PeriodKind, index: number): string {
  return dayDate(firstDay(kind, index));
}

/**
 * The calendar of one zone: which local day an instant falls in, and when a local day starts.
 * Instants come mostly in order, so the day last found is kept and most look-ups cost two
 * comparisons; UTC is plain arithmetic.
 */
export class ZoneCalendar {
  readonly zone: string;
  private readonly utc: boolean;
  private cachedStart = Number.NaN;
  private cachedEnd = Number.NaN;
  private cachedDay = 0;

  constructor(zone: string) {
    this.zone = requestedZone(zone, 'time zone');
    this.utc = this.zone === 'UTC';
  }

  /** The local day (days since 1970-01-01) of an instant (epoch ms). */
  dayOf(ms: number): number {
    if (this.utc) return Math.floor(ms / DAY_MS);
    if (ms >= this.cachedStart && ms < this.cachedEnd) return this.cachedDay;
    const local = DateTime.fromMillis(ms, { zone: this.zone });
    const start = local.startOf('day');
    this.cachedStart = start.toMillis();
    this.cachedEnd = start.plus({ days: 1 }).toMillis();
    this.cachedDay = dayNumber(local.year, local.month, local.day);
    return this.cachedDay;
  }

  /** The period an instant falls in. */
  periodOf(kind: PeriodKind, ms: number): number {
    return periodOfDay(kind, this.dayOf(ms));
  }

  /** The first instant of a local day (its midnight, or the first instant after a gap at midnight). */
  dayStartMs(day: number): number {
    if (this.utc) return day * DAY_MS;
    const date = new Date(day * DAY_MS);
    return DateTime.fromObject({ year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() }, { zone: this.zone }).startOf('day').toMillis();
  }

  /** The first instant of a period. */
  periodStartMs(kind: PeriodKind, index: number): number {
    return this.dayStartMs(firstDay(kind, index));
  }

  /**
   * The last period closed at this watermark: a period closes once the start of the period `close`
   * periods after its end has been reached (`close` 0: as soon as it has ended).
   */
  closedThrough(kind: PeriodKind, watermarkMs: number, close: number): number {
    if (!Number.isFinite(watermarkMs)) return -Infinity;
    return this.periodOf(kind, watermarkMs) - 1 - close;
  }

  /**
   * A bound of a range, as a period index: `from` is the period holding it (inclusive), `to` the
   * first period starting at or after it (exclusive), so that the range is the periods that overlap
   * [from, to). A bound is a date (`YYYY-MM-DD`, the start of that day in this zone) or an ISO 8601
   * time (with its offset; without one, read in this zone).
   */
  bound(kind: PeriodKind, field: 'from' | 'to', value: string): number {
    const day = parseDate(value);
    if (day !== undefined) {
      const period = periodOfDay(kind, day);
      return field === 'from' || firstDay(kind, period) === day ? period : period + 1;
    }
    const time = value.includes('T') ? DateTime.fromISO(value, { zone: this.zone }) : undefined;
    if (time === undefined || !time.isValid) {
      throw new XrefError('XREF_INVALID_ARGUMENT', `${field} must be a date (YYYY-MM-DD) or an ISO 8601 time, got ${quote(value)}`, { field });
    }
    const ms = time.toMillis();
    const period = this.periodOf(kind, ms);
    return field === 'from' || this.periodStartMs(kind, period) === ms ? period : period + 1;
  }
}

/** Refuses a range of more than MAX_PERIODS periods, or one that ends before it starts. */
export function checkRange(kind: PeriodKind, from: number, to: number, asked: { from?: string; to?: string }): void {
  if (to < from) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `to must not be before from, got from ${quote(asked.from ?? periodStart(kind, from))} and to ${quote(asked.to ?? periodStart(kind, to))}`, { field: 'to' });
  }
  if (to - from > MAX_PERIODS) {
    throw new XrefError(
      'XREF_INVALID_ARGUMENT',
      `from ${periodStart(kind, from)} to ${periodStart(kind, to)} spans ${to - from} ${kind}s, over the limit of ${MAX_PERIODS} periods per answer: narrow from/to or ask for a longer period`,
      { field: 'to' },
    );
  }
}

/** The periods of a range, ascending (from inclusive, to exclusive). */
export function* periodsOf(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i++) yield i;
}
