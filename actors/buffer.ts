import type { Bounds, Buffered } from './types.ts';

/** Pure operations on a buffer kept in log order (ascending seq). */

function insertInOrder(buffer: readonly Buffered[], item: Buffered): Buffered[] {
  const next = [...buffer, item];
  for (let i = next.length - 1; i > 0 && next[i - 1]!.seq > item.seq; i--) {
    next[i] = next[i - 1]!;
    next[i - 1] = item;
  }
  return next;
}

/** Keeps at most `max` items; what falls out is the oldest in log order. */
function cap(buffer: Buffered[], max: number): { kept: Buffered[]; dropped: Buffered[] } {
  if (buffer.length <= max) return { kept: buffer, dropped: [] };
  const cut = buffer.length - max;
  return { kept: buffer.slice(cut), dropped: buffer.slice(0, cut) };
}

export function append(buffer: readonly Buffered[], item: Buffered, bounds: Bounds) {
  return cap(insertInOrder(buffer, item), bounds.maxEvents);
}

/** Merges two clusters' buffers in log order, then applies the count bound. */
export function merge(a: readonly Buffered[], b: readonly Buffered[], bounds: Bounds) {
  const out: Buffered[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.seq <= b[j]!.seq)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return cap(out, bounds.maxEvents);
}

/** An item is expired once the watermark is more than ttl past its event time. */
export function isExpired(item: Buffered, watermark: number, ttlMs: number): boolean {
  return item.time !== undefined && item.time + ttlMs < watermark;
}

/**
 * Splits off what the watermark passed (nothing copied when nothing is). The buffer's deadline is
 * worked out here under `ttlMs`, not taken from the actor's context: a snapshot written under
 * another ttl holds another one.
 */
export function expire(buffer: readonly Buffered[], watermark: number, ttlMs: number) {
  const due = deadline(buffer, ttlMs);
  if (due === null || due >= watermark) return { kept: buffer, dropped: [] as Buffered[] };
  const kept: Buffered[] = [];
  const dropped: Buffered[] = [];
  for (const item of buffer) (isExpired(item, watermark, ttlMs) ? dropped : kept).push(item);
  return { kept, dropped };
}

/**
 * The event time at which the oldest timed item expires (the watermark must pass it), or null
 * when no item has a time. Kept in the actor's context as an absolute time.
 */
export function deadline(buffer: readonly Buffered[], ttlMs: number): number | null {
  let min = Infinity;
  for (const item of buffer) if (item.time !== undefined && item.time < min) min = item.time;
  return min === Infinity ? null : min + ttlMs;
}
