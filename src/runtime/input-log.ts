/**
 * The port every consumer of the log reads through: an ordered, durable log of inputs (XREF_IN on
 * JetStream, src/nats/jetstream-input-log.ts; in memory for tests, memory-input-log.ts). Nothing
 * here knows NATS.
 */

/** One input of the log, however it was read: delivered to a consumer, or read by sequence. */
export interface InputMessage {
  /** Its place in the log (1, 2, …), never reused. */
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** When it was published (epoch ms): the time of an event without a timestamp (read only then). */
  publishedMs(): number;
  /**
   * Whether it came from a delivery, so acking it means something (one read by sequence, to fill
   * a gap, does not).
   */
  readonly ackable: boolean;
  /** Whether the log says it delivered it before (read only when needed: it may cost a parse). */
  readonly redelivered: boolean;
  /** Acks every input through this one, for the delivery that handed it out (a no-op when not ackable). */
  ack(): void;
  /** One of its headers, where the log keeps them. */
  header?(name: string): string | undefined;
}

/** A sequence the log no longer holds (deleted): nothing to apply, the consumer moves past it. */
export interface LogGap {
  readonly seq: number;
  readonly deleted: true;
}

export function isGap(item: InputMessage | LogGap): item is LogGap {
  return (item as Partial<LogGap>).deleted === true;
}

/** A lease a consumer runs under, as the log sees it: the epoch of the holding, and whether it still holds. */
export interface LeaseView {
  /** The epoch of this holding (0 while not held). */
  readonly epoch: number;
  valid(): boolean;
}

/** The inputs delivered and not taken yet, in log order: a look-ahead (e.g. for prefetching). */
export interface QueuedInputs {
  readonly queued: number;
  /** The input `i` places after the next one to be taken (undefined past the last queued). */
  peek(i: number): InputMessage | undefined;
}

/**
 * Inputs handed out in log order from the sequence the delivery started at: each sequence once,
 * as a message or, when the log no longer holds it, as a gap. A delivery that skipped sequences
 * (messages in flight when a server restarted count as delivered) is completed by reading the
 * missing ones by sequence, so nothing is lost. What the log delivers again (not acked in time, a
 * server restarted) comes again with a sequence below the next one: the consumer decides what
 * such a repeat means (see AckLedger.mayAckRedelivered).
 */
export interface InputDelivery extends QueuedInputs {
  /**
   * The next input: synchronously when it is at hand (the next sequence, or a repeat of one handed
   * out before), undefined when nothing is queued now, or a promise when it must be read by
   * sequence first (a gap in the delivery): its message, or a LogGap.
   */
  next(): InputMessage | Promise<InputMessage | LogGap> | undefined;
  /** Stops pulling: what is queued can still be taken. */
  close(): Promise<void>;
}

export interface DeliveryOptions {
  /**
   * Who consumes: the log keeps a durable position per consumer, named after it (and, under a
   * lease, after its epoch). A delivery never touches another consumer's.
   */
  readonly consumer: string;
  /** The first sequence to hand out. */
  readonly fromSeq: number;
  /** The consumer's lease: a delivery is not made (nor made again) once it is not valid. */
  readonly lease?: LeaseView;
  /** Called as inputs are queued (as often as once per input: keep it cheap). */
  readonly delivered: () => void;
  /** The delivery stopped for good because the lease was lost (it was being made again). */
  readonly fenced: (why: string) => void;
  /** The delivery stopped for good: it could not be made again (not an outage, which is waited out). */
  readonly failed: (error: Error) => void;
}

export interface InputLog {
  /** The last sequence the log holds now (0 when it never held one): how far a consumer lags. */
  lastSeq(): Promise<number>;
  /** The input at `seq`, or undefined when the log does not hold it (deleted, or not written yet). */
  read(seq: number): Promise<InputMessage | undefined>;
  /** Starts delivering to `options.consumer` from `options.fromSeq` (see InputDelivery). */
  deliver(options: DeliveryOptions): Promise<InputDelivery>;
}

/** An input read from the log by sequence (or ahead in a replay's batch): nothing to ack. */
export class StoredInput implements InputMessage {
  readonly ackable = false;
  readonly redelivered = false;
  constructor(
    readonly seq: number,
    readonly subject: string,
    readonly data: Uint8Array,
    private readonly published: number,
  ) {}
  publishedMs(): number {
    return this.published;
  }
  ack(): void {}
}
