/**
 * The counting's inputs handed over in memory (docs/activity.md, the streaming counts): each
 * batch the projection has just written gives its events' features and its resolutions here, so
 * that the counting takes them without reading back what was just written. It holds exactly what
 * the read model holds of every input after its `bound` not handed out yet: the rows written
 * since, none deleted since. Inputs up to the bound (written before the projection started, or
 * before something the feed does not follow: a deletion, a retraction, a row not stored, a reset)
 * and those handed out already (counted again after a write was refused) are read from the
 * database. Pure: no I/O.
 */
import type { ActivityEvent, ActivityInputs, ActivityResolution } from './activity-sql.ts';
import type { ProjectionBatch } from './read-model.ts';

/** Events and resolutions held at most: past them (the counts far behind the streams), the feed lets go and the database is read. */
const HELD = 200_000;

/** Text keys in the database's order (bytewise UTF-8: SQLite's, and PostgreSQL's COLLATE "C"), not JavaScript's (UTF-16 units). */
const bytewise = (a: string, b: string): number => (a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b)));

/** A queue whose first `taken` rows are handed out: cut once they are most of it (past a few thousand). */
const compacted = <T>(rows: T[], taken: number): [T[], number] => (taken > 4096 && taken * 2 > rows.length ? [rows.slice(taken), 0] : [rows, taken]);

/** The order the counter takes a range's resolutions in (ACTIVITY_RESOLUTIONS_SQL's). */
function inCountingOrder(a: ActivityResolution, b: ActivityResolution): number {
  return a.decidedSeq - b.decidedSeq || a.eventSeq - b.eventSeq || bytewise(a.user.kind, b.user.kind) || bytewise(a.user.id, b.user.id);
}

export class ActivityFeed {
  /** The highest input any batch written so far names. */
  private seen = 0;
  /** The last input handed out. */
  private served = 0;
  private events: ActivityEvent[] = [];
  /** The first event not taken yet. */
  private head = 0;
  private resolutions: ActivityResolution[] = [];
  /** The first resolution not taken yet, and whether those from it on are in the order of the inputs that decided them (as the groups stream has them). */
  private next = 0;
  private inOrder = true;

  /** `bound`: the last input the read model holds rows of before the feed is given batches (ActivityStore.lastInput); they are read from there. */
  constructor(private bound: number) {}

  /**
   * A batch is written: `complete` when every event and resolution of it was stored (none was
   * there already). What it deletes or takes back, and rows not stored, the feed does not follow:
   * everything written so far is read from the database from now on.
   */
  written(batch: ProjectionBatch, complete: boolean): void {
    const after = this.bound;
    for (const row of batch.events) {
      this.see(row.seq);
      if (row.seq > after && row.counted !== undefined) this.events.push({ seq: row.seq, timeMs: row.timeMs, features: row.counted });
    }
    for (const row of batch.resolutions) {
      this.see(row.decidedSeq);
      if (row.decidedSeq <= after) continue;
      const last = this.resolutions[this.resolutions.length - 1];
      if (last !== undefined && last.decidedSeq > row.decidedSeq) this.inOrder = false;
      this.resolutions.push({ decidedSeq: row.decidedSeq, eventSeq: row.eventSeq, user: row.user });
    }
    for (const row of batch.retractions ?? []) this.see(row.seq);
    for (const row of batch.audit) this.see(row.eventSeq);
    const followed = complete && [batch.retractions, batch.forgets, batch.suppressed, batch.unlinks].every((rows) => (rows?.length ?? 0) === 0);
    if (!followed || this.events.length - this.head + this.resolutions.length - this.next > HELD) this.letGo();
  }

  /** Rows were deleted under the feed (a stream reset): everything written so far is read from the database. */
  letGo(): void {
    this.bound = Math.max(this.bound, this.seen);
    this.events = [];
    this.head = 0;
    this.resolutions = [];
    this.next = 0;
    this.inOrder = true;
  }

  /**
   * The inputs after `afterSeq` through `toSeq` (every one written: the stage's target), `limit`
   * events at most, as the database would give them; undefined when some of them are to be read
   * from the database (at or before the bound, or handed out already).
   */
  inputs(afterSeq: number, toSeq: number, limit: number): ActivityInputs | undefined {
    if (afterSeq < this.bound || afterSeq < this.served) return undefined;
    while (this.head < this.events.length && this.events[this.head]!.seq <= afterSeq) this.head++;
    let end = this.head;
    while (end < this.events.length && end - this.head < limit && this.events[end]!.seq <= toSeq) end++;
    const events = this.events.slice(this.head, end);
    const through = events.length === limit ? events[events.length - 1]!.seq : toSeq;
    [this.head, this.served] = [end, through];
    [this.events, this.head] = compacted(this.events, this.head);
    return { events, resolutions: this.resolutionsThrough(afterSeq, through), retractions: [], through };
  }

  /** The resolutions decided after `afterSeq` through `through`, in counting order, taken. */
  private resolutionsThrough(afterSeq: number, through: number): ActivityResolution[] {
    if (!this.inOrder) {
      [this.resolutions, this.next, this.inOrder] = [this.resolutions.slice(this.next).sort((a, b) => a.decidedSeq - b.decidedSeq), 0, true];
    }
    const rows = this.resolutions;
    let from = this.next;
    while (from < rows.length && rows[from]!.decidedSeq <= afterSeq) from++;
    let end = from;
    while (end < rows.length && rows[end]!.decidedSeq <= through) end++;
    [this.resolutions, this.next] = compacted(rows, end);
    return rows.slice(from, end).sort(inCountingOrder);
  }

  private see(seq: number): void {
    if (seq > this.seen) this.seen = seq;
  }
}
