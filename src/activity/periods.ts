import { DateTime } from 'luxon';
import { XrefError, quote } from '../domain/errors.ts';
import { type PeriodKind, requestedZone } from './activity-config.ts';

export { isPeriodKind, PERIOD_KINDS, type PeriodKind, requestedZone } from './activity-config.ts';
export { dayDate, dayNumber, firstDay, MAX_PERIODS, parseDate, periodOfDay, periodStart } from './period-index.ts';
import { DAY_MS, firstDay, MAX_PERIODS, parseDate, periodOfDay, periodStart, dayNumber } from './period-index.ts';

// The zone calendar (with its date library, luxon) apart from the period arithmetic
// (period-index.ts), which the read model's stores use without loading it.

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
