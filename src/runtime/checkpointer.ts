/** A consumer's checkpoint: whatever it writes, at the last input it applied. */
export interface CheckpointAt {
  readonly seq: number;
}

/** How the checkpointer asks a checkpoint to be written (the shape of NatsStateStore.write's options). */
export interface CheckpointWriteOptions {
  /**
   * Resolves once every output of the inputs the checkpoint covers is stored: what says the
   * checkpoint is in force (the meta record, a committed position) is written only after it.
   */
  readonly alsoStored: Promise<unknown>;
  /** How long to spread the writing over, asked as it goes (0: at once, e.g. at a stop). */
  readonly spreadOverMs: () => number;
  /** False once the writer may not write any more (its lease lost): the write stops, rejected. */
  readonly mayWrite: () => boolean;
}

/** Writes one checkpoint (NatsStateStore, or a projection's own, e.g. in a database transaction). */
export interface CheckpointWriter<C extends CheckpointAt> {
  write(checkpoint: C, options: CheckpointWriteOptions): Promise<void>;
}

/** A consumer's checkpoints: when, how they are taken, where they are written. */
export interface CheckpointOptions<C extends CheckpointAt> {
  /** A checkpoint is due after this many inputs… */
  readonly every: number;
  /** …or this long after the last one was due (and at a stop). */
  readonly ms: number;
  /**
   * Freezes the consumer's state at the last input applied (synchronously: it is taken between
   * two inputs); undefined when there is nothing to write.
   */
  take(): C | undefined;
  readonly writer: CheckpointWriter<C>;
  /** The checkpoint is written (in force). */
  written?(checkpoint: C): void;
  /** Whether a write rejected with `error` was refused because the writer lost its lease (then fenced, not failed). */
  isFenced?(error: Error): boolean;
}

/** What the checkpointer needs of the consumer it checkpoints. */
export interface CheckpointHost {
  /** Resolves once every input up to `seq` has its outputs stored (AckLedger.storedThrough). */
  storedThrough(seq: number): Promise<void>;
  /** Whether the consumer may still write (not fenced, its lease valid). */
  mayWrite(): boolean;
  /** Whether it was fenced (a write that fails then is not a failure). */
  isFenced(): boolean;
  /** A checkpoint is due and none is being written: let the consumer come between two inputs (and call `startIfDue`). */
  wake(): void;
  fence(why: string): void;
  fail(error: Error, message: string): void;
}

export interface CheckpointStats {
  checkpoints: number;
  lastCheckpointSeq: number;
}

/**
 * When a consumer checkpoints: every `every` inputs or `ms` milliseconds, one write at a time (one
 * due while another is written starts once it is done), spread over half the period while intake
 * goes on, and at once at a stop. A checkpoint's in-force record is written only once the outputs
 * of the inputs it covers are stored, and only while the consumer may write (its lease).
 */
export class Checkpointer<C extends CheckpointAt> {
  private sinceLast = 0;
  private due = false;
  private writing: Promise<void> | undefined;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: CheckpointOptions<C>,
    private readonly host: CheckpointHost,
    private readonly stats: CheckpointStats,
  ) {}

  /** Starts the clock: a checkpoint is due every `ms`. */
  start(): void {
    this.timer ??= setInterval(() => {
      this.due = true;
      this.host.wake();
    }, this.options.ms);
    this.timer.unref();
  }

  /** A checkpoint is wanted now, not at the next count or tick (what waits for it should not wait long). */
  soon(): void {
    this.due = true;
    this.host.wake();
  }

  /** One more input applied. */
  counted(): void {
    this.sinceLast++;
  }

  /** Whether a checkpoint is due (by count or by time). */
  get wanted(): boolean {
    return this.due || this.sinceLast >= this.options.every;
  }

  /** A checkpoint is due by time and none is being written: the consumer should come between two inputs. */
  get waiting(): boolean {
    return this.due && this.writing === undefined;
  }

  /** Called between two inputs: starts a checkpoint if one is due and none is being written. */
  startIfDue(): void {
    if (this.writing === undefined && this.wanted) this.begin();
  }

  /** Stops the clock; what is written from now on is written at once. */
  halt(): void {
    this.stopping = true;
    clearInterval(this.timer);
  }

  /**
   * After `halt` and the last input: waits for the write under way, then writes a last checkpoint
   * at once if `final()` still says so (not after a failure, nor once fenced: the state may be
   * ahead of what is stored, and the last checkpoint stands).
   */
  async finish(final: () => boolean): Promise<void> {
    this.halt();
    await this.writing;
    if (!final()) return;
    this.begin();
    await this.writing;
  }

  /**
   * Freezes the state now (the state at this input) and writes it in the background while
   * processing goes on.
   */
  private begin(): void {
    this.due = false;
    this.sinceLast = 0;
    const checkpoint = this.options.take();
    if (checkpoint === undefined) return;
    this.writing = this.options.writer
      .write(checkpoint, {
        alsoStored: this.host.storedThrough(checkpoint.seq),
        // spread over half the time to the next one while intake goes on; at a stop, at once
        spreadOverMs: () => (this.stopping ? 0 : this.options.ms / 2),
        mayWrite: () => this.host.mayWrite(),
      })
      .then(() => {
        this.stats.checkpoints++;
        this.stats.lastCheckpointSeq = checkpoint.seq;
        this.options.written?.(checkpoint);
      })
      .catch((error: Error) => {
        // once fenced, what was not written stays unwritten: the next holder has the log
        if (this.host.isFenced() || this.options.isFenced?.(error) === true) this.host.fence(error.message);
        else this.host.fail(error, 'a checkpoint could not be written: stopping');
      })
      .finally(() => {
        this.writing = undefined;
        if (!this.stopping && this.wanted) this.host.wake();
      });
  }
}
