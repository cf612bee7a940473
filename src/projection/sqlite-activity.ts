/**
 * The active-people counts in the SQLite read model: read on the store's connection
 * (activity-reads.ts), written as statements per row in one IMMEDIATE transaction with the claim
 * check (on the writer thread for a file, like every write).
 */
import type { CounterChanges } from '../activity/activity-counter.ts';
import { type ActivityReader, ActivityReads } from './activity-reads.ts';
import { ACTIVITY_MARK_SQL, type ActivityMark, activityRuns, activityWrites, markText } from './activity-sql.ts';
import { ACTIVITY_RESET_SQL } from './read-model-sql.ts';
import type { ActivityStore } from './read-model.ts';
import type { SqlRuns } from './sqlite-writer.ts';

/** What the counts need of the SQLite store: its reads, and a write transaction. */
export interface SqliteAccess extends ActivityReader {
  write(what: string, statements: SqlRuns, owner: string, expect?: { sql: string; value: unknown }): Promise<boolean>;
}

export class SqliteActivity extends ActivityReads implements ActivityStore {
  constructor(private readonly db: SqliteAccess) {
    super(db);
  }

  write(changes: CounterChanges, from: ActivityMark, seq: number, owner: string): Promise<boolean> {
    return this.db.write('writing the active-people counts', activityRuns(activityWrites(changes, seq)), owner, { sql: ACTIVITY_MARK_SQL, value: markText(from) });
  }

  async reset(owner: string): Promise<void> {
    await this.db.write('deleting the active-people counts', ACTIVITY_RESET_SQL.map((sql) => ({ sql, rows: [[]] })), owner);
  }
}
