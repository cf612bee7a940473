/** Timers the tracker waits with: a delay clamped to what `setTimeout` can hold, a race against it, the next turn of the loop. */

/** The longest delay `setTimeout` holds (2^31 − 1 ms, about 24.8 days); a longer one would fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` clamped to 0 … MAX_TIMER_MS. */
export function timerMs(ms: number): number {
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms > 0 ? ms : 0;
}

/** Resolves true when `promise` settles (either way), false when `ms` passes first (clamped: see MAX_TIMER_MS; 0: already settled). */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timerMs(ms))));
  const settled = promise.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after the callbacks `setImmediate` holds now have run. */
export function nextImmediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * At most one log line every `everyMs`: `due(count)` counts what happened and says whether a line
 * is due now, and how many went unlogged since the last one (undefined: not now).
 */
export class LogThrottle {
  private lastAt = Number.NEGATIVE_INFINITY;
  private unlogged = 0;

  constructor(private readonly everyMs: number) {}

  due(count = 1, now = Date.now()): number | undefined {
    if (now - this.lastAt < this.everyMs) {
      this.unlogged += count;
      return undefined;
    }
    const unlogged = this.unlogged;
    this.lastAt = now;
    this.unlogged = 0;
    return unlogged;
  }
}
