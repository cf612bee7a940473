/**
 * The counting half of the active-people counts (activity-stage.ts decides how far), on the
 * projection's thread: the counter as the read model stores it, fed the inputs through a target
 * in log order (each input's event, then the resolutions it took back and decided, then its end)
 * as the projection handed them over in memory (activity-feed.ts), or from the read model's own
 * tables where the feed does not hold them, and its changes written chunk by chunk, each with its
 * position, in one transaction.
 */
import type { Logger } from 'pino';
import { ActivityCounter } from '../activity/activity-counter.ts';
import type { Config } from '../domain/config.ts';
import { isXrefError } from '../domain/errors.ts';
import type { ActivityFeed } from './activity-feed.ts';
import type { ActivityInputs, ActivityMark } from './activity-sql.ts';
import type { ReadModelStore } from './read-model.ts';

export interface CountingOptions {
  readonly store: ReadModelStore;
  /** The resolved config: its `activity`, junk rules and internal kinds. */
  readonly config: Config;
  /** Who writes (the claim's owner). */
  readonly owner: string;
  readonly logger: Logger;
  /** Inputs read from the database at a time, and counted in one write, at most. */
  readonly chunk: number;
  /** The inputs the projection has just written, handed over in memory: taken from there rather than read back, where it holds them. */
  readonly feed?: ActivityFeed;
}

/** How a round of counting ended: through its target (or stopped), or with the claim lost. */
export type CountingOutcome = 'counted' | 'fenced';

/** How a write ended: written, refused (the stored counts changed under it) or failed, or the claim lost. */
type WriteOutcome = 'written' | 'stale' | 'fenced';

/** Chunks' worth of inputs counted per write, at most. */
const WRITE_EVERY = 5;
/** While the counting follows inputs still being written, its counts are written this often at most (and every WRITE_EVERY chunks' worth). */
const WRITE_MS = 1000;

export class ActivityCounting {
  private counter: ActivityCounter;
  /** The last input written, the last a write was started with, and the last the counter took. */
  private seq = 0;
  private taken = 0;
  private counted = 0;
  /** When the last write started. */
  private wroteAt = 0;
  /** Where the counts are stored: what a write expects to find. */
  private mark: ActivityMark = { generation: 0, seq: 0 };
  /** A read failed: the counter holds what was not written, and is loaded again before it counts on. */
  private stale = false;
  /** The write under way, and whom it tells. */
  private writing: Promise<WriteOutcome> | undefined;
  private written: (seq: number) => void = () => {};
  /** A write was refused for the claim: it writes nothing more. */
  private fenced = false;
  private quiet = false;

  private constructor(private readonly options: CountingOptions) {
    this.counter = new ActivityCounter(options.config);
  }

  /** The counts the read model holds (counted again from the start when they were counted under another config). */
  static async open(options: CountingOptions): Promise<ActivityCounting> {
    const counting = new ActivityCounting(options);
    await counting.load();
    return counting;
  }

  /** The last input counted and written. */
  get position(): number {
    return this.seq;
  }

  /**
   * Counts the inputs through `target`, until `stopped()`, writing them chunk by chunk and calling
   * `written` after each write. The last write may still be under way when it resolves (counting
   * goes on beside it): the next call waits for it before it writes, and so does `close`.
   * `caughtUp`: the target is the end of the log, so what is counted is written now; otherwise
   * (more inputs to come) a second after the last write at the soonest.
   */
  async advance(target: number, written: (seq: number) => void, stopped: () => boolean, caughtUp = true): Promise<CountingOutcome> {
    this.written = written;
    if (this.fenced) return 'fenced';
    if (this.stale) await this.load();
    // read chunk by chunk, written every WRITE_EVERY chunks' worth (a row touched in several is
    // written once) and at the target; each write runs while the next chunks are read and counted
    const { store, chunk, feed } = this.options;
    try {
      while (!stopped() && this.counted < target) {
        const inputs = feed?.inputs(this.counted, target, chunk) ?? (await store.activity.inputs(this.counted, target, chunk, this.counter.features));
        this.count(inputs);
        this.counted = inputs.through;
        if (this.counted - this.taken < WRITE_EVERY * chunk) continue;
        const before = await this.writeCounted();
        if (before === 'fenced') return before;
        // loaded again: the position says where counting goes on from
        if (before === 'stale') return 'counted';
      }
      if (this.counted === this.taken || !(caughtUp || stopped() || performance.now() - this.wroteAt >= WRITE_MS)) return this.settle();
      return (await this.writeCounted()) === 'fenced' ? 'fenced' : 'counted';
    } catch (error) {
      // a read failed with counts not written: they are counted again from what is stored
      await this.finish();
      if (this.counted !== this.seq) this.stale = true;
      throw error;
    }
  }

  /** Waits for the write under way: `fenced` once the claim was lost (loaded again if the write was refused). */
  async settle(): Promise<CountingOutcome> {
    await this.finish();
    return this.fenced ? 'fenced' : 'counted';
  }

  /** Loads the stored counts again (they were deleted with the events or resolutions they came from). */
  async reload(): Promise<void> {
    await this.finish();
    await this.load();
  }

  /** Writes what is counted and waits for it. */
  async close(): Promise<void> {
    if (this.counted !== this.taken && !this.fenced && !this.stale) await this.writeCounted();
    await this.finish();
  }

  /** Starts writing what is counted, once the write under way is done: how that one ended. */
  private async writeCounted(): Promise<WriteOutcome> {
    const before = await this.finish();
    if (before === 'written') {
      [this.taken, this.wroteAt] = [this.counted, performance.now()];
      this.writing = this.write(this.counted);
    }
    return before;
  }

  /** The write under way, waited for (none: `written`); refused or failed, the stored counts are loaded again. */
  private async finish(): Promise<WriteOutcome> {
    const writing = this.writing;
    if (writing === undefined) return 'written';
    this.writing = undefined;
    const outcome = await writing;
    if (outcome === 'fenced') this.fenced = true;
    // what was counted and not written is counted again, from what is stored
    if (outcome === 'stale') await this.load();
    return outcome;
  }

  private async load(): Promise<void> {
    const { store, config, owner, logger } = this.options;
    const loaded = await store.activity.load();
    [this.counter, this.seq, this.taken, this.counted, this.mark, this.stale] = [new ActivityCounter(config), 0, 0, 0, loaded.mark, false];
    if (loaded.state === undefined) return;
    try {
      const counter = ActivityCounter.restore(config, loaded.state);
      // what forgotten people counted stays counted, their rows gone
      if (loaded.counts !== undefined) counter.adoptCounts(loaded.counts);
      [this.counter, this.seq, this.taken, this.counted] = [counter, loaded.mark.seq, loaded.mark.seq, loaded.mark.seq];
    } catch (error) {
      if (!isXrefError(error, 'XREF_INVALID_CONFIG')) throw error;
      logger.warn({ reason: error.message }, 'the active-people counts were counted under another activity config: counting them again from the start');
      await store.activity.reset(owner);
      this.stale = true;
    }
  }

  /**
   * Feeds the counter the inputs in log order: each input's event, then the resolutions it took
   * back (an unlink's: each comes before the event is placed again, so they go first), then those
   * it decided, then its end.
   */
  private count(inputs: ActivityInputs): void {
    const { events, resolutions, retractions } = inputs;
    const counter = this.counter;
    let [e, r, t] = [0, 0, 0];
    while (e < events.length || r < resolutions.length || t < retractions.length) {
      const seq = Math.min(events[e]?.seq ?? Infinity, resolutions[r]?.decidedSeq ?? Infinity, retractions[t]?.seq ?? Infinity);
      const event = events[e];
      if (event !== undefined && event.seq === seq) {
        counter.inputOf(seq, event.features, event.timeMs);
        e++;
      }
      for (; t < retractions.length && retractions[t]!.seq === seq; t++) {
        const taken = retractions[t]!;
        counter.retractedOf(seq, taken.eventSeq, taken.user, taken.features, taken.timeMs);
      }
      for (; r < resolutions.length && resolutions[r]!.decidedSeq === seq; r++) counter.resolved(seq, resolutions[r]!.eventSeq, resolutions[r]!.user);
      counter.endOfInput(seq);
    }
  }

  /** Writes the changes through `seq` (taken now): `stale` when the stored counts changed under it, or the write failed. */
  private async write(seq: number): Promise<WriteOutcome> {
    const { store, owner, logger } = this.options;
    const changes = this.counter.takeChanges();
    try {
      if (await store.activity.write(changes, this.mark, seq, owner)) {
        [this.seq, this.mark] = [seq, { generation: this.mark.generation, seq }];
        if (this.quiet) logger.info({ seq }, 'the active-people counts are written again');
        this.quiet = false;
        this.written(seq);
        return 'written';
      }
      logger.info({ expected: this.mark }, 'the active-people counts changed under the projection (deleted with their stream): loading them again');
    } catch (error) {
      if (isXrefError(error, 'XREF_FENCED')) return 'fenced';
      if (!this.quiet) logger.warn({ err: error }, 'the active-people counts could not be written: counting again from what is stored');
      this.quiet = true;
    }
    return 'stale';
  }
}
