/**
 * The active-people counts, kept by the projection (docs/activity.md, the streaming counts). The
 * counter is fed in log order what the projection has written (activity-counting.ts: handed over
 * in memory, activity-feed.ts, or read back from the read model). It may take input S only once
 * every resolution decided by inputs up to S is written, so each round the stage learns how far
 * that is:
 * 1. the groups stream's creation time G, then how far the engine has decided since G (F: its
 *    ack floor or checkpoint, src/nats/engine-progress.ts), then where the groups stream ends (L);
 * 2. once the groups projection has written through L (in the incarnation G), every resolution
 *    decided by an input up to F is in the read model: the counter takes the inputs up to
 *    min(F, what the events projection wrote), and writes its changes with its position in one
 *    transaction. The same log gives the same counts, frozen ones included, however the
 *    projection was split, stopped or rebuilt.
 * While the projection catches up, L is reached only at the end; before it, the `stored` of the
 * `Xref-Resolution` headers written (every input up to it had all its outputs stored before that
 * message was published) is such an F, with the groups position as its L.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.ts';
import { isXrefError } from '../domain/errors.ts';
import { engineDecidedThrough } from '../nats/engine-progress.ts';
import { STREAMS } from '../nats/subjects.ts';
import { ActivityCounting } from './activity-counting.ts';
import type { ActivityFeed } from './activity-feed.ts';
import type { ProjectedStream, ReadModelStore, StreamPosition } from './read-model.ts';
import { incarnationNow } from './stream-projector.ts';

export interface ActivityStageOptions {
  readonly store: ReadModelStore;
  /** The resolved config: its `activity`, junk rules and internal kinds. */
  readonly config: Config;
  readonly jsm: JetStreamManager;
  /** Who writes (the claim's owner). */
  readonly owner: string;
  readonly logger: Logger;
  /** The projection's positions now. */
  positions(): ReadonlyMap<ProjectedStream, StreamPosition>;
  /** Whether the projection reads the audit stream (whose suppressed events it then waits to have deleted). */
  readonly audited: boolean;
  /** Inputs read from the database at a time, and counted in one write, at most. */
  readonly chunk: number;
  /** How often it looks for inputs to count. */
  readonly everyMs: number;
  /** The inputs the projection writes, handed over in memory (given every batch written since before the streams were read). */
  readonly feed: ActivityFeed;
  /** The counts were written through an input. */
  written(seq: number): void;
  /** A write was refused: the claim is held by another projection. */
  fenced(why: string): void;
  /** The counting stopped for good (its thread died: a bug, not an outage). */
  failed(error: Error): void;
}

/**
 * How far the engine had decided, seen before the groups stream ended at `groupsEnd` (of
 * incarnation `created`) and the audit stream at `auditEnd` (of `auditCreated`; 0: none).
 */
interface Floor {
  readonly decided: number;
  readonly groupsEnd: number;
  readonly created: string;
  readonly auditEnd: number;
  readonly auditCreated: string;
}

/**
 * While the counting follows inputs still being read (catching up), the next round starts this
 * long after the last one did at the soonest: each round asks the server how far the engine has
 * decided (half a dozen requests), and following every batch written, a round at a time, cost
 * more than the counting did.
 */
const CATCHING_UP_MS = 100;

export class ActivityStage {
  /** Floors seen, oldest first, not yet known to be written through. */
  private floors: Floor[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The next round, while catching up. */
  private soon: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** The stored counts were deleted: loaded again at the next round. */
  private deleted = false;
  private stopped = false;
  private quiet = false;

  private constructor(
    private readonly options: ActivityStageOptions,
    private readonly counting: ActivityCounting,
  ) {}

  /** Loads the counts the read model holds and starts counting. */
  static async start(options: ActivityStageOptions): Promise<ActivityStage> {
    const { store, config, owner, logger, chunk, feed } = options;
    const counting = await ActivityCounting.open({ store, config, owner, logger, chunk, feed });
    const stage = new ActivityStage(options, counting);
    stage.timer = setInterval(() => stage.wake(), options.everyMs);
    stage.timer.unref();
    return stage;
  }

  /** The last input counted. */
  get position(): number {
    return this.counting.position;
  }

  /** Looks for inputs to count now (one round at a time; one asked during a round runs after it). */
  wake(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.again = false;
    this.running = this.round()
      .catch((error: unknown) => {
        if (isXrefError(error, 'XREF_INTERNAL')) {
          this.stopped = true;
          this.options.failed(error);
          return;
        }
        if (!this.quiet) this.options.logger.warn({ err: error }, 'the active-people counts could not move on: trying again');
        this.quiet = true;
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) this.wake();
      });
  }

  /** The counts were deleted with the events or resolutions they were made from: they are loaded again and counted anew. */
  countsDeleted(): void {
    this.deleted = true;
    this.wake();
  }

  /** Stops counting once the round under way is written. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    await this.running;
    await this.counting.close();
  }

  private async round(): Promise<void> {
    const started = performance.now();
    if (this.deleted) {
      this.deleted = false;
      this.floors = [];
      await this.counting.reload();
      this.options.written(this.counting.position);
    }
    const events = this.options.positions().get('in');
    if (events === undefined || events.seq <= this.counting.position) return;
    const target = Math.min(await this.decidedThrough(), events.seq);
    if (target <= this.counting.position) return;
    // every input of the log counted (none left to read): written now; else (catching up) at most once a second
    const caughtUp = target === events.seq && events.seq >= ((await incarnationNow(this.options.jsm, STREAMS.in))?.lastSeq ?? 0);
    const outcome = await this.counting.advance(target, (seq) => this.options.written(seq), () => this.stopped, caughtUp);
    this.quiet = false;
    // it moved on: more may be there already, so the next round runs at once, or soon while catching up
    if (caughtUp) this.again = true;
    else if (this.soon === undefined) {
      this.soon = setTimeout(() => {
        this.soon = undefined;
        this.wake();
      }, Math.max(0, started + CATCHING_UP_MS - performance.now()));
      this.soon.unref();
    }
    if (outcome === 'fenced') {
      this.stopped = true;
      this.options.fenced('the active-people counts were not written: the claim on the read model is lost');
    }
  }

  /**
   * The input through which every resolution is in the read model, and every suppressed event
   * the engine dropped deleted (docs/read-model.md: the projection may have read it from XREF_IN
   * before the engine erased it; its audit record deletes it): the newest floor whose groups end
   * and audit end the groups and audit projections have written, in the same incarnations of the
   * streams. One new floor is seen per round.
   */
  private async decidedThrough(): Promise<number> {
    const { jsm, positions } = this.options;
    // what the groups projection has written is read before the streams are looked at: every
    // output of the inputs up to its `stored` is in what it wrote, or in the audit stream's end seen after
    const headed = positions().get('groups');
    const before = await incarnationNow(jsm, STREAMS.groups);
    const decided = await engineDecidedThrough(jsm, before === undefined ? 0 : Date.parse(before.created));
    const after = await incarnationNow(jsm, STREAMS.groups);
    const audit = this.options.audited ? await incarnationNow(jsm, STREAMS.audit) : undefined;
    const auditFloor = { auditEnd: audit?.lastSeq ?? 0, auditCreated: audit?.created ?? '' };
    const auditWritten = (floor: Floor) => {
      const at = positions().get('audit');
      return floor.auditEnd === 0 || (at !== undefined && at.created === floor.auditCreated && at.seq >= floor.auditEnd);
    };
    // no groups stream (yet): nothing was resolved, so the engine's floor (and the audit stream) is all there is to wait for
    if (before === undefined && after === undefined) this.floors.push({ decided, groupsEnd: 0, created: '', ...auditFloor });
    else if (before !== undefined && after !== undefined && before.created === after.created) {
      this.floors.push({ decided, groupsEnd: after.lastSeq, created: after.created, ...auditFloor });
    }
    // while the projection catches up, the engine's floor is reached only at the groups stream's
    // end: the headers written tell how far is safe before that
    if (headed?.stored !== undefined && headed.stored > this.counting.position && headed.created === after?.created) {
      this.floors.push({ decided: headed.stored, groupsEnd: headed.seq, created: headed.created, ...auditFloor });
    }
    const groups = positions().get('groups');
    let safe = 0;
    this.floors = this.floors.filter((floor) => {
      if (floor.created !== (after?.created ?? '') || floor.auditCreated !== auditFloor.auditCreated) return false;
      const written = (floor.groupsEnd === 0 || (groups !== undefined && groups.created === floor.created && groups.seq >= floor.groupsEnd)) && auditWritten(floor);
      if (written) safe = Math.max(safe, floor.decided);
      return !written;
    });
    return safe;
  }
}
