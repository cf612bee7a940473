import { RingQueue } from '../ring-queue.ts';

/**
 * The event ids of the last `size` inputs, for dedup. An id is remembered until `size` inputs
 * have passed since its latest occurrence. A restarted service refills it by reading the same
 * number of inputs back, so dedup decides the same with or without a restart in between, and the
 * memory it takes is bounded however long the service runs. `size` Infinity: every id ever seen.
 */
export class EventIdWindow {
  /** Id → the input it last occurred in. */
  private readonly latest = new Map<string, number>();
  /** Occurrences in input order, to forget them once out of the window. */
  private readonly ids = new RingQueue<string>();
  private readonly seqs = new RingQueue<number>();

  constructor(private readonly size = Infinity) {}

  /**
   * Whether `id` occurred in the `size` inputs before input `seq`; then notes it at `seq`.
   * Inputs come in log order (`seq` never decreases).
   */
  check(id: string, seq: number): boolean {
    this.forgetBefore(seq - this.size);
    const seen = this.latest.has(id);
    this.note(id, seq);
    return seen;
  }

  /** Notes an occurrence without checking (refilling the window after a restart, in log order). */
  note(id: string, seq: number): void {
    this.latest.set(id, seq);
    if (this.size === Infinity) return;
    this.ids.push(id);
    this.seqs.push(seq);
  }

  get count(): number {
    return this.latest.size;
  }

  private forgetBefore(seq: number): void {
    for (let oldest = this.seqs.peek(); oldest !== undefined && oldest < seq; oldest = this.seqs.peek()) {
      const id = this.ids.shift()!;
      if (this.latest.get(id) === this.seqs.shift()) this.latest.delete(id);
    }
  }
}
