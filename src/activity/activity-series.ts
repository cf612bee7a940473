import { XrefError, quote } from '../domain/errors.ts';
import type { CounterScalars } from './activity-counter.ts';
import { ALL, type ActivityConfig } from './activity-config.ts';
import { BucketRules } from './bucket-rules.ts';
import { checkRange, isPeriodKind, type PeriodKind, periodStart, requestedZone, ZoneCalendar } from './periods.ts';

/**
 * The answer of `GET /v1/activity` and `xref activity` from counts per period, wherever they are
 * kept: the offline counter's memory or the read model's `activity_counts`. Pure: what it needs
 * of the counts comes through `CountsSource`.
 */

/** One period of an answer. */
export interface ActivityPoint {
  /** The period's first day in the zone, `YYYY-MM-DD`. */
  start: string;
  /** People per key asked: frozen when the period is closed, else as known now. */
  counts: Record<string, number>;
  /** A closed period only, where what is known now differs from the frozen counts: the counts now. */
  restated?: Record<string, number>;
  /** Junk-only events (no person to count), frozen like `counts` when the period is closed. */
  unattributed: number;
  /** A closed period only, where it differs: the junk-only events known now. */
  restatedUnattributed?: number;
}

export interface ActivitySeries {
  period: PeriodKind;
  timeZone: string;
  series: ActivityPoint[];
}

export interface SeriesRequest {
  /** `day`, `week` or `month`. */
  period: string;
  /** Inclusive: a date (`YYYY-MM-DD`) or an ISO time. Default: the first period with activity. */
  from?: string;
  /** Exclusive: a date or an ISO time. Default: after the last period with activity. */
  to?: string;
  /** Buckets and aggregates to answer (default: `all`). */
  buckets?: readonly string[];
  /** The zone of the periods: the configured one (default) or one of `extraTimeZones`. */
  tz?: string;
}

/** What is known of one zone × period kind before its counts are read. */
export interface TableExtent {
  /** The first and last periods anything was counted in (first > last: none). */
  readonly first: number;
  readonly last: number;
  /** The last closed period (-Infinity: none). */
  readonly closedThrough: number;
}

/** One period's counts: every column, then the junk-only events (undefined: nothing counted). */
export interface PeriodCounts {
  readonly current?: readonly number[];
  readonly frozen?: readonly number[];
}

/** Where the counts are: the columns they were counted with, the zones, and each table. */
export interface CountsSource {
  /** The column names in counting order (`all`, the buckets, the aggregates). */
  readonly columns: readonly string[];
  /** The zone answers are in by default, and every zone counted. */
  readonly timeZone: string;
  readonly zones: readonly string[];
  extent(zone: string, period: PeriodKind): TableExtent;
}

/** What a request asks, checked against the source: which table, which columns, which periods. */
export interface SeriesPlan {
  readonly period: PeriodKind;
  readonly zone: string;
  readonly names: readonly string[];
  readonly columns: readonly number[];
  /** Period indexes, `from` inclusive, `to` exclusive. */
  readonly from: number;
  readonly to: number;
  readonly closedThrough: number;
}

/** Checks a request (period, zone, buckets, range) and plans its answer; XREF_INVALID_ARGUMENT names the field. */
export function planSeries(request: SeriesRequest, source: CountsSource): SeriesPlan {
  const period = request.period;
  if (!isPeriodKind(period)) throw new XrefError('XREF_INVALID_ARGUMENT', `period must be day, week or month, got ${quote(period)}`, { field: 'period' });
  const zone = zoneOf(request.tz, source);
  const names = request.buckets === undefined || request.buckets.length === 0 ? [ALL] : [...new Set(request.buckets)];
  const columns = names.map((name) => {
    const column = source.columns.indexOf(name);
    if (column < 0) throw new XrefError('XREF_INVALID_ARGUMENT', `bucket ${quote(name)} is not a configured bucket (known: ${source.columns.join(', ')})`, { field: 'bucket' });
    return column;
  });
  const table = source.extent(zone, period);
  const calendar = new ZoneCalendar(zone);
  const empty = table.first > table.last;
  // a bound not given is the first (last) period with activity, never past the other bound given
  const toGiven = request.to === undefined ? undefined : calendar.bound(period, 'to', request.to);
  const fromGiven = request.from === undefined ? undefined : calendar.bound(period, 'from', request.from);
  const from = fromGiven ?? (empty ? (toGiven ?? 0) : toGiven === undefined ? table.first : Math.min(table.first, toGiven));
  const to = toGiven ?? (empty ? from : Math.max(from, table.last + 1));
  checkRange(period, from, to, request);
  return { period, zone, names, columns, from, to, closedThrough: table.closedThrough };
}

/** The answer of a plan, from each period's counts (`unattributed`: the column of the junk-only events). */
export function seriesOf(plan: SeriesPlan, unattributed: number, countsAt: (index: number) => PeriodCounts): ActivitySeries {
  const zeros = new Array<number>(unattributed + 1).fill(0);
  const series: ActivityPoint[] = [];
  for (let index = plan.from; index < plan.to; index++) {
    const at = countsAt(index);
    const now = at.current ?? zeros;
    const closed = index <= plan.closedThrough;
    const shown = closed ? (at.frozen ?? zeros) : now;
    const point: Partial<ActivityPoint> = { start: periodStart(plan.period, index), counts: pick(plan, shown) };
    if (closed && plan.columns.some((column) => shown[column] !== now[column])) point.restated = pick(plan, now);
    point.unattributed = shown[unattributed]!;
    if (closed && shown[unattributed] !== now[unattributed]) point.restatedUnattributed = now[unattributed]!;
    series.push(point as ActivityPoint);
  }
  return { period: plan.period, timeZone: plan.zone, series };
}

const NOTHING: TableExtent = { first: Infinity, last: -Infinity, closedThrough: -Infinity };

/** The counts a counter stored: its columns, zones and tables' bounds (its scalars). */
export function countedSource(scalars: CounterScalars): CountsSource {
  return {
    columns: scalars.columns,
    timeZone: scalars.zones[0] ?? 'UTC',
    zones: scalars.zones,
    extent: (zone, period) => {
      const table = scalars.tables.find((t) => t.zone === zone && t.period === period);
      if (table === undefined) return NOTHING;
      return { first: table.extent?.[0] ?? Infinity, last: table.extent?.[1] ?? -Infinity, closedThrough: table.closedThrough ?? -Infinity };
    },
  };
}

/** The counts of a config before anything was counted: its columns and zones, every table empty. */
export function configuredSource(activity: ActivityConfig): CountsSource {
  return { columns: new BucketRules(activity).names(), timeZone: activity.timeZone, zones: [...new Set([activity.timeZone, ...activity.extraTimeZones])], extent: () => NOTHING };
}

/** The canonical zone asked (default: the source's), refused unless counted. */
export function zoneOf(tz: string | undefined, source: Pick<CountsSource, 'timeZone' | 'zones'>): string {
  if (tz === undefined) return source.timeZone;
  const canonical = requestedZone(tz);
  if (!source.zones.includes(canonical)) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `tz ${quote(tz)} is not a zone activity is counted in (counted: ${source.zones.join(', ')}; add it to activity.extraTimeZones)`, { field: 'tz' });
  }
  return canonical;
}

function pick(plan: SeriesPlan, counts: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  plan.names.forEach((name, i) => (out[name] = counts[plan.columns[i]!]!));
  return out;
}
