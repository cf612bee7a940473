/**
 * The tracker's shapes, shared by the tracker, its processors and its backends: the event it
 * builds, what a backend is, and the delivery report `flush()` and `close()` resolve with.
 */
import type { Logger } from 'pino';

/** An event as the tracker builds it: the envelope of the engine (id, name, timestamp, ids, data, context). */
export interface TrackerEvent {
  /** A UUID (v7: time-ordered), the dedup key downstream. */
  id: string;
  /** `unknown` when emitted without one. */
  name: string;
  /** UTC ISO 8601 with milliseconds, e.g. `2026-12-01T09:15:29.243Z`. */
  timestamp: string;
  /** Identifier kind to value, filled from the tracker's `ids` mapping. */
  ids: Record<string, string>;
  data: Record<string, unknown>;
  /** The open contexts, shallow-merged in the order they were entered. */
  context: Record<string, unknown>;
  category?: string;
  session_id?: string;
}

/** Changes the event in place or returns a new one; throws `EventEmissionExit` to cancel it for its branch. */
export type Processor = (event: TrackerEvent) => TrackerEvent | void;

/**
 * Why an event was never delivered by a backend:
 * - `overflow`: its queue was full (the overflow policy chose it);
 * - `rejected`: the server refused it for good (e.g. a 400; counted as `failed`);
 * - `closed`: emitted after `close()`, or still undelivered when `close()`'s timeout ended;
 * - `no_ids`: it carries no identifier, so xref cannot take it;
 * - `too_large`: over the backend's size limit.
 */
export type DropReason = 'overflow' | 'rejected' | 'closed' | 'no_ids' | 'too_large';

/**
 * Told of every event a backend could not deliver, with the server's error for `rejected`; never
 * inside `emit` (a moment later). At the end of `close`, what a backend of the user's still held is
 * told with no events: `([], 'closed', error)`, the XREF_CLOSED error carrying `backend` and `count`.
 */
export type OnDrop = (events: readonly TrackerEvent[], reason: DropReason, error?: Error) => void;

/** One backend's account of the events it was given: `sent + failed + dropped + pending` is all of them. */
export interface BackendStats {
  /** Delivered (stored, acked). */
  sent: number;
  /** Refused by the server (or a `send` that threw): reported as `rejected`. */
  failed: number;
  /** Never sent: `overflow`, `closed`, `no_ids`, `too_large`. */
  dropped: number;
  /** Queued or in flight. */
  pending: number;
  /** `failed` and `dropped` by reason. */
  droppedBy: Partial<Record<DropReason, number>>;
}

export type Counts = Omit<BackendStats, 'droppedBy'>;

/** What `flush()` and `close()` resolve with: every event emitted so far, by leaf backend (`parent.child` for nested ones). */
export interface DeliveryReport {
  total: Counts;
  backends: Record<string, BackendStats>;
}

export interface WaitOptions {
  /** How long to wait at most (default: flush 10 s, close 10 s); then the report says what is still pending. */
  timeoutMs?: number;
}

/** What a backend is given when it is mounted in a tracker (or a routing backend). */
export interface BackendHost {
  /** The backend's path in the tree, e.g. `xref` or `analytics.caliper`. */
  readonly name: string;
  /** A child of the tracker's logger for this backend. */
  readonly logger: Logger;
  /**
   * Drops reported to the tracker's `onDrop` (the backend's own `onDrop` is called by the backend).
   * Safe to call from `send`: the tracker tells its `onDrop` a moment later (setImmediate), never inside `emit`.
   */
  readonly onDrop: OnDrop;
  /**
   * The host of a backend mounted under this one (`<name>.<child>`), with its own child logger;
   * a routing backend uses it for its children.
   */
  readonly child: (name: string) => BackendHost;
}

/**
 * A backend: `send` is called synchronously from `emit` and must not block (a network backend
 * queues). `stats()` gives its account; a backend without it is counted by its host (a `send`
 * that returns is `sent`, one that throws is `failed`). A backend made of other backends (routing)
 * lists them in `children()`, so the report shows every leaf.
 */
export interface Backend {
  send(event: TrackerEvent): void;
  flush?(options?: WaitOptions): Promise<void>;
  close?(options?: WaitOptions): Promise<void>;
  stats?(): BackendStats;
  children?(): ReadonlyMap<string, Backend>;
  /** Called once when mounted, before the first `send`. */
  attach?(host: BackendHost): void;
}
