/**
 * One projected stream: its consumer on the durable-consumer runtime, whose checkpoints are the
 * read model's writes (the rows read since the last one and the stream's position, in one
 * transaction), and the watch on the stream itself, which notices when it was deleted or made
 * again and reads it anew rather than apply new sequences onto a stale position.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { FeatureRules } from '../activity/event-features.ts';
import { XrefError, isXrefError } from '../domain/errors.ts';
import { JetStreamInputLog } from '../nats/jetstream-input-log.ts';
import { HEADERS, durableName } from '../nats/subjects.ts';
import { isStreamNotFound } from '../nats/topology.ts';
import { type NatsWaits, untilAnswered } from '../nats/retry.ts';
import type { CheckpointAt, CheckpointWriteOptions, CheckpointWriter } from '../runtime/checkpointer.ts';
import { DurableConsumer, type InputHandler, type OutputMessage } from '../runtime/durable-consumer.ts';
import type { InputLog, InputMessage, LeaseView } from '../runtime/input-log.ts';
import type { DecodedInput, EncodedInput } from '../service/input.ts';
import type { Settled } from './forget.ts';
import type { AuditRow, ProjectedStream, ProjectionBatch, ProjectionRows, ReadModelStore, RetractionRow, StreamPosition } from './read-model.ts';
import { type ControlAction, messageRows } from './rows.ts';
import { PROJECTED_STREAM_NAMES, type StreamIncarnation, type StreamNames, incarnationOf, staleBecause } from './stream-identity.ts';

/**
 * Messages a stream's consumer may have delivered and not yet applied (nor acked): a few of the
 * client's pulls (2,000 each). While a batch is written, the next one waits to be applied, and
 * what the server delivers meanwhile waits in this process: with four batches' worth allowed
 * (80,000 messages a stream), a projection catching up held 200 MB more at its peak (heap 475–481
 * MB against 251–288) and spent a third more time in young collections, for no faster reading.
 */
const DELIVERED_AHEAD = 5_000;

/** How an XREF_IN message is read: as the engine does, with the same config (see `projectionDecoder`). */
export type InputDecoder = (msg: EncodedInput) => DecodedInput;

/** One write: a stream's rows since the last one, and its new position; for the audit stream, its control records in stream order. */
interface StreamCheckpoint extends CheckpointAt {
  readonly batch: ProjectionBatch;
  readonly controls: readonly ControlAction[];
}

type Rows = { -readonly [T in keyof ProjectionRows]: Array<ProjectionRows[T][number]> } & { retractions: RetractionRow[] };
const noRows = (): Rows => ({ events: [], resolutions: [], unmatched: [], audit: [], errors: [], retractions: [] });

export interface StreamStats {
  /** Messages read (not counting those delivered again). */
  inputs: number;
  /** Messages that gave no row (an input the engine rejects, a message not of its stream). */
  noRow: number;
  /** Batches written. */
  batches: number;
  /** Times the stream was found made again, and its rows read anew. */
  resets: number;
  /** Messages delivered headers only without the header the projection reads, so read whole by sequence. */
  readWhole: number;
}

/** What the stream projectors of one projection share. */
export interface ProjectorContext {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly waits: NatsWaits;
  readonly store: ReadModelStore;
  /** Who writes (the claim's owner), and the claim the consumers run under. */
  readonly owner: string;
  readonly claim: LeaseView;
  /** The durable consumers' name (after the database). */
  readonly consumer: string;
  /** Inputs per write at most, and the longest a read input waits to be written. */
  readonly batch: number;
  readonly batchMs: number;
  /** A projection's durable consumer unused this long is removed by the server. */
  readonly inactiveThresholdMs: number;
  readonly decode: InputDecoder;
  /** What the active-people counts read of an event, stored with it (when the projection counts). */
  readonly features?: FeatureRules | undefined;
  readonly logger: Logger;
  /** A batch is written: the stream's position in the read model now. */
  written(position: StreamPosition): void;
  /** A batch is written (`complete`: every event and resolution of it stored), before `written` tells its position. */
  committed?(batch: ProjectionBatch, complete: boolean): void;
  /** A stream's rows were deleted, to be read anew. */
  reset(stream: ProjectedStream): void;
  /** A write was refused: the claim is held by another projection. */
  fenced(why: string): void;
  /** Processing stopped for good (a bug, not an outage). */
  failed(error: Error): void;
  /**
   * The control records of an audit batch (forgets, suppressed events, unlinks), made ready to
   * apply (forget.ts): waited for until the other streams are written through them, and what they
   * erase found (`audit`: the batch's rows, whose links are not written yet); given up, saying
   * where, once `giveUp()`.
   */
  settle(controls: readonly ControlAction[], audit: readonly AuditRow[], giveUp: () => boolean): Promise<Settled>;
  /** A batch holding forgets is written. */
  forgotten(batch: ProjectionBatch): void;
}

/** The stream as it is now, or undefined when it does not exist. */
export async function incarnationNow(jsm: JetStreamManager, stream: string): Promise<StreamIncarnation | undefined> {
  try {
    return incarnationOf(await jsm.streams.info(stream));
  } catch (error) {
    if (isStreamNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * A projected stream while its projection holds the claim. `check()` (at start, on a timer, and
 * whenever its consumer runs into the stream missing) compares the stream on the server with
 * what is read of it: a stream made again (another creation time, or fewer messages than read)
 * has its consumer stopped, its rows deleted (`resetStreams`) and is read again from sequence 1;
 * a stream deleted is waited for.
 */
export class StreamProjector {
  private run: ProjectorRun | undefined;
  private checking: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private absentSaid = false;
  private fencedBy: string | undefined;
  private readonly stream: string;

  constructor(
    readonly role: ProjectedStream,
    private readonly ctx: ProjectorContext,
    /** What the read model holds of the stream (from `store.positions()`), then as batches are written. */
    private position: StreamPosition | undefined,
    /** Counted into. */
    readonly stats: StreamStats,
  ) {
    this.stream = PROJECTED_STREAM_NAMES[role].stream;
  }

  /** Compares the stream with what is read of it (one check at a time; one asked meanwhile runs after it). */
  check(): Promise<void> {
    if (this.checking !== undefined) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        await this.reconcile();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.checking = undefined;
      // asked after the last round had looked: one more
      if (this.again && !this.stopped) void this.check();
    });
    return this.checking;
  }

  /** Stops reading: what was read is written (unless the stream changed under it). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.checking;
    await this.run?.stop();
    this.run = undefined;
  }

  /** The claim is lost: the consumer stops applying and writing at once (stop it then). */
  fence(why: string): void {
    this.stopped = true;
    this.fencedBy = why;
    this.run?.fence(why);
  }

  /** What the read model holds of the stream. */
  get written(): StreamPosition | undefined {
    return this.position;
  }

  /** A batch of the running consumer is written. */
  batchWritten(position: StreamPosition): void {
    // what the batches before it told of the stream, in the same incarnation, still holds
    const before = this.position?.created === position.created ? (this.position.stored ?? 0) : 0;
    const written = before > (position.stored ?? 0) ? { ...position, stored: before } : position;
    this.position = written;
    this.stats.batches++;
    this.ctx.written(written);
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const { logger } = this.ctx;
    // what was read, taken before the stream is looked at: the stream only grows meanwhile
    const run = this.run;
    const read = run?.position ?? 0;
    let now: StreamIncarnation | undefined;
    try {
      now = await incarnationNow(this.ctx.jsm, this.stream);
    } catch (error) {
      logger.debug({ err: error, stream: this.stream }, 'the stream could not be looked at (NATS away?): at the next check');
      return;
    }
    if (run !== undefined) {
      const why = now === undefined ? 'it was deleted' : staleBecause({ seq: read, created: run.created }, now);
      if (why === undefined) {
        await run.passTail(now!.lastSeq);
        return;
      }
      logger.warn({ stream: this.stream, read }, `${this.stream} changed while it was read: ${why}; what was read and not written is dropped`);
      run.discard();
      await run.stop();
      this.run = undefined;
    }
    if (now === undefined) {
      if (!this.absentSaid) logger.info({ stream: this.stream }, `${this.stream} does not exist (yet): it is read once it does`);
      this.absentSaid = true;
      return;
    }
    this.absentSaid = false;
    const stale = staleBecause(this.position, now);
    if (stale !== undefined) {
      logger.warn({ stream: this.stream, had: this.position?.seq }, `${this.stream}: ${stale}: its rows are deleted and it is read again from sequence 1`);
      try {
        await this.ctx.store.resetStreams([this.role], this.ctx.owner);
      } catch (error) {
        if (isXrefError(error, 'XREF_FENCED')) this.ctx.fenced(error.message);
        else logger.warn({ err: error, stream: this.stream }, 'the rows of a stream made again could not be deleted: at the next check');
        return;
      }
      this.position = undefined;
      this.stats.resets++;
      this.ctx.reset(this.role);
    }
    const fromSeq = Math.max((this.position?.seq ?? 0) + 1, now.firstSeq, 1);
    const next = new ProjectorRun(this, this.ctx, now.created);
    try {
      await next.start(fromSeq);
    } catch (error) {
      logger.debug({ err: error, stream: this.stream }, 'the stream could not be read (NATS away, or the stream gone): at the next check');
      await next.stop();
      return;
    }
    // a stop asked meanwhile waits for this check, then stops this run
    this.run = next;
    if (this.fencedBy !== undefined) next.fence(this.fencedBy);
  }
}

/**
 * One consumer of a stream, from one start to its stop: the handler that turns each message into
 * rows and keeps them, and the writer of its checkpoints, which writes them with the position in
 * one transaction (`store.apply`), so that a crash or a redelivery changes nothing. The consumer
 * is made again (a new run) whenever the stream is.
 */
class ProjectorRun implements InputHandler, CheckpointWriter<StreamCheckpoint> {
  /** The projection publishes nothing. */
  readonly outbox: OutputMessage[] = [];
  private readonly consumer: DurableConsumer<StreamCheckpoint>;
  private readonly log: InputLog;
  private rows: Rows = noRows();
  /** The control records read since the last write (audit stream). */
  private controls: ControlAction[] = [];
  private inputs = 0;
  /** The highest `stored` of the resolutions read since the last write (0: none). */
  private stored = 0;
  /** The last sequence read (applied or skipped), and the last one handed to a write. */
  private last = 0;
  private taken = 0;
  /** The write under way (settled, never rejected): reading waits for it when a whole batch waits. */
  private writing: Promise<void> | undefined;
  /** The stream changed under this run: nothing more is written. */
  private discarded = false;
  /** Stopping: the run reads what was delivered and writes it (the store refuses it if the claim was lost). */
  private stopping = false;
  private readonly names: StreamNames;

  constructor(
    private readonly projector: StreamProjector,
    private readonly ctx: ProjectorContext,
    /** The creation time of the stream this run reads. */
    readonly created: string,
  ) {
    this.names = PROJECTED_STREAM_NAMES[projector.role];
    this.log = this.inputLog();
    this.consumer = new DurableConsumer<StreamCheckpoint>({
      name: ctx.consumer,
      log: this.log,
      handler: this,
      maxInFlight: ctx.batch,
      checkpoints: {
        every: ctx.batch,
        ms: ctx.batchMs,
        take: () => this.take(),
        writer: this,
        isFenced: (error) => isXrefError(error, 'XREF_FENCED'),
      },
      // while it stops, the consumer finishes what was delivered (a lease that lapses during a
      // stop must not keep it from finishing: the store fences the final write by itself)
      lease: { epoch: ctx.claim.epoch, valid: () => this.stopping || ctx.claim.valid() },
      logger: ctx.logger,
      onFailure: (error) => ctx.failed(error),
      onFenced: (why) => ctx.fenced(why),
    });
  }

  async start(fromSeq: number): Promise<void> {
    this.last = fromSeq - 1;
    this.taken = fromSeq - 1;
    await this.consumer.start(fromSeq);
  }

  /** The last sequence read. */
  get position(): number {
    return this.consumer.position;
  }

  /** The stream changed: what was read and not written is dropped. */
  discard(): void {
    this.discarded = true;
  }

  stop(): Promise<void> {
    this.stopping = true;
    return this.consumer.stop();
  }

  /**
   * Moves the position through `lastSeq` (where the stream ends, looked at before this call)
   * when nothing up to there is left for this run to read: its consumer has no message pending
   * (matching its filter, undelivered) and none delivered and not acked (an input is acked once
   * applied). What lies between is then only what it never reads (control inputs in XREF_IN, which
   * its filter leaves out) or no longer exists (erased, purged): a delivery notices such gaps only
   * at the next message, so a stream ending with them would never be written through its end.
   */
  async passTail(lastSeq: number): Promise<void> {
    if (lastSeq <= this.last || this.stopping || this.discarded) return;
    let pending: { num_pending: number; num_ack_pending: number };
    try {
      pending = await this.ctx.jsm.consumers.info(this.names.stream, durableName(this.ctx.consumer, this.ctx.claim.epoch));
    } catch {
      return; // not made yet, or NATS away: at the next check
    }
    if (pending.num_pending > 0 || pending.num_ack_pending > 0) return;
    if (lastSeq > this.last) this.last = lastSeq;
  }

  fence(why: string): void {
    this.consumer.fence(why);
  }

  // --- reading ---------------------------------------------------------------------------------

  apply(input: InputMessage): Promise<void> | undefined {
    // delivered as headers only, yet without the header (written by another writer, or by xref
    // before it wrote the header): read whole
    if (this.names.headersOnly === true && input.data.length === 0 && input.header?.(HEADERS.resolution) === undefined && input.header?.(HEADERS.retraction) === undefined) {
      return this.applyWhole(input.seq);
    }
    return this.applyRows(input);
  }

  private applyRows(input: InputMessage): Promise<void> | undefined {
    const rows = messageRows(this.projector.role, input, this.ctx.decode, this.ctx.features);
    // never back: a gap read after the position passed a tail (passTail) is behind it
    if (input.seq > this.last) this.last = input.seq;
    this.projector.stats.inputs++;
    if (rows.table === 'none') {
      this.projector.stats.noRow++;
      this.ctx.logger.debug({ stream: this.names.stream, seq: input.seq, why: rows.why }, 'a message gives no row');
    } else {
      (this.rows[rows.table] as unknown[]).push(rows.row);
      if (rows.table === 'audit' && rows.control !== undefined) this.controls.push(rows.control);
      if (rows.table === 'resolutions' && rows.stored !== undefined && rows.stored > this.stored) this.stored = rows.stored;
    }
    // a whole batch waits while the last one is written: reading waits for that write
    return ++this.inputs >= this.ctx.batch ? this.writing : undefined;
  }

  private async applyWhole(seq: number): Promise<void> {
    this.projector.stats.readWhole++;
    const whole = await this.log.read(seq);
    if (whole === undefined) this.skip(seq);
    else await this.applyRows(whole);
  }

  skip(seq: number): void {
    if (seq > this.last) this.last = seq;
  }

  // --- writing ---------------------------------------------------------------------------------

  /** The rows read since the last write and the position, handed to the next write. */
  private take(): StreamCheckpoint | undefined {
    if (this.last === this.taken) return undefined;
    const position = { stream: this.projector.role, seq: this.last, created: this.created, ...(this.stored > 0 ? { stored: this.stored } : {}) };
    const batch: ProjectionBatch = { ...this.rows, positions: [position] };
    const controls = this.controls;
    this.rows = noRows();
    this.controls = [];
    this.inputs = 0;
    this.stored = 0;
    this.taken = this.last;
    return { seq: this.last, batch, controls };
  }

  write(checkpoint: StreamCheckpoint, options: CheckpointWriteOptions): Promise<void> {
    const writing = this.writeBatch(checkpoint, options);
    const settled = writing.then(
      () => undefined,
      () => undefined,
    );
    this.writing = settled;
    void settled.then(() => {
      if (this.writing === settled) this.writing = undefined;
    });
    return writing;
  }

  private async writeBatch(checkpoint: StreamCheckpoint, options: CheckpointWriteOptions): Promise<void> {
    const { store, owner, logger, waits } = this.ctx;
    await options.alsoStored;
    if (this.discarded) return;
    // every row of the batch was read before this look: if the stream is still the one this run
    // reads, they are its rows (a stream made again meanwhile has another creation time)
    const now = await untilAnswered('looking at a projected stream', () => incarnationNow(this.ctx.jsm, this.names.stream), { logger, waits, idempotent: true });
    const why = now === undefined ? 'it was deleted' : staleBecause({ seq: checkpoint.seq, created: this.created }, now);
    if (why !== undefined) {
      this.discard();
      void this.projector.check();
      return;
    }
    const batch = checkpoint.controls.length === 0 ? checkpoint.batch : await this.settled(checkpoint, options);
    if (batch === undefined) return;
    let complete = false;
    for (let attempt = 0; ; attempt++) {
      // tried again only while the claim holds (a stop with the database away ends once it lapses)
      if (!options.mayWrite() || (attempt > 0 && !this.ctx.claim.valid())) {
        throw new XrefError('XREF_FENCED', `rows of ${this.names.stream} through ${checkpoint.seq} were not written: the claim on the read model is lost`);
      }
      try {
        complete = await store.apply(batch, owner);
        if (attempt > 0) logger.info({ stream: this.names.stream, attempts: attempt + 1 }, 'the read model is written again');
        break;
      } catch (error) {
        if (isXrefError(error, 'XREF_FENCED')) throw error;
        // the database away (or refusing): once the claim lapses, the projection stands by and
        // starts again from what is written
        if (attempt === 0) logger.warn({ err: error, stream: this.names.stream }, 'the read model could not be written: trying again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** Math.min(attempt, 10))));
      }
    }
    this.ctx.committed?.(batch, complete);
    this.projector.batchWritten(batch.positions[0]!);
    if ((batch.forgets?.length ?? 0) > 0) this.ctx.forgotten(batch);
  }

  /**
   * An audit batch with its control records made ready: its forgets, suppressed events and unlinks added.
   * Given up (a stop, the claim lost) before one of them, only the rows before it are written, and
   * nothing more by this run: the rest is read again at the next start. Undefined: nothing to write.
   */
  private async settled(checkpoint: StreamCheckpoint, options: CheckpointWriteOptions): Promise<ProjectionBatch | undefined> {
    const settled = await this.ctx.settle(checkpoint.controls, checkpoint.batch.audit, () => this.stopping || this.discarded || !options.mayWrite());
    if (this.discarded) return undefined;
    const { forgets, suppressed, unlinks } = settled;
    if (settled.before === undefined) return { ...checkpoint.batch, forgets, suppressed, unlinks };
    this.discard();
    const seq = settled.before - 1;
    if (seq <= (this.projector.written?.seq ?? 0)) return undefined;
    const audit = checkpoint.batch.audit.filter((row) => row.streamSeq < settled.before!);
    return { ...checkpoint.batch, audit, forgets, suppressed, unlinks, positions: [{ stream: this.projector.role, seq, created: this.created }] };
  }

  /**
   * The stream as the consumer reads it: a JetStreamInputLog, except that finding the stream gone
   * (deleted under a running consumer, e.g. by `xref replay --republish`) is not a failure: the
   * projector's check makes the consumer again once the stream is back.
   */
  private inputLog(): InputLog {
    const { js, jsm, logger, waits } = this.ctx;
    const inner = new JetStreamInputLog({ js, jsm, logger, waits, ...this.names, maxAckPending: DELIVERED_AHEAD, inactiveThresholdMs: this.ctx.inactiveThresholdMs });
    const gone = () => {
      this.discard();
      void this.projector.check();
    };
    return {
      lastSeq: () => inner.lastSeq(),
      read: async (seq) => {
        try {
          return await inner.read(seq);
        } catch (error) {
          if (!isStreamNotFound(error)) throw error;
          gone();
          return undefined;
        }
      },
      deliver: (options) =>
        inner.deliver({
          ...options,
          failed: (error) => (isStreamNotFound(error) ? gone() : options.failed(error)),
        }),
    };
  }
}
