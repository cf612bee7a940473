/**
 * The active-people counts in the SQLite read model: read on the store's connection, written as
 * statements per row in one IMMEDIATE transaction with the claim check (on the writer thread for
 * a file, like every write).
 */
import type { CounterChanges, CounterScalars, CounterState } from '../activity/activity-counter.ts';
import type { PeriodCounts } from '../activity/activity-series.ts';
import {
  ACTIVITY_COUNTS_SQL,
  ACTIVITY_EVENTS_SQL,
  ACTIVITY_KEYS_SQL,
  ACTIVITY_PENDING_SQL,
  ACTIVITY_MARK_SQL,
  ACTIVITY_PEOPLE_SQL,
  ACTIVITY_RANGE_SQL,
  ACTIVITY_RESOLUTIONS_SQL,
  ACTIVITY_STATE_SQL,
  type ActivityInputs,
  type ActivityMark,
  type CountsRange,
  type StateRow,
  activityEvents,
  activityResolutions,
  activityRuns,
  activityWrites,
  markOf,
  markText,
  rangeCounts,
  storedScalars,
  storedState,
} from './activity-sql.ts';
import { ACTIVITY_RESET_SQL } from './read-model-sql.ts';
import type { ActivityStore } from './read-model.ts';
import type { SqlRuns } from './sqlite-writer.ts';

/** What the counts need of the SQLite store: its reads, and a write transaction. */
export interface SqliteAccess {
  all(sql: string, ...params: unknown[]): unknown[];
  /** A read of several statements that sees one state of the database. */
  snapshot<T>(read: () => T): T;
  write(what: string, statements: SqlRuns, owner: string, expect?: { sql: string; value: unknown }): Promise<boolean>;
}

export class SqliteActivity implements ActivityStore {
  constructor(private readonly db: SqliteAccess) {}

  async load(): Promise<{ mark: ActivityMark; state?: CounterState }> {
    return this.db.snapshot(() => {
      const [row] = this.db.all(ACTIVITY_STATE_SQL) as StateRow[];
      const mark = markOf(row);
      const stored = storedScalars(row);
      if (stored === undefined) return { mark };
      const rows = {
        people: this.db.all(ACTIVITY_PEOPLE_SQL),
        counts: this.db.all(ACTIVITY_COUNTS_SQL),
        keys: this.db.all(ACTIVITY_KEYS_SQL),
        pending: this.db.all(ACTIVITY_PENDING_SQL),
      };
      return { mark, state: storedState(stored.scalars, rows) };
    });
  }

  async scalars(): Promise<{ seq: number; scalars: CounterScalars } | undefined> {
    return storedScalars((this.db.all(ACTIVITY_STATE_SQL) as StateRow[])[0]);
  }

  async counts(range: CountsRange): Promise<ReadonlyMap<number, PeriodCounts>> {
    return rangeCounts(this.db.all(ACTIVITY_RANGE_SQL, range.zone, range.period, range.from, range.to));
  }

  async inputs(afterSeq: number, toSeq: number, limit: number): Promise<ActivityInputs> {
    return this.db.snapshot(() => {
      const events = activityEvents(this.db.all(ACTIVITY_EVENTS_SQL, afterSeq, toSeq, limit));
      const through = events.length === limit ? events[events.length - 1]!.seq : toSeq;
      return { events, resolutions: activityResolutions(this.db.all(ACTIVITY_RESOLUTIONS_SQL, afterSeq, through)), through };
    });
  }

  write(changes: CounterChanges, from: ActivityMark, seq: number, owner: string): Promise<boolean> {
    return this.db.write('writing the active-people counts', activityRuns(activityWrites(changes, seq)), owner, { sql: ACTIVITY_MARK_SQL, value: markText(from) });
  }

  async reset(owner: string): Promise<void> {
    await this.db.write('deleting the active-people counts', ACTIVITY_RESET_SQL.map((sql) => ({ sql, rows: [[]] })), owner);
  }
}
