import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';
import { AckLedger, type InFlight } from './ack-ledger.ts';
import { type CheckpointAt, type CheckpointHost, type CheckpointOptions, Checkpointer } from './checkpointer.ts';
import { type InputDelivery, type InputLog, type InputMessage, type LeaseView, type LogGap, type QueuedInputs, isGap } from './input-log.ts';
import { Pump, type PumpWork, type Step } from './pump.ts';

/** One message a consumer publishes for an input it applied (the shape of service/outputs.ts' OutboundMessage). */
export interface OutputMessage {
  readonly subject: string;
  /** Its deterministic id: the same input applied again gives the same id, stored once. */
  readonly msgId: string;
  readonly payload: string | Uint8Array;
  /** One more header to publish it with. */
  readonly header?: OutputHeader;
}

/** A header of an output: its value holds no CR or LF, and neither begins nor ends with a space. */
export interface OutputHeader {
  readonly name: string;
  readonly value: string;
}

/** Where outputs go: JetStreamPublisher (pipelined, each sent until stored or refused for good). */
export interface OutputPublisher {
  /** Publishes until stored; `done` is called once, with the error that refused it for good if so, and `token`. */
  publishThen<T>(
    subject: string,
    data: Uint8Array | string,
    msgId: string,
    done: (error: Error | undefined, ack: unknown, token: T) => void,
    token: T,
    header?: OutputHeader,
  ): void;
  /** Published and not yet stored (or refused). */
  readonly pending: number;
  /** Resolves once fewer than `count` are pending. */
  below(count: number): Promise<void>;
  close(): Promise<void>;
}

/** What a consumer does with the log: one input at a time, in log order. */
export interface InputHandler {
  /**
   * Applies the next input: leaves what it decided in `outbox`, and returns undefined, or a
   * promise when it has to wait first (a load); its outputs are published once it resolves.
   * `ahead`: the inputs delivered after it, not applied yet (for prefetching).
   */
  apply(input: InputMessage, ahead: QueuedInputs): Promise<void> | undefined;
  /** A sequence the log no longer holds: nothing to apply, the position moves past it. */
  skip(seq: number): void;
  /** The outputs of the input just applied, to publish: the consumer empties it after each input. */
  readonly outbox: OutputMessage[];
}

export interface ConsumerStats {
  /** Inputs applied (not counting those delivered again). */
  inputs: number;
  outputs: number;
  checkpoints: number;
  lastCheckpointSeq: number;
}

export interface DurableConsumerOptions<C extends CheckpointAt> {
  /** The consumer's name: its durable position on the log (and its lease's key). */
  readonly name: string;
  readonly log: InputLog;
  readonly handler: InputHandler;
  /** Where outputs are published (none: the handler must leave none). Closed at a stop and when fenced. */
  readonly publisher?: OutputPublisher;
  /** Outputs waiting to be stored past which applying waits (until half as many are). */
  readonly maxInFlight: number;
  readonly checkpoints: CheckpointOptions<C>;
  /** The lease the consumer runs under: it applies inputs and writes checkpoints only while it is valid. */
  readonly lease?: LeaseView;
  readonly logger: Logger;
  /** Counted into (the caller may add its own fields to it). */
  readonly stats?: ConsumerStats;
  /** Called once if processing stops for good (not an outage, which is waited out). */
  readonly onFailure?: (error: Error) => void;
  /** Called once when the consumer stops because it lost its lease. */
  readonly onFenced?: (why: string) => void;
}

/**
 * A consumer of the log: applies each input in log order, publishes what it decided (pipelined,
 * deterministic ids) and acks an input only once all its outputs are stored. Checkpoints every N
 * inputs / T ms and at a stop; a restart resumes right after the last checkpoint, and outputs
 * published again are dropped by their ids. The parts: a delivery from the InputLog, the Pump
 * that applies, the AckLedger that says what may be acked, the Checkpointer that says when to
 * write.
 */
export class DurableConsumer<C extends CheckpointAt> {
  readonly stats: ConsumerStats;
  private readonly ledger: AckLedger<InputMessage>;
  private readonly checkpointer: Checkpointer<C>;
  private readonly pump: Pump;
  private delivery: InputDelivery | undefined;
  /** The last sequence applied or skipped. */
  private applied = 0;
  private stopping = false;
  private failure: Error | undefined;
  /** Why the consumer stopped applying inputs: its lease was lost. */
  private fencedBy: string | undefined;

  constructor(private readonly options: DurableConsumerOptions<C>) {
    this.stats = options.stats ?? { inputs: 0, outputs: 0, checkpoints: 0, lastCheckpointSeq: 0 };
    this.ledger = new AckLedger(() => queueMicrotask(this.sendAck));
    const pumped: PumpWork = {
      canRun: () => this.failure === undefined && this.fencedBy === undefined,
      step: () => this.step(),
      more: () => (this.delivery !== undefined && this.delivery.queued > 0) || this.checkpointer.waiting,
      failed: (error) => this.fail(error, `the ${options.name} consumer stopped processing`),
    };
    this.pump = new Pump(pumped);
    const host: CheckpointHost = {
      storedThrough: (seq) => this.ledger.storedThrough(seq),
      mayWrite: () => this.fencedBy === undefined && (options.lease?.valid() ?? true),
      isFenced: () => this.fencedBy !== undefined,
      wake: this.pump.wake,
      fence: (why) => this.fence(why),
      fail: (error, message) => this.fail(error, message),
    };
    this.checkpointer = new Checkpointer(options.checkpoints, host, this.stats);
  }

  /** Starts consuming at `fromSeq` (the input after the last checkpoint). Rejects if the log will not deliver. */
  async start(fromSeq: number): Promise<void> {
    this.applied = fromSeq - 1;
    this.checkpointer.start();
    try {
      this.delivery = await this.options.log.deliver({
        consumer: this.options.name,
        fromSeq,
        lease: this.options.lease,
        delivered: this.pump.wake,
        fenced: (why) => this.fence(why),
        failed: (error) => this.fail(error, `the ${this.options.name} consumer could not be made again`),
      });
    } catch (error) {
      this.checkpointer.halt();
      throw error;
    }
    // what was delivered while the delivery was being made
    this.pump.wake();
  }

  /** Checkpoints between the next two inputs, whatever the count or the clock says. */
  checkpointSoon(): void {
    this.checkpointer.soon();
  }

  /**
   * The highest input through which every input applied has all its outputs stored, as this run
   * knows it while it applies `applying` (the inputs before the run's start were settled before
   * it: a checkpoint covers only inputs whose outputs are stored). An output published after this
   * is read is stored after all of theirs.
   */
  storedBelow(applying: number): number {
    return Math.min(this.ledger.lowestInFlight(), applying) - 1;
  }

  /** The last sequence applied (or skipped). */
  get position(): number {
    return this.applied;
  }

  /** A failure that stopped processing (e.g. a checkpoint could not be written), if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Why the consumer stopped applying inputs because it lost its lease, if it did. */
  get fenced(): string | undefined {
    return this.fencedBy;
  }

  /** Stops pulling, finishes what was delivered, checkpoints, and lets go of the log and the publisher. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.checkpointer.halt();
    await this.delivery?.close();
    await this.pump.idle();
    // after a failure, or once fenced, the state may be ahead of what is stored: the last checkpoint stands
    await this.checkpointer.finish(() => this.failure === undefined && this.fencedBy === undefined);
    await this.options.publisher?.close();
  }

  /**
   * The lease is lost: nothing more is applied or written (the publisher lets go of what it still
   * had to send), and `onFenced` is told (once). Outputs already sent are those the next holder
   * produces again, with the same ids.
   */
  fence(why: string): void {
    if (this.fencedBy !== undefined) return;
    // also while stopping: nothing more is applied (the pump stops) and no last checkpoint is written
    this.fencedBy = why;
    this.options.logger.warn({ consumer: this.options.name, why }, 'fenced: this consumer no longer holds its lease');
    // a stop lets go of the log and the publisher itself
    if (this.stopping) return;
    void this.delivery?.close();
    void this.options.publisher?.close();
    this.options.onFenced?.(why);
  }

  /** Processing stops for good: logged, kept as `error`, and told to `onFailure` (once). */
  private fail(error: Error, message: string): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.options.logger.fatal({ err: error, consumer: this.options.name }, message);
    void this.delivery?.close();
    this.options.onFailure?.(error);
  }

  /** What comes between two inputs (the lease, a checkpoint due), then the next input. */
  private step(): Step {
    const lease = this.options.lease;
    if (lease !== undefined && !lease.valid()) {
      this.fence('the lease is not valid any more');
      return false;
    }
    // one checkpoint at a time; one due while another is written starts once it is done
    this.checkpointer.startIfDue();
    const next = this.delivery?.next();
    if (next === undefined) return false;
    if (next instanceof Promise) return this.applyRead(next);
    return this.take(next);
  }

  // --- applying --------------------------------------------------------------------------------

  /** An input read by sequence, the delivery having skipped it: applied, or skipped when the log no longer holds it. */
  private async applyRead(read: Promise<InputMessage | LogGap>): Promise<void> {
    const input = await read;
    if (isGap(input)) {
      this.applied = input.seq;
      this.options.handler.skip(input.seq);
      return;
    }
    await this.take(input);
  }

  /** Applies one input; returns a promise only when it has to wait. */
  private take(input: InputMessage): Promise<void> | undefined {
    const seq = input.seq;
    if (seq <= this.applied) {
      // delivered again, already applied: acked now unless an earlier input is still in flight
      // (acking this one would ack that one too; its own ack will come)
      if (this.ledger.mayAckRedelivered(seq)) input.ack();
      return undefined;
    }
    this.applied = seq;
    this.stats.inputs++;
    this.checkpointer.counted();
    const wait = this.options.handler.apply(input, this.delivery!);
    return wait === undefined ? this.publishOutputs(input) : this.publishOnceApplied(wait, input);
  }

  private async publishOnceApplied(applying: Promise<void>, input: InputMessage): Promise<void> {
    await applying;
    await this.publishOutputs(input);
  }

  /** Publishes what the input decided, pipelined; the input is acked once all of it is stored. */
  private publishOutputs(input: InputMessage): Promise<void> | undefined {
    const outbox = this.options.handler.outbox;
    const publisher = this.options.publisher;
    this.stats.outputs += outbox.length;
    if (publisher === undefined) {
      if (outbox.length > 0) throw new XrefError('XREF_INTERNAL', `the ${this.options.name} consumer has no publisher, yet input ${input.seq} has ${outbox.length} outputs`);
      this.ledger.applied(input, 0);
      return undefined;
    }
    const entry = this.ledger.applied(input, outbox.length);
    for (const out of outbox) publisher.publishThen(out.subject, out.payload, out.msgId, this.outputStored, entry, out.header);
    outbox.length = 0;
    const limit = this.options.maxInFlight;
    return publisher.pending >= limit ? publisher.below(limit / 2) : undefined;
  }

  private readonly outputStored = (error: Error | undefined, _ack: unknown, entry: InFlight<InputMessage>): void => {
    if (error === undefined) this.ledger.stored(entry);
    else if (this.ledger.refused(entry) && this.fencedBy === undefined) {
      this.options.logger.error({ err: error, consumer: this.options.name, seq: entry.input.seq }, 'an output was refused: the input stays unacked');
    }
  };

  private readonly sendAck = (): void => {
    this.ledger.takeAck()?.ack();
  };
}
