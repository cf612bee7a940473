/**
 * The reads of the active-people counts (ActivityStore's `load`, `scalars`, `counts`, `inputs`),
 * written once over what each adapter gives: one statement, or several seeing one state of the
 * database. The adapters (sqlite-activity.ts, postgres-activity.ts) add their writes.
 */
import type { CounterScalars, CounterState } from '../activity/activity-counter.ts';
import type { PeriodCounts } from '../activity/activity-series.ts';
import type { FeatureRules } from '../activity/event-features.ts';
import {
  ACTIVITY_COUNTS_SQL,
  ACTIVITY_EVENTS_SQL,
  ACTIVITY_KEYS_SQL,
  ACTIVITY_LAST_INPUT_SQL,
  ACTIVITY_PENDING_SQL,
  ACTIVITY_PEOPLE_SQL,
  ACTIVITY_RANGE_SQL,
  ACTIVITY_RESOLUTIONS_SQL,
  ACTIVITY_RETRACTIONS_SQL,
  ACTIVITY_STATE_SQL,
  type ActivityEventRow,
  type ActivityInputs,
  type ActivityMark,
  type ActivityResolutionRow,
  type CountsRange,
  type StateRow,
  type StoredCounts,
  activityEvents,
  activityResolutions,
  activityRetractions,
  markOf,
  rangeCounts,
  storedCounts,
  storedScalars,
  storedState,
} from './activity-sql.ts';

/** The rows of one statement (`?` placeholders). */
export type Rows = <R>(sql: string, params: readonly unknown[]) => Promise<R[]>;
/** The rows of one statement as arrays of their columns' values, in the statement's order (cheaper to make: the counting's inputs). */
export type Arrays = <R extends readonly unknown[]>(sql: string, params: readonly unknown[]) => Promise<R[]>;

export interface ActivityReader {
  readonly rows: Rows;
  /** Reads that see one state of the database (one read transaction). */
  snapshot<T>(read: (rows: Rows, arrays: Arrays) => Promise<T>): Promise<T>;
}

export abstract class ActivityReads {
  constructor(protected readonly reader: ActivityReader) {}

  /** The counter's image (undefined: nothing counted), where it is stored, and the counts as stored. */
  load(): Promise<{ mark: ActivityMark; state?: CounterState; counts?: StoredCounts }> {
    return this.reader.snapshot(async (rows) => {
      const [row] = await rows<StateRow>(ACTIVITY_STATE_SQL, []);
      const mark = markOf(row);
      const stored = storedScalars(row);
      if (stored === undefined) return { mark };
      const tables = {
        people: await rows(ACTIVITY_PEOPLE_SQL, []),
        counts: await rows(ACTIVITY_COUNTS_SQL, []),
        keys: await rows(ACTIVITY_KEYS_SQL, []),
        pending: await rows(ACTIVITY_PENDING_SQL, []),
      };
      return { mark, state: storedState(stored.scalars, tables), counts: storedCounts(tables.counts) };
    });
  }

  async scalars(): Promise<{ seq: number; scalars: CounterScalars } | undefined> {
    const [row] = await this.reader.rows<StateRow>(ACTIVITY_STATE_SQL, []);
    return storedScalars(row);
  }

  async counts(range: CountsRange): Promise<ReadonlyMap<number, PeriodCounts>> {
    return rangeCounts(await this.reader.rows(ACTIVITY_RANGE_SQL, [range.zone, range.period, range.from, range.to]));
  }

  async lastInput(): Promise<number> {
    const [row] = await this.reader.rows<{ seq: number }>(ACTIVITY_LAST_INPUT_SQL, []);
    return Number(row?.seq ?? 0);
  }

  inputs(afterSeq: number, toSeq: number, limit: number, features: FeatureRules): Promise<ActivityInputs> {
    return this.reader.snapshot(async (rows, arrays) => {
      const events = activityEvents(await arrays<ActivityEventRow>(ACTIVITY_EVENTS_SQL, [afterSeq, toSeq, limit]), features);
      const through = events.length === limit ? events[events.length - 1]!.seq : toSeq;
      const resolutions = activityResolutions(await arrays<ActivityResolutionRow>(ACTIVITY_RESOLUTIONS_SQL, [afterSeq, through, afterSeq, through]));
      const retractions = activityRetractions(await rows(ACTIVITY_RETRACTIONS_SQL, [afterSeq, through]), features);
      return { events, resolutions, retractions, through };
    });
  }
}
