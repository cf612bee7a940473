/**
 * The SQL of the active-people counts (docs/activity.md), shared by both adapters: a counter's
 * changes as rows to write over their stored copies (or delete), and the reads that give its
 * image back, its inputs, and the counts an answer needs. `?` placeholders; PostgreSQL's adapter
 * numbers them.
 */
import type { CounterChanges, CounterScalars, CounterState } from '../activity/activity-counter.ts';
import { counterState } from '../activity/counter-image.ts';
import type { EventFeatures, FeatureRules } from '../activity/event-features.ts';
import type { PeriodKind } from '../activity/activity-config.ts';
import { periodStart } from '../activity/period-index.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Value } from './read-model-sql.ts';

/** A table's key columns and the columns written over a stored row. */
export interface ActivityTable {
  readonly table: string;
  readonly key: readonly string[];
  readonly values: readonly string[];
  /** The integer columns (bigint in PostgreSQL); the others are text. */
  readonly ints: readonly string[];
}

/** The counts' rows, by part (the one row of `activity_state` is written by ACTIVITY_STATE_WRITE_SQL). */
export const ACTIVITY = {
  people: { table: 'activity_people', key: ['zone', 'period', 'idx', 'person'], values: ['start', 'events', 'hits'], ints: ['idx', 'events'] },
  counts: { table: 'activity_counts', key: ['zone', 'period', 'idx'], values: ['start', 'counts', 'frozen'], ints: ['idx'] },
  keys: { table: 'activity_anon', key: ['id'], values: ['parent', 'size'], ints: ['size'] },
  pending: { table: 'activity_pending', key: ['seq'], values: ['anchor', 'time_ms', 'matched'], ints: ['seq', 'time_ms'] },
} as const satisfies Record<string, ActivityTable>;

export type ActivityPart = keyof typeof ACTIVITY;

/** The columns of a table's rows, key first. */
export const activityColumns = (t: ActivityTable): string[] => [...t.key, ...t.values];

/** One row written over its stored copy. */
export const upsertSql = (t: ActivityTable): string => {
  const columns = activityColumns(t);
  return `INSERT INTO ${t.table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) ON CONFLICT (${t.key.join(', ')}) DO UPDATE SET ${t.values.map((c) => `${c} = excluded.${c}`).join(', ')}`;
};

/** One row deleted by its key. */
export const deleteSql = (t: ActivityTable): string => `DELETE FROM ${t.table} WHERE ${t.key.map((c) => `${c} = ?`).join(' AND ')}`;

/** A counter's changes as rows: per part, the rows to write (key and values) and the keys to delete. */
export interface ActivityWrites {
  /** The state row's values: `[seq, columns, zones, scalars]`. */
  readonly state: Value[];
  readonly upserts: Readonly<Record<ActivityPart, Value[][]>>;
  readonly deletes: Readonly<Record<ActivityPart, Value[][]>>;
}

/** The state row written: `[seq, columns, zones, scalars]`. */
export const ACTIVITY_STATE_WRITE_SQL = 'UPDATE activity_state SET seq = ?, columns = ?, zones = ?, scalars = ? WHERE id = 1';

/** The rows of a counter's changes, and its position (the last input it applied). */
export function activityWrites(changes: CounterChanges, seq: number): ActivityWrites {
  const upserts: Record<ActivityPart, Value[][]> = { people: [], counts: [], keys: [], pending: [] };
  const deletes: Record<ActivityPart, Value[][]> = { people: [], counts: [], keys: [], pending: [] };
  const { columns, zones, ...scalars } = changes.scalars;
  for (const row of changes.rows) {
    const key = [row.zone, row.period, row.index, row.person];
    if (row.events === 0) deletes.people.push(key);
    else upserts.people.push([...key, periodStart(row.period, row.index), row.events, JSON.stringify(row.hits)]);
  }
  for (const c of changes.counts) upserts.counts.push([c.zone, c.period, c.index, periodStart(c.period, c.index), JSON.stringify(c.counts), c.frozen === null ? null : JSON.stringify(c.frozen)]);
  for (const k of changes.keys) {
    if (k.parent === null && k.size === null) deletes.keys.push([k.id]);
    else upserts.keys.push([k.id, k.parent, k.size]);
  }
  for (const p of changes.pending) {
    if (p.pending === null) deletes.pending.push([p.seq]);
    else upserts.pending.push([p.seq, p.pending[0], p.pending[1], JSON.stringify(p.pending[2])]);
  }
  return { state: [seq, JSON.stringify(columns), JSON.stringify(zones), JSON.stringify(scalars)], upserts, deletes };
}

/** The writes as statements run once per row, deletes first (SQLite's writer runs them so). */
export function activityRuns(writes: ActivityWrites): Array<{ sql: string; rows: Value[][] }> {
  const runs: Array<{ sql: string; rows: Value[][] }> = [{ sql: ACTIVITY_STATE_WRITE_SQL, rows: [writes.state] }];
  for (const part of Object.keys(ACTIVITY) as ActivityPart[]) {
    if (writes.deletes[part].length > 0) runs.push({ sql: deleteSql(ACTIVITY[part]), rows: writes.deletes[part] });
    if (writes.upserts[part].length > 0) runs.push({ sql: upsertSql(ACTIVITY[part]), rows: writes.upserts[part] });
  }
  return runs;
}

// --- reading ------------------------------------------------------------------------------------

/** The last input whose rows the counting reads (an event, a resolution it decided, a retraction it made or the resolution that was): 0 for none. */
export const ACTIVITY_LAST_INPUT_SQL =
  'SELECT coalesce(max(m), 0) AS seq FROM (SELECT max(seq) AS m FROM events UNION ALL SELECT max(decided_seq) FROM resolutions ' +
  'UNION ALL SELECT max(unlink_seq) FROM retractions UNION ALL SELECT max(decided_seq) FROM retractions) AS inputs';
export const ACTIVITY_STATE_SQL = 'SELECT generation, seq, columns, zones, scalars FROM activity_state WHERE id = 1';
/** The stored mark, `<generation> <seq>`: what a write expects to find. */
export const ACTIVITY_MARK_SQL = "SELECT CAST(generation AS TEXT) || ' ' || CAST(seq AS TEXT) AS mark FROM activity_state WHERE id = 1";
export const markText = (mark: ActivityMark): string => `${mark.generation} ${mark.seq}`;

/** Where stored counts are: their generation (one more at each deletion) and the last input counted (0: none). */
export interface ActivityMark {
  readonly generation: number;
  readonly seq: number;
}
export const ACTIVITY_PEOPLE_SQL = "SELECT zone, period, idx, person, events, hits FROM activity_people WHERE period = 'day'";
export const ACTIVITY_COUNTS_SQL = 'SELECT zone, period, idx, counts, frozen FROM activity_counts';
export const ACTIVITY_KEYS_SQL = 'SELECT id, parent, size FROM activity_anon';
export const ACTIVITY_PENDING_SQL = 'SELECT seq, anchor, time_ms, matched FROM activity_pending';
/** A table's counts over a range of periods: `[zone, period, from, to]` (to exclusive). */
export const ACTIVITY_RANGE_SQL = 'SELECT idx, counts, frozen FROM activity_counts WHERE zone = ? AND period = ? AND idx >= ? AND idx < ? ORDER BY idx';
/** The events after an input, in log order: `[after, through, limit]` (read as arrays: ActivityEventRow). */
export const ACTIVITY_EVENTS_SQL = 'SELECT seq, time_ms, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?';
/**
 * The resolutions the inputs of a range decided, in the order the counter takes them, those an
 * unlink took back since among them (the counter took them when they were decided):
 * `[after, through, after, through]`.
 */
export const ACTIVITY_RESOLUTIONS_SQL =
  'SELECT decided_seq, event_seq, user_kind, user_id FROM resolutions WHERE decided_seq > ? AND decided_seq <= ? ' +
  'UNION ALL SELECT decided_seq, event_seq, user_kind, user_id FROM retractions WHERE decided_seq > ? AND decided_seq <= ? AND event_seq IS NOT NULL ' +
  'ORDER BY decided_seq, event_seq, user_kind, user_id';
/** The resolutions the unlinks of a range took back, with their events, in the order the counter takes them: `[after, through]`. */
export const ACTIVITY_RETRACTIONS_SQL =
  'SELECT t.unlink_seq, t.event_seq, t.user_kind, t.user_id, e.time_ms, e.body FROM retractions t CROSS JOIN events e ' +
  'WHERE t.unlink_seq > ? AND t.unlink_seq <= ? AND e.seq = t.event_seq ORDER BY t.unlink_seq, t.event_seq, t.user_kind, t.user_id';

export interface StateRow {
  generation: number;
  seq: number;
  columns: string | null;
  zones: string | null;
  scalars: string | null;
}

/** The stored scalars (columns, zones, bounds) and position; undefined when nothing is counted. */
export function storedScalars(row: StateRow | undefined): { seq: number; scalars: CounterScalars } | undefined {
  if (row === undefined || row.scalars === null || row.columns === null || row.zones === null) return undefined;
  const rest = JSON.parse(row.scalars) as Omit<CounterScalars, 'columns' | 'zones'>;
  return { seq: row.seq, scalars: { ...rest, columns: JSON.parse(row.columns) as string[], zones: JSON.parse(row.zones) as string[] } };
}

/** The mark of the state row (a database not migrated to it yet has none: generation 0, nothing counted). */
export const markOf = (row: StateRow | undefined): ActivityMark => ({ generation: row?.generation ?? 0, seq: row?.scalars == null ? 0 : row.seq });

type PeopleRow = { zone: string; period: string; idx: number; person: string; events: number; hits: string };
type CountsRow = { zone: string; period: string; idx: number; counts: string; frozen: string | null };

/** The counter's image from its stored rows. */
export function storedState(
  scalars: CounterScalars,
  rows: { people: readonly unknown[]; counts: readonly unknown[]; keys: readonly unknown[]; pending: readonly unknown[] },
): CounterState {
  const byTable = <R extends { zone: string; period: string }, T>(list: readonly R[], map: (row: R) => T) => {
    const out = new Map<string, T[]>();
    for (const row of list) {
      const key = `${row.zone} ${row.period}`;
      let at = out.get(key);
      if (at === undefined) out.set(key, (at = []));
      at.push(map(row));
    }
    return (zone: string, period: string) => out.get(`${zone} ${period}`) ?? [];
  };
  return counterState(scalars, {
    keys: (rows.keys as Array<{ id: string; parent: string | null; size: number | null }>).map((k) => [k.id, k.parent, k.size]),
    pending: (rows.pending as Array<{ seq: number; anchor: string; time_ms: number; matched: string }>).map((p) => [p.seq, p.anchor, p.time_ms, JSON.parse(p.matched) as number[]]),
    rows: byTable(rows.people as PeopleRow[], (r): [number, string, number, number[]] => [r.idx, r.person, r.events, JSON.parse(r.hits) as number[]]),
    counts: byTable(rows.counts as CountsRow[], (r): [number, number[], number[] | null] => [r.idx, JSON.parse(r.counts) as number[], r.frozen === null ? null : (JSON.parse(r.frozen) as number[])]),
  });
}

/** An input the counter takes: an event in log order, as the counter reads it. */
export interface ActivityEvent {
  readonly seq: number;
  readonly features: EventFeatures;
  readonly timeMs: number;
}

export interface ActivityResolution {
  readonly decidedSeq: number;
  readonly eventSeq: number;
  readonly user: { readonly kind: string; readonly id: string };
}

/** A resolution an unlink took back (docs/activity.md): the counter needs the event again, to count it for its anonymous person. */
export interface ActivityRetraction {
  /** The unlink input. */
  readonly seq: number;
  readonly eventSeq: number;
  readonly user: { readonly kind: string; readonly id: string };
  readonly features: EventFeatures;
  readonly timeMs: number;
}

/** The events of a range of inputs, the resolutions they decided and those they took back, through `through`. */
export interface ActivityInputs {
  readonly events: readonly ActivityEvent[];
  readonly resolutions: readonly ActivityResolution[];
  readonly retractions: readonly ActivityRetraction[];
  /** The last input covered: `toSeq`, or the last event's when `limit` cut the range. */
  readonly through: number;
}

/** What the counter reads of a stored event, from its body. */
const featuresOf = (body: string, features: FeatureRules): EventFeatures => features.of(JSON.parse(body) as XrefEvent);

/** A row of ACTIVITY_EVENTS_SQL: `[seq, time_ms, body]`. */
export type ActivityEventRow = readonly [number, number, string];

export function activityEvents(rows: readonly ActivityEventRow[], features: FeatureRules): ActivityEvent[] {
  return rows.map(([seq, timeMs, body]) => ({ seq, timeMs, features: featuresOf(body, features) }));
}

/** A row of ACTIVITY_RESOLUTIONS_SQL: `[decided_seq, event_seq, user_kind, user_id]`. */
export type ActivityResolutionRow = readonly [number, number, string, string];

export function activityResolutions(rows: readonly ActivityResolutionRow[]): ActivityResolution[] {
  return rows.map(([decidedSeq, eventSeq, kind, id]) => ({ decidedSeq, eventSeq, user: { kind, id } }));
}

export function activityRetractions(rows: readonly unknown[], features: FeatureRules): ActivityRetraction[] {
  return (rows as Array<{ unlink_seq: number; event_seq: number; user_kind: string; user_id: string; time_ms: number; body: string }>).map((row) => ({
    seq: row.unlink_seq,
    eventSeq: row.event_seq,
    user: { kind: row.user_kind, id: row.user_id },
    features: featuresOf(row.body, features),
    timeMs: row.time_ms,
  }));
}

/** Every period's counts now as stored: `[zone, period, index, counts]` (the junk-only events last). */
export type StoredCounts = ReadonlyArray<readonly [string, PeriodKind, number, readonly number[]]>;

export function storedCounts(rows: readonly unknown[]): StoredCounts {
  return (rows as CountsRow[]).map((row) => [row.zone, row.period as PeriodKind, row.idx, JSON.parse(row.counts) as number[]] as const);
}

/** A range's counts, by period index. */
export function rangeCounts(rows: readonly unknown[]): Map<number, { current: number[]; frozen?: number[] }> {
  const out = new Map<number, { current: number[]; frozen?: number[] }>();
  for (const row of rows as Array<{ idx: number; counts: string; frozen: string | null }>) {
    out.set(row.idx, { current: JSON.parse(row.counts) as number[], ...(row.frozen === null ? {} : { frozen: JSON.parse(row.frozen) as number[] }) });
  }
  return out;
}

/** The zone and period of a counts read. */
export interface CountsRange {
  readonly zone: string;
  readonly period: PeriodKind;
  readonly from: number;
  readonly to: number;
}
