import { RingQueue } from '../ring-queue.ts';

/** What the ledger needs of an input. */
export interface LedgerInput {
  readonly seq: number;
  /** Whether acking it means something (one read by sequence to fill a gap cannot be acked). */
  readonly ackable: boolean;
}

/** An applied input waiting for its outputs to be stored: the token passed with each of them. */
export interface InFlight<M extends LedgerInput = LedgerInput> {
  readonly input: M;
  /** Outputs not stored yet. */
  left: number;
  /** An output was refused: the input stays unacked, and so does every input after it. */
  refused: boolean;
}

/**
 * Which inputs may be acked, in a log acked cumulatively (an ack covers every input before it):
 * inputs are registered as they are applied, in log order, with the count of their outputs, and
 * an input may be acked once it and every input before it has all its outputs stored. One ack is
 * enough for all of those: `ackDue` is called when the first becomes ackable after the last
 * `takeAck`, so that the caller sends one ack for a whole batch of stored outputs. Pure: no
 * timers, no I/O.
 */
export class AckLedger<M extends LedgerInput = LedgerInput> {
  /** Applied inputs not settled yet, in log order. */
  private readonly inFlight = new RingQueue<InFlight<M>>();
  /** The input to ack, once the caller takes it. */
  private due: M | undefined;
  /** Checkpoints (or anyone) waiting for every input up to their sequence to be stored. */
  private readonly waiters: Array<{ seq: number; resolve: () => void }> = [];

  /** @param ackDue called when an ack becomes due while none was (the caller then calls `takeAck`, e.g. in a microtask). */
  constructor(private readonly ackDue: () => void = () => {}) {}

  /**
   * An input applied, in log order, with `outputs` outputs to be stored; returns the token to
   * report each of them with. An input with none is settled at once.
   */
  applied(input: M, outputs: number): InFlight<M> {
    const entry: InFlight<M> = { input, left: outputs, refused: false };
    this.inFlight.push(entry);
    if (outputs === 0) this.settle();
    return entry;
  }

  /** One output of `entry` is stored. */
  stored(entry: InFlight<M>): void {
    if (--entry.left === 0 && !entry.refused) this.settle();
  }

  /**
   * One output of `entry` was refused for good: the input is never acked, nor any after it, and
   * `storedThrough` never passes it. Returns true for its first refusal (to report it once).
   */
  refused(entry: InFlight<M>): boolean {
    const first = !entry.refused;
    entry.refused = true;
    entry.left--;
    return first;
  }

  /** The input to ack now, once (every input through it has its outputs stored), if any. */
  takeAck(): M | undefined {
    const due = this.due;
    this.due = undefined;
    return due;
  }

  /**
   * Whether an input delivered again after it was applied may be acked at once: only if no earlier
   * input is in flight (acking it would ack that one too; that one's own ack will come).
   */
  mayAckRedelivered(seq: number): boolean {
    return this.lowestInFlight() > seq;
  }

  /** The lowest input whose outputs are not all stored (Infinity when none). */
  lowestInFlight(): number {
    return this.inFlight.peek()?.input.seq ?? Infinity;
  }

  /** Applied inputs whose outputs are not all stored. */
  get size(): number {
    return this.inFlight.length;
  }

  /** Resolves once every input applied up to `seq` has all its outputs stored. */
  storedThrough(seq: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ seq, resolve });
      this.wakeWaiters();
    });
  }

  /** Settles the inputs at the front whose outputs are all stored; the last ackable one becomes due. */
  private settle(): void {
    let ackable: M | undefined;
    for (let entry = this.inFlight.peek(); entry !== undefined && entry.left === 0 && !entry.refused; entry = this.inFlight.peek()) {
      this.inFlight.shift();
      if (entry.input.ackable) ackable = entry.input;
    }
    if (ackable !== undefined) {
      const wasDue = this.due !== undefined;
      this.due = ackable;
      if (!wasDue) this.ackDue();
    }
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const lowest = this.lowestInFlight();
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (waiter.seq < lowest) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}
