import type { PeriodKind } from './activity-config.ts';

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

export const DAY_MS = 24 * 60 * 60 * 1000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Days since 1970-01-01 of a civil date. */
export function dayNumber(year: number, month: number, day: number): number {
  return Math.floor(Date.UTC(year, month - 1, day) / DAY_MS);
}

// The day last asked of each: the counter asks about the same few days over and over (events
// come mostly in time order), and a Date costs far more than a comparison
let dateDay = Number.NaN;
let date = '';
let monthDay = Number.NaN;
let month = 0;

/** `YYYY-MM-DD` of a day number. */
export function dayDate(day: number): string {
  if (day !== dateDay) {
    dateDay = day;
    date = new Date(day * DAY_MS).toISOString().slice(0, 10);
  }
  return date;
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
  if (day !== monthDay) {
    const utc = new Date(day * DAY_MS);
    monthDay = day;
    month = utc.getUTCFullYear() * 12 + utc.getUTCMonth();
  }
  return month;
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

