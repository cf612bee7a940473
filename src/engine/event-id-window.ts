/**
 * The event ids of the last `size` inputs, for dedup. An id is remembered until `size` inputs
 * have passed since its latest occurrence. A restarted service refills it by reading the same
 * number of inputs back, so dedup decides the same with or without a restart in between, and the
 * memory it takes is bounded however long the service runs. `size` Infinity: every id ever seen.
 */
export class EventIdWindow {
  /** Id → the input it last occurred in. */
  private readonly latest = new Map<string, number>();
  /** Occurrences in input order (from `head` on), to forget them once out of the window. */
  private readonly ids: string[] = [];
  private readonly seqs: number[] = [];
  private head = 0;

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
    let head = this.head;
    while (head < this.seqs.length && this.seqs[head]! < seq) {
      const id = this.ids[head]!;
      if (this.latest.get(id) === this.seqs[head]) this.latest.delete(id);
      head++;
    }
    this.head = head;
    if (head > 65_536 && head * 2 > this.seqs.length) {
      this.ids.splice(0, head);
      this.seqs.splice(0, head);
      this.head = 0;
    }
  }
}
