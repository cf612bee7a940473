/**
 * The active-people counts in the PostgreSQL read model: each part of a counter's changes written
 * with one statement (rows as a `json_to_recordset` parameter), all in one transaction with the
 * claim check.
 */
import type { CounterChanges } from '../activity/activity-counter.ts';
import { type ActivityReader, ActivityReads, type Rows } from './activity-reads.ts';
import {
  ACTIVITY,
  ACTIVITY_MARK_SQL,
  ACTIVITY_STATE_WRITE_SQL,
  type ActivityMark,
  type ActivityPart,
  type ActivityTable,
  activityColumns,
  activityWrites,
  markText,
} from './activity-sql.ts';
import { ACTIVITY_RESET_SQL, type Value } from './read-model-sql.ts';
import type { ActivityStore } from './read-model.ts';

/** What the counts need of the PostgreSQL store: its reads, a write transaction, and how a text column stores a string. */
export interface PostgresAccess extends ActivityReader {
  /** `work` in one transaction, once `owner` is found to hold the claim (XREF_FENCED otherwise). */
  write<T>(what: string, owner: string, work: (query: Rows) => Promise<T>): Promise<T>;
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

export class PostgresActivity extends ActivityReads implements ActivityStore {
  constructor(private readonly db: PostgresAccess) {
    super(db);
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
