/**
 * The active-people counts in the PostgreSQL read model: each part of a counter's changes written
 * with one statement (rows as a `json_to_recordset` parameter), all in one transaction with the
 * claim check.
 */
import type { CounterChanges, CounterScalars, CounterState } from '../activity/activity-counter.ts';
import type { PeriodCounts } from '../activity/activity-series.ts';
import {
  ACTIVITY,
  ACTIVITY_COUNTS_SQL,
  ACTIVITY_EVENTS_SQL,
  ACTIVITY_KEYS_SQL,
  ACTIVITY_PENDING_SQL,
  ACTIVITY_MARK_SQL,
  ACTIVITY_STATE_WRITE_SQL,
  ACTIVITY_PEOPLE_SQL,
  ACTIVITY_RANGE_SQL,
  ACTIVITY_RESOLUTIONS_SQL,
  ACTIVITY_STATE_SQL,
  type ActivityInputs,
  type ActivityMark,
  type ActivityPart,
  type ActivityTable,
  type CountsRange,
  type StateRow,
  activityColumns,
  activityEvents,
  activityResolutions,
  activityWrites,
  markOf,
  markText,
  rangeCounts,
  storedScalars,
  storedState,
} from './activity-sql.ts';
import { ACTIVITY_RESET_SQL, type Value } from './read-model-sql.ts';
import type { ActivityStore } from './read-model.ts';

/** What the counts need of the PostgreSQL store. */
export interface PostgresAccess {
  /** A read (`?` placeholders). */
  rows<R>(sql: string, params: readonly unknown[], what: string): Promise<R[]>;
  /** Reads that see one state of the database (one REPEATABLE READ transaction). */
  snapshot<T>(what: string, read: (rows: <R>(sql: string, params: readonly unknown[]) => Promise<R[]>) => Promise<T>): Promise<T>;
  /** `work` in one transaction, once `owner` is found to hold the claim (XREF_FENCED otherwise). */
  write<T>(what: string, owner: string, work: (query: <R>(sql: string, values: readonly unknown[]) => Promise<R[]>) => Promise<T>): Promise<T>;
  /** A string as a text column stores it. */
  text(value: string): string;
}

const recordsetOf = (t: ActivityTable, columns: readonly string[]) =>
  `json_to_recordset(?::json) AS x (${columns.map((c) => `${c} ${(t.ints as readonly string[]).includes(c) ? 'bigint' : 'text'}`).join(', ')})`;
const bulkUpsertSql = (t: ActivityTable): string => {
  const columns = activityColumns(t);
  return `INSERT INTO ${t.table} (${columns.join(', ')}) SELECT ${columns.map((c) => `x.${c}`).join(', ')} FROM ${recordsetOf(t, columns)} ON CONFLICT (${t.key.join(', ')}) DO UPDATE SET ${t.values.map((c) => `${c} = excluded.${c}`).join(', ')}`;
};
const bulkDeleteSql = (t: ActivityTable): string => `DELETE FROM ${t.table} t USING ${recordsetOf(t, t.key)} WHERE ${t.key.map((c) => `t.${c} = x.${c}`).join(' AND ')}`;

export class PostgresActivity implements ActivityStore {
  constructor(private readonly db: PostgresAccess) {}

  async load(): Promise<{ mark: ActivityMark; state?: CounterState }> {
    return this.db.snapshot('reading the active-people counts', async (rows) => {
      const [row] = await rows<StateRow>(ACTIVITY_STATE_SQL, []);
      const mark = markOf(row);
      const scalars = storedScalars(row)?.scalars;
      if (scalars === undefined) return { mark };
      const stored = {
        people: await rows(ACTIVITY_PEOPLE_SQL, []),
        counts: await rows(ACTIVITY_COUNTS_SQL, []),
        keys: await rows(ACTIVITY_KEYS_SQL, []),
        pending: await rows(ACTIVITY_PENDING_SQL, []),
      };
      return { mark, state: storedState(scalars, stored) };
    });
  }

  async scalars(): Promise<{ seq: number; scalars: CounterScalars } | undefined> {
    const [row] = await this.db.rows<StateRow>(ACTIVITY_STATE_SQL, [], 'reading the active-people counts');
    return storedScalars(row);
  }

  async counts(range: CountsRange): Promise<ReadonlyMap<number, PeriodCounts>> {
    return rangeCounts(await this.db.rows(ACTIVITY_RANGE_SQL, [range.zone, range.period, range.from, range.to], 'reading active-people counts'));
  }

  async inputs(afterSeq: number, toSeq: number, limit: number): Promise<ActivityInputs> {
    return this.db.snapshot('reading the inputs to count', async (rows) => {
      const events = activityEvents(await rows(ACTIVITY_EVENTS_SQL, [afterSeq, toSeq, limit]));
      const through = events.length === limit ? events[events.length - 1]!.seq : toSeq;
      return { events, resolutions: activityResolutions(await rows(ACTIVITY_RESOLUTIONS_SQL, [afterSeq, through])), through };
    });
  }

  write(changes: CounterChanges, from: ActivityMark, seq: number, owner: string): Promise<boolean> {
    const writes = activityWrites(changes, seq);
    return this.db.write('writing the active-people counts', owner, async (run) => {
      // the state row locked: a reset meanwhile waits for this write, or this write sees it
      const [stored] = await run<{ mark: string }>(`${ACTIVITY_MARK_SQL} FOR UPDATE`, []);
      if (stored?.mark !== markText(from)) return false;
      await run(ACTIVITY_STATE_WRITE_SQL, writes.state);
      for (const part of Object.keys(ACTIVITY) as ActivityPart[]) {
        const table = ACTIVITY[part];
        if (writes.deletes[part].length > 0) await run(bulkDeleteSql(table), [this.recordset(table.key, writes.deletes[part])]);
        if (writes.upserts[part].length > 0) await run(bulkUpsertSql(table), [this.recordset(activityColumns(table), writes.upserts[part])]);
      }
      return true;
    });
  }

  reset(owner: string): Promise<void> {
    return this.db.write('deleting the active-people counts', owner, async (run) => {
      for (const sql of ACTIVITY_RESET_SQL) await run(sql, []);
    });
  }

  /** Rows as the JSON array of objects `json_to_recordset` reads. */
  private recordset(columns: readonly string[], rows: readonly Value[][]): string {
    return JSON.stringify(
      rows.map((row) => {
        const record: Record<string, Value> = {};
        columns.forEach((column, i) => {
          const value = row[i] ?? null;
          record[column] = typeof value === 'string' ? this.db.text(value) : value;
        });
        return record;
      }),
    );
  }
}
