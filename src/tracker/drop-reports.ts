/**
 * Drops reported a moment later: `emit` never runs a user's `onDrop` itself. Each drop is queued
 * and the listeners are told on the next turn of the loop (`setImmediate`), in order, so a slow
 * `onDrop` never blocks `emit` and an `onDrop` that emits cannot recurse. `drain()` tells them of
 * what is queued at once (`flush`/`close` call it before they resolve).
 */
import type { Logger } from 'pino';
import type { DropReason, OnDrop, TrackerEvent } from './types.ts';

interface DropReport {
  readonly events: TrackerEvent[];
  readonly reason: DropReason;
  readonly error: Error | undefined;
}

export class DropReports {
  private queued: DropReport[] = [];
  private scheduled = false;

  /** `listeners()` is read when reporting (a host attached later is heard too); `logger()` logs a listener that throws. */
  constructor(
    private readonly listeners: () => ReadonlyArray<OnDrop | undefined>,
    private readonly logger: () => Logger,
  ) {}

  /** Queues a drop (events sharing a reason and no error go in one call). */
  add(events: readonly TrackerEvent[], reason: DropReason, error?: Error): void {
    const last = this.queued[this.queued.length - 1];
    if (last !== undefined && last.reason === reason && last.error === undefined && error === undefined) last.events.push(...events);
    else this.queued.push({ events: [...events], reason, error });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  /** Tells the listeners of every drop queued so far; drops queued while they run are told on the next turn. */
  drain(): void {
    this.scheduled = false;
    if (this.queued.length === 0) return;
    const reports = this.queued;
    this.queued = [];
    const listeners = this.listeners();
    for (const { events, reason, error } of reports) {
      for (const listener of listeners) {
        if (listener === undefined) continue;
        try {
          listener(events, reason, error);
        } catch (thrown) {
          this.logger().error({ err: thrown, reason }, 'onDrop threw');
        }
      }
    }
  }
}
