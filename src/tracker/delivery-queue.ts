/**
 * The delivery engine of the network backends (HTTP, NATS): a bounded queue, in events and in
 * bytes, drained in the background in batches by a transport the backend gives, with retries
 * (exponential backoff, full jitter, `Retry-After`) and an exact account of every event.
 *
 * `send` is on the tracker's `emit` path: it serialises the event once, checks its size, pushes
 * the JSON onto a ring queue and at most arms a timer. It never blocks, never throws, never calls
 * user code: drops are counted at once and reported to the `onDrop` callbacks a moment later
 * (batched, before any `flush`/`close` that follows resolves).
 *
 * Every event given is, at any moment, exactly one of: `sent` (the server stored it), `failed`
 * (the server refused it: reported as `rejected`), `dropped` (`overflow`, `closed`, `no_ids`,
 * `too_large`) or `pending` (queued, or in a batch in flight or waiting to be retried).
 */
import type { Logger } from 'pino';
import { InvalidConfigError, XrefError, quote } from '../domain/errors.ts';
import { defaultLimits } from '../domain/limits.ts';
import { componentLogger } from '../log.ts';
import { RingQueue } from '../ring-queue.ts';
import { LogThrottle, timerMs } from './timing.ts';
import type { Backend, BackendHost, BackendStats, DropReason, OnDrop, TrackerEvent, WaitOptions } from './types.ts';

/** Which events make room when the queue is full: the oldest queued (default), or the one being sent. */
export type OverflowPolicy = 'drop-oldest' | 'drop-newest';

/** The queue options every network backend takes. */
export interface DeliveryOptions {
  /** Most events queued (not yet in a batch); default 10,000. */
  maxQueueEvents?: number;
  /** Most bytes of JSON queued; default 16 MiB. */
  maxQueueBytes?: number;
  /** Largest event, as JSON bytes; a larger one is dropped as `too_large` at send. Default 32 KiB (the envelope's limit). */
  maxEventBytes?: number;
  /** Events per batch: a batch starts as soon as this many are queued. */
  flushAt?: number;
  /** Longest an event waits in the queue for its batch to fill, in ms. */
  flushIntervalMs?: number;
  /** Batches in flight (or waiting to be retried) at once. */
  maxInFlight?: number;
  /** First retry delay ceiling, in ms (doubles each attempt); default 100. */
  minRetryDelayMs?: number;
  /** Largest retry delay, in ms; default 30,000. */
  maxRetryDelayMs?: number;
  /** When the queue is full: `drop-oldest` (default) or `drop-newest`. */
  overflow?: OverflowPolicy;
  /** Told of every event this backend could not deliver (the tracker's `onDrop` is told too). */
  onDrop?: OnDrop;
}

/** One item of a batch the server refused for good, by its index in the batch. */
export interface ItemRejection {
  readonly index: number;
  readonly error: Error;
}

/**
 * What a transport says of one attempt at a batch:
 * - `delivered`: stored, except the items listed in `rejected` (refused for good, with the server's error);
 * - `retry`: nothing known to be stored (a network error, a 5xx, a 408 or 429): try again, after `afterMs` if the server said so;
 * - `refused`: nothing stored and trying again will not help (a 4xx): every item fails, with its own
 *   error when listed in `rejected`, else with `error`.
 */
export type Outcome =
  | { readonly kind: 'delivered'; readonly rejected?: readonly ItemRejection[] }
  | { readonly kind: 'retry'; readonly error: Error; readonly afterMs?: number }
  | { readonly kind: 'refused'; readonly error: Error; readonly rejected?: readonly ItemRejection[] };

/** One attempt at a batch, as the transport gets it. */
export interface BatchAttempt {
  /** The events' JSON, as serialised at send. */
  readonly jsons: readonly string[];
  /** The events' ids, in the same order (when the queue was asked to keep them, else empty). */
  readonly ids: readonly string[];
  /** Sum of the JSON lengths in bytes. */
  readonly bytes: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Aborted when `close()`'s timeout ends: the outcome no longer counts. */
  readonly signal: AbortSignal;
}

export type Transport = (batch: BatchAttempt) => Promise<Outcome>;

/** The defaults a backend gives for the options it tunes (the rest have the queue's). */
export interface DeliveryDefaults {
  readonly flushAt: number;
  readonly flushIntervalMs: number;
  readonly maxInFlight: number;
  /** Most bytes of JSON in one batch (e.g. the collector's request limit); none: no limit. */
  readonly maxBatchBytes?: number;
}

export interface DeliveryQueueOptions extends DeliveryOptions {
  /** The backend's kind, for errors and logs (`httpBackend`, `natsBackend`). */
  readonly kind: string;
  readonly transport: Transport;
  readonly defaults: DeliveryDefaults;
  /** Keep each event's id beside its JSON (the NATS backend's dedup header). */
  readonly keepIds?: boolean;
  /** Drop events without any identifier as `no_ids` (xref's own backends); default true. */
  readonly requireIds?: boolean;
  /** For tests: the jitter's random source (default Math.random). */
  readonly random?: () => number;
}

export const QUEUE_DEFAULTS = {
  maxQueueEvents: 10_000,
  maxQueueBytes: 16 * 1024 * 1024,
  maxEventBytes: defaultLimits().eventBytes,
  minRetryDelayMs: 100,
  maxRetryDelayMs: 30_000,
  overflow: 'drop-oldest' as OverflowPolicy,
};

/** How long `flush()` and `close()` wait by default. */
export const DEFAULT_WAIT_MS = 10_000;

/** A `Retry-After` longer than this is cut to it. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/**
 * The delay before retry number `attempt` (1 for the first retry), "full jitter": uniform in
 * [0, min(maxMs, minMs × 2^(attempt-1))).
 */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt - 1, 52));
  return Math.floor(random() * ceiling);
}

/**
 * A `Retry-After` header in ms from `nowMs`: delay-seconds (`120`, `1.5`) or an HTTP date; undefined
 * when absent or unreadable; 0 for a date in the past; at most MAX_RETRY_AFTER_MS.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.ceil(ms)));
}

interface Batch {
  readonly jsons: string[];
  readonly ids: string[];
  readonly bytes: number;
  /** Sequence number of its first event (events are numbered as they are queued). */
  readonly firstSeq: number;
  attempt: number;
  controller: AbortController | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Counted (sent, failed or dropped): a later outcome is ignored. */
  done: boolean;
}

interface Waiter {
  readonly through: number;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

interface DropReport {
  readonly reason: DropReason;
  readonly error: Error | undefined;
  /** Events given at send, or the JSON of queued ones (parsed when reported). */
  readonly items: Array<TrackerEvent | string>;
}

function positiveInteger(kind: string, field: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidConfigError(`${kind}.${field}`, value, min === 0 ? 'must be an integer >= 0' : `must be an integer >= ${min}`);
  }
  return value;
}

function hasAnyKey(ids: unknown): boolean {
  if (typeof ids !== 'object' || ids === null) return false;
  for (const _ in ids) return true;
  return false;
}

export class DeliveryQueue {
  readonly kind: string;
  private readonly transport: Transport;
  private readonly maxQueueEvents: number;
  private readonly maxQueueBytes: number;
  private readonly maxEventBytes: number;
  private readonly maxBatchBytes: number;
  private readonly flushAt: number;
  private readonly flushIntervalMs: number;
  private readonly maxInFlight: number;
  private readonly minRetryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly dropOldest: boolean;
  private readonly keepIds: boolean;
  private readonly requireIds: boolean;
  private readonly random: () => number;
  private readonly onDrop: OnDrop | undefined;

  private host: BackendHost | undefined;
  private log: Logger | undefined;

  private readonly jsons = new RingQueue<string>();
  private readonly sizes = new RingQueue<number>();
  private readonly ids = new RingQueue<string>();
  private queuedBytes = 0;
  /** Sequence number of the next event queued, and of the front one (equal: the queue is empty). */
  private nextSeq = 1;
  private headSeq = 1;
  /** Every queued event up to this sequence is due: sent without waiting for a full batch. */
  private dueThrough = 0;
  private readonly inFlight = new Set<Batch>();
  private inFlightEvents = 0;
  private intervalTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private readonly waiters = new Set<Waiter>();

  private sent = 0;
  private failed = 0;
  private dropped = 0;
  private readonly droppedBy: Partial<Record<DropReason, number>> = {};

  private reports: DropReport[] = [];
  private reportScheduled = false;
  private readonly dropLogs = new Map<DropReason, LogThrottle>();

  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: DeliveryQueueOptions) {
    const { kind, defaults } = options;
    this.kind = kind;
    this.transport = options.transport;
    this.maxQueueEvents = positiveInteger(kind, 'maxQueueEvents', options.maxQueueEvents ?? QUEUE_DEFAULTS.maxQueueEvents);
    this.maxQueueBytes = positiveInteger(kind, 'maxQueueBytes', options.maxQueueBytes ?? QUEUE_DEFAULTS.maxQueueBytes);
    this.maxBatchBytes = positiveInteger(kind, 'maxBatchBytes', defaults.maxBatchBytes ?? Number.MAX_SAFE_INTEGER);
    const maxEventBytes = positiveInteger(kind, 'maxEventBytes', options.maxEventBytes ?? Math.min(QUEUE_DEFAULTS.maxEventBytes, this.maxBatchBytes - 2, this.maxQueueBytes));
    if (maxEventBytes > this.maxQueueBytes) throw new InvalidConfigError(`${kind}.maxEventBytes`, maxEventBytes, `must be at most maxQueueBytes (${this.maxQueueBytes})`);
    // a batch of one is the event and its two brackets
    if (maxEventBytes + 2 > this.maxBatchBytes) throw new InvalidConfigError(`${kind}.maxEventBytes`, maxEventBytes, `must be at most the largest batch less 2 (${this.maxBatchBytes - 2} bytes)`);
    this.maxEventBytes = maxEventBytes;
    this.flushAt = positiveInteger(kind, 'flushAt', options.flushAt ?? defaults.flushAt);
    this.flushIntervalMs = positiveInteger(kind, 'flushIntervalMs', options.flushIntervalMs ?? defaults.flushIntervalMs, 0);
    this.maxInFlight = positiveInteger(kind, 'maxInFlight', options.maxInFlight ?? defaults.maxInFlight);
    this.minRetryDelayMs = positiveInteger(kind, 'minRetryDelayMs', options.minRetryDelayMs ?? QUEUE_DEFAULTS.minRetryDelayMs);
    this.maxRetryDelayMs = positiveInteger(kind, 'maxRetryDelayMs', options.maxRetryDelayMs ?? QUEUE_DEFAULTS.maxRetryDelayMs);
    if (this.maxRetryDelayMs < this.minRetryDelayMs) throw new InvalidConfigError(`${kind}.maxRetryDelayMs`, this.maxRetryDelayMs, `must be at least minRetryDelayMs (${this.minRetryDelayMs})`);
    const overflow = options.overflow ?? QUEUE_DEFAULTS.overflow;
    if (overflow !== 'drop-oldest' && overflow !== 'drop-newest') throw new InvalidConfigError(`${kind}.overflow`, overflow, "must be 'drop-oldest' or 'drop-newest'");
    this.dropOldest = overflow === 'drop-oldest';
    if (options.onDrop !== undefined && typeof options.onDrop !== 'function') throw new InvalidConfigError(`${kind}.onDrop`, options.onDrop, 'must be a function');
    this.onDrop = options.onDrop;
    this.keepIds = options.keepIds === true;
    this.requireIds = options.requireIds !== false;
    this.random = options.random ?? Math.random;
  }

  /** The tracker's (or a routing backend's) host: its logger and its `onDrop`. */
  attach(host: BackendHost): void {
    this.host = host;
    this.log = host.logger;
  }

  get logger(): Logger {
    return (this.log ??= componentLogger('tracker').child({ backend: this.kind }));
  }

  /** Queues one event (O(1)); never blocks, never throws. */
  send(event: TrackerEvent): void {
    if (this.closing) return this.dropNow(event, 'closed', undefined);
    if (this.requireIds && !hasAnyKey(event?.ids)) return this.dropNow(event, 'no_ids', undefined);
    if (this.keepIds && (typeof event.id !== 'string' || event.id === '')) {
      return this.failNow(event, new XrefError('XREF_INVALID_EVENT', `id must be a non-empty string, got ${quote(event.id)}`, { field: 'id' }));
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch (error) {
      return this.failNow(event, new XrefError('XREF_INVALID_EVENT', `event ${quoteId(event)} cannot be sent: it is not serialisable as JSON (${(error as Error).message})`, { cause: error }));
    }
    if (json === undefined) return this.failNow(event, new XrefError('XREF_INVALID_EVENT', 'the event is not a JSON value', { field: 'event' }));
    const bytes = Buffer.byteLength(json);
    if (bytes > this.maxEventBytes) return this.dropNow(event, 'too_large', new XrefError('XREF_LIMIT_EXCEEDED', `event ${quoteId(event)} is ${bytes} bytes, over ${this.kind}'s maxEventBytes of ${this.maxEventBytes}`, { field: 'event' }));
    while (this.jsons.length >= this.maxQueueEvents || this.queuedBytes + bytes > this.maxQueueBytes) {
      if (!this.dropOldest || this.jsons.length === 0) return this.dropNow(event, 'overflow', undefined);
      this.dropFront();
    }
    this.jsons.push(json);
    this.sizes.push(bytes);
    if (this.keepIds) this.ids.push(event.id);
    this.queuedBytes += bytes;
    this.nextSeq++;
    if (this.jsons.length >= this.flushAt) {
      if (!this.pumpScheduled && this.inFlight.size < this.maxInFlight) {
        this.pumpScheduled = true;
        setImmediate(this.pumpNow);
      }
    } else if (this.intervalTimer === undefined) {
      this.armInterval();
    }
  }

  /** Every event given so far: `sent + failed + dropped + pending`. */
  stats(): BackendStats {
    return { sent: this.sent, failed: this.failed, dropped: this.dropped, pending: this.jsons.length + this.inFlightEvents, droppedBy: { ...this.droppedBy } };
  }

  /** Resolves once every event queued before it is sent or failed (or dropped), or when the timeout ends; never rejects. */
  flush(options: WaitOptions = {}): Promise<void> {
    const through = this.nextSeq - 1;
    return this.waitThrough(through, options.timeoutMs ?? DEFAULT_WAIT_MS).then(() => this.reportDrops());
  }

  /**
   * Stops taking events (later ones are dropped as `closed`), sends what is queued, waits for it up
   * to the timeout, then drops what is still undelivered as `closed` (in-flight attempts are
   * aborted, their outcome ignored): after it, nothing is pending. Idempotent.
   */
  close(options: WaitOptions = {}): Promise<void> {
    this.closed ??= this.closeOnce(options.timeoutMs ?? DEFAULT_WAIT_MS);
    return this.closed;
  }

  private async closeOnce(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.intervalTimer !== undefined) clearTimeout(this.intervalTimer);
    this.intervalTimer = undefined;
    await this.waitThrough(this.nextSeq - 1, timeoutMs);
    this.abandonAll();
    this.reportDrops();
  }

  // ------------------------------------------------------------------------------------------
  // batching

  private readonly pumpNow = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private armInterval(): void {
    if (this.closing) return;
    this.intervalTimer = setTimeout(this.onInterval, this.flushIntervalMs);
  }

  private readonly onInterval = (): void => {
    this.intervalTimer = undefined;
    this.dueThrough = Math.max(this.dueThrough, this.nextSeq - 1);
    this.pump();
  };

  /** Starts batches while a slot is free and the front of the queue is due (a full batch, the interval, a flush, close). */
  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.jsons.length > 0 && (this.closing || this.jsons.length >= this.flushAt || this.headSeq <= this.dueThrough)) {
      this.start(this.takeBatch());
    }
    if (this.jsons.length > 0 && this.intervalTimer === undefined && !this.closing && this.headSeq > this.dueThrough) this.armInterval();
  }

  private takeBatch(): Batch {
    const firstSeq = this.headSeq;
    const jsons: string[] = [];
    const ids: string[] = [];
    let bytes = 0;
    // the body of a batch is `[` + the events joined by `,` + `]`
    while (jsons.length < this.flushAt && this.jsons.length > 0) {
      const size = this.sizes.peek()!;
      if (jsons.length > 0 && bytes + size + jsons.length + 2 > this.maxBatchBytes) break;
      jsons.push(this.jsons.shift()!);
      this.sizes.shift();
      if (this.keepIds) ids.push(this.ids.shift()!);
      bytes += size;
      this.headSeq++;
    }
    this.queuedBytes -= bytes;
    return { jsons, ids, bytes, firstSeq, attempt: 0, controller: undefined, timer: undefined, done: false };
  }

  private start(batch: Batch): void {
    this.inFlight.add(batch);
    this.inFlightEvents += batch.jsons.length;
    this.attempt(batch);
  }

  private attempt(batch: Batch): void {
    batch.timer = undefined;
    batch.attempt++;
    const controller = new AbortController();
    batch.controller = controller;
    let outcome: Promise<Outcome>;
    try {
      outcome = this.transport({ jsons: batch.jsons, ids: batch.ids, bytes: batch.bytes, attempt: batch.attempt, signal: controller.signal });
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then(
      (result) => this.onOutcome(batch, result),
      (error: unknown) =>
        this.onOutcome(batch, { kind: 'retry', error: error instanceof Error ? error : new XrefError('XREF_NOT_READY', `the delivery failed: ${String(error)}`) }),
    );
  }

  private onOutcome(batch: Batch, outcome: Outcome): void {
    if (batch.done) return;
    switch (outcome.kind) {
      case 'delivered': {
        const rejected = validRejections(outcome.rejected, batch.jsons.length);
        this.sent += batch.jsons.length - rejected.length;
        for (const { index, error } of rejected) this.countFailed(batch.jsons[index]!, error);
        this.settle(batch);
        return;
      }
      case 'refused': {
        const rejected = validRejections(outcome.rejected, batch.jsons.length);
        const own = new Set(rejected.map((r) => r.index));
        for (const { index, error } of rejected) this.countFailed(batch.jsons[index]!, error);
        const rest = batch.jsons.filter((_, i) => !own.has(i));
        if (rest.length > 0) this.countFailedAll(rest, outcome.error);
        this.logger.warn({ backend: this.host?.name, events: batch.jsons.length, err: outcome.error }, 'the server refused a batch for good');
        this.settle(batch);
        return;
      }
      case 'retry': {
        // a Retry-After of 0 (or a date gone by) still waits the backoff's least: never a retry loop
        const delay = Math.max(outcome.afterMs ?? 0, backoffMs(batch.attempt, this.minRetryDelayMs, this.maxRetryDelayMs, this.random));
        if (batch.attempt === 1 || batch.attempt % 10 === 0) {
          this.logger.warn({ backend: this.host?.name, events: batch.jsons.length, attempt: batch.attempt, retryInMs: delay, err: outcome.error }, 'delivery failed, will retry');
        }
        batch.controller = undefined;
        batch.timer = setTimeout(() => this.attempt(batch), delay);
        return;
      }
    }
  }

  private settle(batch: Batch): void {
    batch.done = true;
    this.inFlight.delete(batch);
    this.inFlightEvents -= batch.jsons.length;
    this.pump();
    this.checkWaiters();
  }

  // ------------------------------------------------------------------------------------------
  // waiting

  /** The lowest sequence number not yet counted as sent, failed or dropped. */
  private lowestUnsettled(): number {
    let lowest = this.headSeq;
    for (const batch of this.inFlight) if (batch.firstSeq < lowest) lowest = batch.firstSeq;
    return lowest;
  }

  private waitThrough(through: number, timeoutMs: number): Promise<void> {
    if (this.lowestUnsettled() > through) return Promise.resolve();
    this.dueThrough = Math.max(this.dueThrough, through);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        through,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          resolve();
        }, timerMs(timeoutMs)),
      };
      this.waiters.add(waiter);
      this.pump();
    });
  }

  private checkWaiters(): void {
    if (this.waiters.size === 0) return;
    const lowest = this.lowestUnsettled();
    for (const waiter of this.waiters) {
      if (lowest > waiter.through) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** close()'s timeout ended: every event still queued or in flight is dropped as `closed`. */
  private abandonAll(): void {
    const queued: string[] = [];
    while (this.jsons.length > 0) queued.push(this.jsons.shift()!);
    this.sizes.clear();
    this.ids.clear();
    this.queuedBytes = 0;
    this.headSeq = this.nextSeq;
    if (queued.length > 0) this.countDropped(queued, 'closed', undefined);
    for (const batch of [...this.inFlight]) {
      batch.done = true;
      if (batch.timer !== undefined) clearTimeout(batch.timer);
      batch.controller?.abort(new XrefError('XREF_CLOSED', `${this.kind} closed before this batch was delivered`));
      this.inFlight.delete(batch);
      this.inFlightEvents -= batch.jsons.length;
      this.countDropped(batch.jsons, 'closed', undefined);
    }
    if (this.jsons.length + this.inFlightEvents > 0) this.logger.error({ pending: this.jsons.length + this.inFlightEvents }, 'events pending after close: a bug');
    this.checkWaiters();
  }

  // ------------------------------------------------------------------------------------------
  // accounting and drop reports

  /** The oldest queued event makes room (drop-oldest). */
  private dropFront(): void {
    const json = this.jsons.shift()!;
    this.queuedBytes -= this.sizes.shift()!;
    if (this.keepIds) this.ids.shift();
    this.headSeq++;
    this.dropped++;
    this.droppedBy.overflow = (this.droppedBy.overflow ?? 0) + 1;
    this.report('overflow', undefined, json);
    this.checkWaiters();
  }

  private dropNow(event: TrackerEvent, reason: DropReason, error: Error | undefined): void {
    this.dropped++;
    this.droppedBy[reason] = (this.droppedBy[reason] ?? 0) + 1;
    this.report(reason, error, event);
  }

  private failNow(event: TrackerEvent, error: Error): void {
    this.failed++;
    this.droppedBy.rejected = (this.droppedBy.rejected ?? 0) + 1;
    this.report('rejected', error, event);
  }

  private countFailed(json: string, error: Error): void {
    this.failed++;
    this.droppedBy.rejected = (this.droppedBy.rejected ?? 0) + 1;
    this.report('rejected', error, json);
  }

  private countFailedAll(jsons: readonly string[], error: Error): void {
    this.failed += jsons.length;
    this.droppedBy.rejected = (this.droppedBy.rejected ?? 0) + jsons.length;
    this.reports.push({ reason: 'rejected', error, items: [...jsons] });
    this.scheduleReports();
  }

  private countDropped(jsons: readonly string[], reason: DropReason, error: Error | undefined): void {
    this.dropped += jsons.length;
    this.droppedBy[reason] = (this.droppedBy[reason] ?? 0) + jsons.length;
    this.reports.push({ reason, error, items: [...jsons] });
    this.scheduleReports();
  }

  private report(reason: DropReason, error: Error | undefined, item: TrackerEvent | string): void {
    const last = this.reports[this.reports.length - 1];
    if (last !== undefined && last.reason === reason && last.error === undefined && error === undefined) last.items.push(item);
    else this.reports.push({ reason, error, items: [item] });
    this.scheduleReports();
  }

  private scheduleReports(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => this.reportDrops());
  }

  /** Tells the backend's `onDrop` and the host's of every drop counted so far. */
  private reportDrops(): void {
    this.reportScheduled = false;
    if (this.reports.length === 0) return;
    const reports = this.reports;
    this.reports = [];
    for (const { reason, error, items } of reports) {
      const events = items.map(toEvent);
      this.logDrop(reason, events.length, error);
      for (const listener of [this.onDrop, this.host?.onDrop]) {
        if (listener === undefined) continue;
        try {
          listener(events, reason, error);
        } catch (thrown) {
          this.logger.warn({ err: thrown, reason }, 'an onDrop callback threw');
        }
      }
    }
  }

  /** A warning per reason at most every 5 s, with the count since the last one. */
  private logDrop(reason: DropReason, count: number, error: Error | undefined): void {
    let throttle = this.dropLogs.get(reason);
    if (throttle === undefined) this.dropLogs.set(reason, (throttle = new LogThrottle(5000)));
    const unlogged = throttle.due(count);
    if (unlogged !== undefined) this.logger.warn({ backend: this.host?.name, reason, events: unlogged + count, err: error }, `events not delivered: ${reason}`);
  }
}

function toEvent(item: TrackerEvent | string): TrackerEvent {
  return typeof item === 'string' ? (JSON.parse(item) as TrackerEvent) : item;
}

function quoteId(event: TrackerEvent): string {
  return typeof event?.id === 'string' ? event.id : '(without an id)';
}

/** The rejections that name an item of the batch, each item once. */
function validRejections(rejected: readonly ItemRejection[] | undefined, size: number): ItemRejection[] {
  if (rejected === undefined || rejected.length === 0) return [];
  const seen = new Set<number>();
  const out: ItemRejection[] = [];
  for (const r of rejected) {
    if (!Number.isInteger(r.index) || r.index < 0 || r.index >= size || seen.has(r.index)) continue;
    seen.add(r.index);
    out.push(r);
  }
  return out;
}

/** A backend whose events go through a DeliveryQueue: the Backend methods, handed to it. */
export abstract class QueuedBackend implements Backend {
  protected abstract readonly queue: DeliveryQueue;

  attach(host: BackendHost): void {
    this.queue.attach(host);
  }

  send(event: TrackerEvent): void {
    this.queue.send(event);
  }

  flush(options?: WaitOptions): Promise<void> {
    return this.queue.flush(options);
  }

  close(options?: WaitOptions): Promise<void> {
    return this.queue.close(options);
  }

  stats(): BackendStats {
    return this.queue.stats();
  }
}
