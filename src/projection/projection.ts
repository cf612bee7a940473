/**
 * The projection: fills the read model from XREF_IN, XREF_GROUPS, XREF_UNMATCHED, XREF_AUDIT and
 * XREF_ERRORS, one more consumer of each on the durable-consumer runtime (src/runtime), with no
 * publisher. Each message becomes rows (rows.ts); each checkpoint is one database transaction
 * holding the rows read since the last and the stream's position, so a crash or a redelivery
 * changes nothing and a restart resumes right after what is written. One projection writes into a
 * database at a time (its claim); others stand by. A stream deleted and made again
 * (`xref replay --republish`) is noticed and read anew (stream-projector.ts).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { FeatureRules } from '../activity/event-features.ts';
import type { Config } from '../domain/config.ts';
import { ControlStore } from '../nats/control-store.ts';
import { engineDecidedSinceGroups } from '../nats/engine-progress.ts';
import { NatsWaits } from '../nats/retry.ts';
import type { Settings } from '../settings.ts';
import { ActivityFeed } from './activity-feed.ts';
import type { ActivityStage } from './activity-stage.ts';
import { StoreClaim, projectionOwner } from './claim.ts';
import { ControlSettler } from './forget.ts';
import { PROJECTED_STREAMS, type ProjectedStream, type ReadModelStore, type StreamPosition } from './read-model.ts';
import { type InputDecoder, type ProjectorContext, StreamProjector, type StreamStats, incarnationNow } from './stream-projector.ts';
import { PROJECTED_STREAM_NAMES, projectionConsumer } from './stream-identity.ts';

export type { InputDecoder, StreamStats };

/** How often the streams are looked at, to notice one deleted or made again while nothing flows. */
const CHECK_MS = 2000;
/** A projection's durable consumer left unused this long (its database gone) is removed by the server. */
const INACTIVE_THRESHOLD_MS = 60 * 60_000;

export interface ProjectionOptions {
  readonly nc: NatsConnection;
  readonly store: ReadModelStore;
  /** projectionBatch, projectionMs; leaseTtlMs is the claim's TTL. */
  readonly settings: Pick<Settings, 'projectionBatch' | 'projectionMs' | 'leaseTtlMs'>;
  readonly logger: Logger;
  /**
   * How an XREF_IN message is read: as the engine reads it, `inputDecoder(config)` with the same
   * config, so that an input the engine rejects is no event here either (its error record comes
   * through XREF_ERRORS).
   */
  readonly decode: InputDecoder;
  /** Who writes (default: this process, made unique): the claim's owner. */
  readonly owner?: string;
  /** The streams projected (default all five). */
  readonly streams?: readonly ProjectedStream[];
  /** How often the streams are looked at (default 2 s). */
  readonly checkMs?: number;
  /**
   * Counts active people (docs/activity.md) with this resolved config (its `activity`, junk rules
   * and internal kinds), from the events and resolutions projected; undefined: not counted.
   */
  readonly activity?: Config;
  /** How often the counts look for inputs to count besides each batch of events or resolutions written (default 250 ms). */
  readonly activityMs?: number;
  /** Called once if processing stops for good (a bug; outages of NATS or the database are waited out). */
  readonly onFailure?: (error: Error) => void;
}

export type ProjectionRole = 'standby' | 'active' | 'stopped';

/** Where a stream ends: its last sequence, in the incarnation created then. */
export interface StreamEnd {
  readonly seq: number;
  readonly created: string;
}

/**
 * The projection of every stream into one read model, while it holds the database's claim. Until
 * it can claim (another projection writes into the database), it stands by and tries again; a
 * claim lost fences its consumers (the store refuses their writes) and it stands by again.
 */
export class Projection {
  role: ProjectionRole = 'standby';
  private readonly claim: StoreClaim;
  private readonly streams: readonly ProjectedStream[];
  private readonly waits: NatsWaits;
  private readonly now = new Map<ProjectedStream, StreamPosition>();
  private readonly listeners = new Set<(position: StreamPosition) => void>();
  private projectors: StreamProjector[] = [];
  private stage: ActivityStage | undefined;
  private feed: ActivityFeed | undefined;
  private activitySeq = 0;
  private readonly activityListeners = new Set<(seq: number) => void>();
  private readonly counted = new Map<ProjectedStream, StreamStats>();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private failure: Error | undefined;
  private readonly loop: Promise<void>;
  /** Ends the wait of the running holding (the claim lost, or a stop). */
  private endHolding: ((why: string) => void) | undefined;
  private wakePause: (() => void) | undefined;

  private constructor(
    private readonly options: ProjectionOptions,
    /** The durable consumers' name: after the database. */
    readonly consumer: string,
  ) {
    const { store, settings, logger } = options;
    this.streams = options.streams ?? PROJECTED_STREAMS;
    for (const stream of this.streams) this.counted.set(stream, { inputs: 0, noRow: 0, batches: 0, resets: 0, readWhole: 0 });
    this.waits = new NatsWaits(options.nc);
    this.claim = new StoreClaim(store, options.owner ?? projectionOwner(), settings.leaseTtlMs, logger.child({ component: 'claim' }), (why) => this.endHolding?.(why));
    this.loop = this.run();
  }

  /** Starts projecting (or standing by) in the background: resolves once the database is known. */
  static async start(options: ProjectionOptions): Promise<Projection> {
    return new Projection(options, projectionConsumer(await options.store.instanceId()));
  }

  /** Who writes (the claim's owner). */
  get owner(): string {
    return this.claim.owner;
  }

  /** A failure that stopped the projection for good, if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Each stream's position in the read model, as this projection found and wrote it. */
  get positions(): ReadonlyMap<ProjectedStream, StreamPosition> {
    return this.now;
  }

  /** The last XREF_IN input written (0: none). */
  get watermark(): number {
    return this.now.get('in')?.seq ?? 0;
  }

  /** The last input the active-people counts are written through (0: none, or not counted). */
  get activityPosition(): number {
    return this.activitySeq;
  }

  /** Per stream: messages read, those that gave no row, batches written, resets (since the start). */
  get stats(): ReadonlyMap<ProjectedStream, StreamStats> {
    return this.counted;
  }

  /**
   * Calls `listener` whenever a batch is written, with the stream's position now (seq 0: its rows
   * were deleted, to be read anew), and for each position found at the start of a holding;
   * returns how to stop.
   */
  onWritten(listener: (position: StreamPosition) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves true once `stream` is written through `seq`, or false after `timeoutMs`. */
  reached(stream: ProjectedStream, seq: number, timeoutMs = Infinity): Promise<boolean> {
    return this.until(stream, (position) => position.seq >= seq, timeoutMs);
  }

  /** The end of each projected stream now: its last sequence and creation time (seq 0 for one that does not exist). */
  async ends(): Promise<ReadonlyMap<ProjectedStream, StreamEnd>> {
    const jsm = await jetstreamManager(this.options.nc);
    const ends = await Promise.all(
      this.streams.map(async (role) => {
        const now = await incarnationNow(jsm, PROJECTED_STREAM_NAMES[role].stream);
        return [role, { seq: now?.lastSeq ?? 0, created: now?.created ?? '' }] as const;
      }),
    );
    return new Map(ends);
  }

  /**
   * Resolves once every stream is written through its end as of this call (`ends`), in that
   * incarnation of the stream (a position of a stream since made again does not count): what a
   * rebuild and tests wait for. Never, while this projection stands by.
   */
  async caughtUp(ends?: ReadonlyMap<ProjectedStream, StreamEnd>): Promise<void> {
    const targets = ends ?? (await this.ends());
    await Promise.all(
      [...targets].map(([stream, end]) => (end.seq === 0 ? undefined : this.until(stream, (position) => position.created === end.created && position.seq >= end.seq))),
    );
  }

  /**
   * Resolves once the active-people counts are written through every input the engine has
   * decided and the events projection has written, as of this call (after `caughtUp`, for a
   * rebuild); at once when they are not counted. Never, while this projection stands by.
   */
  async activityCaughtUp(): Promise<number> {
    if (this.options.activity === undefined) return 0;
    const target = Math.min(await engineDecidedSinceGroups(await jetstreamManager(this.options.nc)), this.watermark);
    if (this.activitySeq >= target) return this.activitySeq;
    await new Promise<void>((resolve) => {
      const listener = (seq: number) => {
        if (seq < target) return;
        this.activityListeners.delete(listener);
        resolve();
      };
      this.activityListeners.add(listener);
    });
    return this.activitySeq;
  }

  /** Resolves true once the position of `stream` satisfies `done`, or false after `timeoutMs`. */
  private until(stream: ProjectedStream, done: (position: StreamPosition) => boolean, timeoutMs = Infinity): Promise<boolean> {
    const now = this.now.get(stream);
    if (now !== undefined && done(now)) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const off = this.onWritten((position) => {
        if (position.stream !== stream || !done(position)) return;
        clearTimeout(timer);
        off();
        resolve(true);
      });
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          off();
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  /** Stops reading, writes what was read, and gives the claim up. */
  async stop(): Promise<void> {
    if (this.role === 'stopped') return;
    this.stopping = true;
    this.endHolding?.('stopping');
    this.wakePause?.();
    await this.loop;
    await this.letGo();
    await this.claim.release();
    this.role = 'stopped';
  }

  private async run(): Promise<void> {
    const { logger, settings, store } = this.options;
    let standingBy = false;
    let claimFailed = false;
    while (!this.stopping) {
      let claimed = false;
      try {
        claimed = await this.claim.tryClaim();
        claimFailed = false;
      } catch (error) {
        if (!claimFailed) logger.warn({ err: error }, 'the read model cannot be claimed (the database away?): trying again');
        claimFailed = true;
      }
      if (!claimed) {
        if (!standingBy && !claimFailed) {
          standingBy = true;
          logger.info({ ttlMs: settings.leaseTtlMs }, `standby: another projection writes into this read model (${store.dialect}); taking over once its claim lapses`);
        }
        await this.pause(Math.min(1000, settings.leaseTtlMs / 4));
        continue;
      }
      if (standingBy) logger.info('taking over: the other projection\'s claim on the read model lapsed');
      standingBy = false;
      const ended = new Promise<string>((resolve) => (this.endHolding = resolve));
      try {
        await this.hold();
      } catch (error) {
        logger.warn({ err: error }, 'the projection could not start (the database away?): trying again');
        await this.letGo();
        await this.pause(Math.min(1000, settings.leaseTtlMs / 4));
        continue;
      }
      if (this.stopping) return;
      this.role = 'active';
      const why = await ended;
      if (why === 'stopping' || this.stopping) return;
      logger.warn({ why }, 'the claim on the read model was lost: stopped writing, standing by');
      await this.letGo(why);
      this.role = 'standby';
    }
  }

  /** The claim is held: each stream's consumer starts from what the read model holds of it. */
  private async hold(): Promise<void> {
    const { nc, store, settings, logger, decode } = this.options;
    const positions = await store.positions();
    this.now.clear();
    // what the read model holds already counts as written (for those waiting on a position)
    for (const position of positions.values()) this.written(position);
    const jsm = await jetstreamManager(nc);
    const controls = new ControlSettler({
      store,
      tombstones: new ControlStore(nc),
      jsm,
      waits: this.waits,
      logger: logger.child({ component: 'control' }),
      streams: this.streams,
      written: (stream) => this.now.get(stream),
      nudge: (stream) => void this.projectors.find((p) => p.role === stream)?.check(),
    });
    // the counts are handed every batch written from now on (activity-feed.ts); what the read model holds already is read from it
    const feed = this.options.activity === undefined ? undefined : new ActivityFeed(await store.activity.lastInput());
    this.feed = feed;
    const ctx: ProjectorContext = {
      js: jetstream(nc),
      jsm,
      waits: this.waits,
      store,
      owner: this.claim.owner,
      claim: this.claim.holding(),
      consumer: this.consumer,
      batch: settings.projectionBatch,
      batchMs: settings.projectionMs,
      inactiveThresholdMs: INACTIVE_THRESHOLD_MS,
      decode,
      features: this.options.activity === undefined ? undefined : new FeatureRules(this.options.activity),
      logger,
      written: (position) => this.written(position),
      reset: (stream) => this.written({ stream, seq: 0, created: '' }),
      fenced: (why) => this.endHolding?.(why),
      failed: (error) => this.fail(error),
      settle: (records, audit, giveUp) => controls.settle(records, audit, giveUp),
      forgotten: (batch) => void controls.written(batch.forgets ?? []),
      ...(feed === undefined ? {} : { committed: (batch, complete) => feed.written(batch, complete) }),
    };
    logger.info({ consumer: this.consumer, positions: Object.fromEntries([...this.now].map(([s, p]) => [s, p.seq])) }, 'projecting into the read model');
    this.projectors = this.streams.map((stream) => new StreamProjector(stream, ctx, positions.get(stream), this.counted.get(stream)!));
    await Promise.all(this.projectors.map((p) => p.check()));
    const activity = this.options.activity;
    if (activity !== undefined && feed !== undefined) {
      // loaded only when counting (with its date library)
      const { ActivityStage } = await import('./activity-stage.ts');
      this.stage = await ActivityStage.start({
        store,
        config: activity,
        jsm: ctx.jsm,
        owner: this.claim.owner,
        logger: logger.child({ component: 'activity' }),
        positions: () => this.now,
        audited: this.streams.includes('audit'),
        chunk: settings.projectionBatch,
        feed,
        everyMs: this.options.activityMs ?? 250,
        written: (seq) => this.activityWritten(seq),
        fenced: (why) => this.endHolding?.(why),
        failed: (error) => this.fail(error),
      });
      // what the read model holds already counts as written (for those waiting on it)
      this.activityWritten(this.stage.position);
    }
    this.timer = setInterval(() => {
      for (const p of this.projectors) void p.check();
    }, this.options.checkMs ?? CHECK_MS);
    this.timer.unref();
  }

  /**
   * Stops every stream's consumer: at a clean stop, what was read is written; once the claim is
   * lost (`fencedBy`), nothing more is.
   */
  private async letGo(fencedBy?: string): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const projectors = this.projectors;
    this.projectors = [];
    if (fencedBy !== undefined) for (const p of projectors) p.fence(fencedBy);
    await Promise.all(projectors.map((p) => p.stop()));
    // the counts last: what the streams wrote at their stop is counted (unless the claim is lost)
    const stage = this.stage;
    this.stage = undefined;
    if (stage !== undefined && fencedBy === undefined) stage.wake();
    await stage?.stop();
  }

  private written(position: StreamPosition): void {
    if (position.seq === 0) this.now.delete(position.stream);
    else this.now.set(position.stream, position);
    // the counts are deleted with the events or resolutions they were made from
    if (position.seq === 0 && (position.stream === 'in' || position.stream === 'groups')) {
      this.activitySeq = 0;
      this.feed?.letGo();
      this.stage?.countsDeleted();
    }
    for (const listener of [...this.listeners]) listener(position);
  }

  private activityWritten(seq: number): void {
    this.activitySeq = seq;
    for (const listener of [...this.activityListeners]) listener(seq);
  }

  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.options.onFailure?.(error);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakePause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
