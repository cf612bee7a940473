/**
 * How many error records are kept in full in a storm: at most `perSecond` per reason per second;
 * the rest are only counted. Pure: the caller says which second a rejection falls in, so the
 * engine, which gives the input's publish time, keeps the same records again on a replay of the
 * same inputs; the collector and `xref publish` give the wall clock.
 */
export class ErrorBudget {
  /** Rejections seen, by reason (kept or not). */
  readonly total: Record<string, number> = {};
  /** Rejections not kept in full, by reason. */
  readonly dropped: Record<string, number> = {};
  private second = Number.NaN;
  private readonly used = new Map<string, number>();

  constructor(readonly perSecond: number) {}

  /**
   * Counts one rejection of `reason` at `atMs` (epoch ms) and says whether its record is kept in
   * full. Another second than the last one asked about (later, or earlier: a clock set back)
   * starts a fresh allowance.
   */
  keep(reason: string, atMs: number): boolean {
    const second = Math.floor(atMs / 1000);
    if (second !== this.second) {
      this.second = second;
      this.used.clear();
    }
    this.total[reason] = (this.total[reason] ?? 0) + 1;
    const used = (this.used.get(reason) ?? 0) + 1;
    this.used.set(reason, used);
    if (used <= this.perSecond) return true;
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
    return false;
  }
}
