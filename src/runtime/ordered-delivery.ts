import type { Logger } from 'pino';
import { RingQueue } from '../ring-queue.ts';
import type { InputDelivery, InputMessage, LogGap } from './input-log.ts';

/** What an adapter's transport gives an ordered delivery: reads by sequence, and a way to stop pulling. */
export interface DeliverySource {
  /** The input at `seq`, one of a gap through `through` (a source may look the whole gap up at once). */
  read(seq: number, through: number): Promise<InputMessage | undefined>;
  close(): Promise<void>;
}

/**
 * The ordering every InputLog adapter shares: its transport pushes what it delivered, in the
 * order it came, and this hands it out in log order, reading by sequence what the transport
 * skipped (see InputDelivery).
 */
export class OrderedDelivery implements InputDelivery {
  private readonly queue = new RingQueue<InputMessage>();
  /** The next sequence to hand out. */
  private expected: number;
  /** Whether a gap is being filled (logged once, when it is found). */
  private filling = false;

  constructor(
    fromSeq: number,
    private readonly source: DeliverySource,
    private readonly delivered: () => void,
    private readonly logger: Logger,
  ) {
    this.expected = fromSeq;
  }

  /** One message as the transport delivered it. */
  push(msg: InputMessage): void {
    this.queue.push(msg);
    this.delivered();
  }

  next(): InputMessage | Promise<InputMessage | LogGap> | undefined {
    const head = this.queue.peek();
    if (head === undefined) return undefined;
    if (head.seq > this.expected) return this.readMissing(this.expected++, head.seq);
    this.queue.shift();
    if (head.seq === this.expected) {
      this.expected++;
      this.filling = false;
    }
    return head;
  }

  get queued(): number {
    return this.queue.length;
  }

  peek(i: number): InputMessage | undefined {
    return this.queue.at(i);
  }

  /**
   * Where a delivery made again (its transport lost) starts: right after the last input queued or
   * handed out, so that nothing comes twice and nothing is skipped.
   */
  get resumeSeq(): number {
    const last = this.queue.at(this.queue.length - 1);
    return Math.max(this.expected, last === undefined ? 0 : last.seq + 1);
  }

  close(): Promise<void> {
    return this.source.close();
  }

  private async readMissing(seq: number, delivered: number): Promise<InputMessage | LogGap> {
    const found = await this.source.read(seq, delivered - 1);
    if (!this.filling) {
      this.filling = true;
      // deleted inputs (an erasure's) are expected; a stored one the transport skipped is not
      if (found === undefined) this.logger.debug({ from: seq, to: delivered - 1 }, 'inputs deleted from the log: skipping them');
      else this.logger.warn({ from: seq, to: delivered - 1 }, 'inputs missing from the delivery: reading them from the log');
    }
    return found ?? { seq, deleted: true };
  }
}
