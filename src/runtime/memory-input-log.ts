import { type Logger, pino } from 'pino';
import { XrefError } from '../domain/errors.ts';
import { type DeliveryOptions, type InputDelivery, type InputLog, type InputMessage, StoredInput } from './input-log.ts';
import { type DeliverySource, OrderedDelivery } from './ordered-delivery.ts';

const encoder = new TextEncoder();

/** A message delivered from memory: acking it moves its delivery's ack floor. */
class MemoryDelivered implements InputMessage {
  readonly ackable = true;
  constructor(
    private readonly stored: StoredInput,
    private readonly feed: Feed,
    readonly redelivered: boolean,
  ) {}
  get seq() {
    return this.stored.seq;
  }
  get subject() {
    return this.stored.subject;
  }
  get data() {
    return this.stored.data;
  }
  publishedMs() {
    return this.stored.publishedMs();
  }
  ack() {
    this.feed.ack(this.seq);
  }
}

/** One open delivery: where the log sends what it holds, from `next` on. */
export class Feed implements DeliverySource {
  readonly consumer: string;
  readonly ordered: OrderedDelivery;
  /** The next sequence to send. */
  next: number;
  ackedThrough: number;
  closed = false;
  scheduled = false;

  constructor(
    private readonly log: MemoryInputLog,
    options: DeliveryOptions,
    private readonly acks: Map<string, number>,
    logger: Logger,
  ) {
    this.consumer = options.consumer;
    this.next = options.fromSeq;
    this.ackedThrough = options.fromSeq - 1;
    this.ordered = new OrderedDelivery(options.fromSeq, this, options.delivered, logger);
    acks.set(this.consumer, this.ackedThrough);
  }

  /** Acked through `seq` (cumulative: every message before it too). */
  ack(seq: number): void {
    if (this.closed || seq <= this.ackedThrough) return;
    this.ackedThrough = seq;
    this.acks.set(this.consumer, seq);
  }

  read(seq: number): Promise<InputMessage | undefined> {
    return this.log.read(seq);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.log.closed(this);
  }
}

/**
 * The InputLog in memory, for tests and in-process use: an append-only log of subjects, data and
 * publish times; a sequence can be deleted (a gap) and a message delivered again. Deliveries are
 * asynchronous, as from a server: what is appended reaches open deliveries on a later turn.
 */
export class MemoryInputLog implements InputLog {
  /** Message `seq` at `seq - 1`; undefined once deleted. */
  private readonly messages: Array<StoredInput | undefined> = [];
  private readonly feeds = new Set<Feed>();
  /** Per consumer, the highest sequence its last delivery was acked through. */
  private readonly acks = new Map<string, number>();

  constructor(private readonly logger: Logger = pino({ level: 'silent' })) {}

  /** Appends a message; returns its sequence. */
  append(subject: string, data: Uint8Array | string, publishedMs = Date.now()): number {
    const seq = this.messages.length + 1;
    this.messages.push(new StoredInput(seq, subject, typeof data === 'string' ? encoder.encode(data) : data, publishedMs));
    for (const feed of this.feeds) this.schedule(feed);
    return seq;
  }

  /** Deletes message `seq`: the log no longer holds it, and no delivery sends it. */
  delete(seq: number): void {
    if (this.messages[seq - 1] === undefined) throw new RangeError(`the log holds no message ${seq} to delete (last: ${this.messages.length})`);
    this.messages[seq - 1] = undefined;
  }

  /** Sends message `seq` again, marked redelivered, to every open delivery that sent it and has not had it acked. */
  redeliver(seq: number): void {
    const stored = this.messages[seq - 1];
    if (stored === undefined) throw new RangeError(`the log holds no message ${seq} to deliver again`);
    for (const feed of this.feeds) if (seq < feed.next && seq > feed.ackedThrough) this.transmit(feed, new MemoryDelivered(stored, feed, true));
  }

  /** The highest sequence `consumer`'s last delivery was acked through (0: none). */
  ackedThrough(consumer: string): number {
    return this.acks.get(consumer) ?? 0;
  }

  async lastSeq(): Promise<number> {
    return this.messages.length;
  }

  async read(seq: number): Promise<InputMessage | undefined> {
    return this.messages[seq - 1];
  }

  async deliver(options: DeliveryOptions): Promise<InputDelivery> {
    if (options.lease !== undefined && !options.lease.valid()) throw new XrefError('XREF_FENCED', `the lease of ${options.consumer} is not valid: no delivery is made`);
    const feed = new Feed(this, options, this.acks, this.logger);
    this.feeds.add(feed);
    this.schedule(feed);
    return feed.ordered;
  }

  /** A delivery closed: nothing more is sent to it. */
  closed(feed: Feed): void {
    this.feeds.delete(feed);
  }

  /** How a message reaches a delivery (the one step a test may make lose or repeat messages). */
  protected transmit(feed: Feed, msg: InputMessage): void {
    feed.ordered.push(msg);
  }

  private schedule(feed: Feed): void {
    if (feed.scheduled) return;
    feed.scheduled = true;
    setImmediate(() => {
      feed.scheduled = false;
      for (; !feed.closed && feed.next <= this.messages.length; feed.next++) {
        const stored = this.messages[feed.next - 1];
        if (stored !== undefined) this.transmit(feed, new MemoryDelivered(stored, feed, false));
      }
    });
  }
}
