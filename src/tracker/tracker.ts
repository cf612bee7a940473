/**
 * The tracker: `emit` builds the event (id, name, timestamp, ids, data, context), runs the
 * top-level processors, then hands it to each backend in the order given, synchronously and
 * without ever throwing. Contexts ride AsyncLocalStorage (contexts.ts). `flush` and `close`
 * resolve with a delivery report by leaf backend and never reject.
 */
import { randomFillSync } from 'node:crypto';
import type { Logger } from 'pino';
import { InvalidConfigError, XrefError, quote } from '../domain/errors.ts';
import { KIND_PATTERN } from '../domain/identifiers.ts';
import { componentLogger } from '../log.ts';
import { ContextStack } from './contexts.ts';
import { DropReports } from './drop-reports.ts';
import { type ProcessorCounters, processorCounters, runProcessors } from './processors.ts';
import { BackendSlot, RoutingBackend, addCounts, checkBackends, hostFor, leafStats, walkTree } from './routing-backend.ts';
import { LogThrottle, MAX_TIMER_MS, nextImmediate, settledWithin } from './timing.ts';
import type { Backend, BackendStats, DeliveryReport, OnDrop, Processor, TrackerEvent, WaitOptions } from './types.ts';

export interface TrackerOptions {
  /** `{ name: backend }`, each given every event in this order; the names show in reports and logs (default none). */
  backends?: Record<string, Backend>;
  /** Run on each event before any backend gets it (default none). */
  processors?: readonly Processor[];
  /**
   * Fields of the merged context or of the data that are identifiers: `{ 'context.user_id': 'db_id' }`.
   * A string value (non-empty) or an integer (as its decimal string) is taken; when two paths give
   * the same kind, the first listed that has a value wins.
   */
  ids?: Record<string, string>;
  /** The name of this event source, e.g. for the NATS subject `xref.in.<source>` (default `tracker`). */
  source?: string;
  /** Told of every event any backend drops or fails, with the reason (and the error for `rejected`). */
  onDrop?: OnDrop;
  /** The tracker's logger; each backend gets a child `{ backend: <path> }` (default: xref's, component `tracker`). */
  logger?: Logger;
}

/** `stats()`: the report, and what happened before the backends. */
export interface TrackerStats extends DeliveryReport {
  /** Every `emit` call, after `close` included. */
  emitted: number;
  closed: boolean;
  /** Over the whole tree: events a processor cancelled, and processor errors (logged, gone past). */
  processors: { cancelled: number; errors: number };
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** What `close` waits beyond `timeoutMs`, so the backends can account for what they drop at their deadline. */
const CLOSE_GRACE_MS = 50;

// ---- ids: UUID v7 (RFC 9562), monotonic within a millisecond (a 12-bit counter in rand_a) ----

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Random bytes, and the same as hex: an id takes 10 bytes (20 hex digits) of it. */
const POOL_BYTES = 16 * 1024;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolHex = '';
let poolAt = POOL_BYTES;
let lastMs = -1;
let counter = 0;
let hexMs = -1;
let msHex = '';

/** A new UUID v7 for the time `now` (ms): ordered by time, and by call within one millisecond. */
export function uuidv7(now: number = Date.now()): string {
  if (poolAt + 10 > POOL_BYTES) {
    randomFillSync(pool);
    poolHex = pool.toString('hex');
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += 10;
  if (now > lastMs) {
    lastMs = now;
    counter = (((pool[at] as number) & 0x07) << 8) | (pool[at + 1] as number); // a random start below 2048 leaves room to count up
  } else if (++counter > 0xfff) {
    lastMs++; // 4096 ids in one millisecond (or a clock gone back): borrow the next one
    counter = 0;
  }
  const ms = lastMs;
  if (ms !== hexMs) {
    hexMs = ms;
    const hi = Math.floor(ms / 0x100000000);
    const lo = ms >>> 0;
    msHex = `${HEX[(hi >>> 8) & 0xff]}${HEX[hi & 0xff]}${HEX[lo >>> 24]}${HEX[(lo >>> 16) & 0xff]}-${HEX[(lo >>> 8) & 0xff]}${HEX[lo & 0xff]}-`;
  }
  const h = at * 2;
  // version 7 in front of the counter; variant 10 in front of rand_b
  return `${msHex}${HEX[0x70 | (counter >>> 8)]}${HEX[counter & 0xff]}-${HEX[0x80 | ((pool[at + 2] as number) & 0x3f)]}${poolHex.slice(h + 6, h + 8)}-${poolHex.slice(h + 8, h + 20)}`;
}

let isoMs = -1;
let isoText = '';

/** UTC ISO 8601 with milliseconds, computed once per millisecond. */
function isoOf(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

// ---- the envelope ----

interface IdPath {
  readonly from: 'context' | 'data';
  readonly segments: readonly string[];
  readonly kind: string;
}

function compileIds(ids: unknown): IdPath[] {
  if (ids === undefined) return [];
  if (typeof ids !== 'object' || ids === null || Array.isArray(ids)) throw new InvalidConfigError('ids', ids, "must be an object of path → identifier kind, e.g. { 'context.user_id': 'db_id' }");
  return Object.entries(ids).map(([path, kind]) => {
    const segments = path.split('.');
    const from = segments.shift();
    if ((from !== 'context' && from !== 'data') || segments.length === 0 || segments.some((s) => s === '')) {
      throw new InvalidConfigError(`ids.${path}`, path, 'must be a path into the context or the data, such as context.user_id or data.email');
    }
    if (typeof kind !== 'string' || kind.length > 64 || !KIND_PATTERN.test(kind)) {
      throw new InvalidConfigError(`ids.${path}`, kind, 'must be an identifier kind: 1 to 64 of [A-Za-z0-9_-]');
    }
    return { from, segments, kind };
  });
}

function identifiers(paths: readonly IdPath[], event: TrackerEvent): Record<string, string> {
  const ids: Record<string, string> = {};
  for (let i = 0; i < paths.length; i++) {
    const path = paths[i] as IdPath;
    if (ids[path.kind] !== undefined) continue;
    let value: unknown = path.from === 'context' ? event.context : event.data;
    for (let s = 0; s < path.segments.length && value !== undefined; s++) {
      value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[path.segments[s] as string] : undefined;
    }
    if (typeof value === 'string') {
      if (value.length > 0) ids[path.kind] = value;
    } else if (typeof value === 'number' && Number.isSafeInteger(value)) ids[path.kind] = String(value);
  }
  return ids;
}

function eventName(name: unknown): string {
  if (typeof name === 'string') return name.length > 0 ? name : 'unknown';
  return name === undefined || name === null ? 'unknown' : String(name);
}

/** The event's own copy of `data` (first level); a value that is not an object is kept as `{ value }`. */
function dataOf(data: unknown): Record<string, unknown> {
  if (data === undefined || data === null) return {};
  if (typeof data === 'object' && !Array.isArray(data)) return { ...(data as Record<string, unknown>) };
  return { value: data };
}

export class Tracker {
  /** The name of this event source (option `source`). */
  readonly source: string;
  readonly logger: Logger;
  private readonly contexts = new ContextStack();
  private readonly slots: BackendSlot[] = [];
  private readonly processors: readonly Processor[];
  private readonly idPaths: readonly IdPath[];
  private readonly counters: ProcessorCounters = processorCounters();
  private readonly userOnDrop: OnDrop | undefined;
  /** What the backends drop, told to `onDrop` a moment later, never inside `emit`. */
  private readonly drops: DropReports;
  private emitted = 0;
  private closed = false;
  /** Set when `close` stopped waiting: what is still pending then is reported as dropped (`closed`). */
  private closeEnded = false;
  private closing: Promise<DeliveryReport> | undefined;
  private readonly failures = new LogThrottle(1000);

  constructor(options: TrackerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidConfigError('tracker options', options, 'must be an object');
    const { backends = {}, processors = [], source = 'tracker', onDrop, logger } = options;
    checkBackends(backends, 'backends');
    if (!Array.isArray(processors)) throw new InvalidConfigError('processors', processors, 'must be an array of functions (event) => event | void');
    processors.forEach((processor: unknown, i) => {
      if (typeof processor !== 'function') throw new InvalidConfigError(`processors[${i}]`, processor, 'must be a function (event) => event | void');
    });
    if (typeof source !== 'string' || source.length === 0) throw new InvalidConfigError('source', source, 'must be a non-empty string');
    if (onDrop !== undefined && typeof onDrop !== 'function') throw new InvalidConfigError('onDrop', onDrop, 'must be a function (events, reason, error?) => void');
    if (logger !== undefined && typeof (logger as Logger | null)?.child !== 'function') throw new InvalidConfigError('logger', logger, 'must be a pino logger');
    this.processors = [...processors];
    this.idPaths = compileIds(options.ids);
    this.source = source;
    this.userOnDrop = onDrop;
    this.logger = logger ? logger.child({ component: 'tracker' }) : componentLogger('tracker');
    this.drops = new DropReports(() => [this.userOnDrop], () => this.logger);
    const hostOnDrop: OnDrop = (events, reason, error) => {
      if (this.userOnDrop) this.drops.add(events, reason, error);
    };
    for (const [name, backend] of Object.entries(backends)) {
      const host = hostFor(this.logger, name, hostOnDrop);
      const slot = new BackendSlot(name, backend, host);
      slot.attach(host);
      this.slots.push(slot);
    }
  }

  /**
   * Emits an event and returns its id. Synchronous, and never throws: a failure is logged. A
   * missing or empty name is `unknown`; missing data is `{}`.
   */
  emit(name?: string, data?: Record<string, unknown>): string {
    const now = Date.now();
    const id = uuidv7(now);
    try {
      this.emitted++;
      const event: TrackerEvent = { id, name: eventName(name), timestamp: isoOf(now), ids: {}, data: dataOf(data), context: this.contexts.merged() };
      if (this.idPaths.length > 0) event.ids = identifiers(this.idPaths, event);
      // after close too: each leaf the event reaches accounts for it as dropped (closed)
      const out = this.processors.length === 0 ? event : runProcessors(this.processors, event, this.logger, this.counters);
      if (out === undefined) return id;
      const slots = this.slots;
      for (let i = 0; i < slots.length; i++) (slots[i] as BackendSlot).send(out);
    } catch (error) {
      const unlogged = this.failures.due();
      if (unlogged !== undefined) this.logger.error({ err: error, event: { id }, unlogged }, 'emit failed');
    }
    return id;
  }

  /** Runs `fn` (sync or async) inside the context `name` and returns its result; the context is always left, and an error or rejection passes on. */
  context<T>(name: string, values: Record<string, unknown> | undefined, fn: () => T): T {
    return this.contexts.run(name, values, fn);
  }

  /** Opens a context for the rest of the current async chain, for code that cannot wrap; pair it with `exitContext`. */
  enterContext(name: string, values?: Record<string, unknown>): void {
    this.contexts.enter(name, values);
  }

  /** Leaves the innermost open context `name`; an XrefError (XREF_INVALID_ARGUMENT) when none is open by that name. */
  exitContext(name: string): void {
    this.contexts.exit(name);
  }

  /** The merged values of the open contexts, as an event emitted here would carry them (a copy). */
  currentContext(): Record<string, unknown> {
    return this.contexts.merged();
  }

  /** The backend mounted at `path` (`name`, or `branch.name` under a routing backend), e.g. a memory backend built from a config. */
  backend(path: string): Backend | undefined {
    let found: Backend | undefined;
    for (const slot of this.slots) {
      walkTree(slot, slot.key, () => {}, (node) => {
        if (node instanceof BackendSlot && node.path === path) found = node.backend;
      });
    }
    return found;
  }

  /** Waits for every backend to deliver what it holds, at most `timeoutMs` (default 10 s), then reports. Never rejects. */
  async flush(options: WaitOptions = {}): Promise<DeliveryReport> {
    try {
      const timeoutMs = this.timeoutOf(options, 'flush');
      await settledWithin(Promise.all(this.slots.map((slot) => slot.flush({ timeoutMs }))), timeoutMs);
      await this.reportDrops();
    } catch (error) {
      this.logger.error({ err: error }, 'flush failed');
    }
    return this.safeReport();
  }

  /**
   * Stops taking events (an emit after this is dropped as `closed`), closes every backend with
   * `timeoutMs` (default 10 s, at most 2^31 − 1 ms) and reports; what is undelivered at the end is
   * reported as dropped (`closed`), so `pending` is 0. Resolves once onDrop heard every drop so
   * far. Idempotent: later calls wait for the same close. Never rejects.
   */
  close(options: WaitOptions = {}): Promise<DeliveryReport> {
    if (this.closing) {
      return this.closing.then(async () => {
        await this.reportDrops().catch((error: unknown) => this.logger.error({ err: error }, 'close failed'));
        return this.safeReport();
      });
    }
    this.closed = true;
    this.closing = (async () => {
      try {
        const timeoutMs = this.timeoutOf(options, 'close');
        await settledWithin(Promise.all(this.slots.map((slot) => slot.close({ timeoutMs }))), timeoutMs + CLOSE_GRACE_MS);
      } catch (error) {
        this.logger.error({ err: error }, 'close failed');
      }
      this.closeEnded = true;
      try {
        this.reportStillPending();
        await this.reportDrops();
      } catch (error) {
        this.logger.error({ err: error }, 'close failed');
      }
      return this.safeReport();
    })();
    return this.closing;
  }

  /**
   * Tells `onDrop` of every drop counted so far: the backends' reports scheduled before now
   * (setImmediate) reach the tracker first, then the tracker tells `onDrop` of all it holds.
   */
  private async reportDrops(): Promise<void> {
    await nextImmediate();
    this.drops.drain();
  }

  /**
   * At the end of `close`: a leaf that still reports events pending (a backend of the user's,
   * xref's own drop theirs at their deadline) has them counted as dropped (`closed`) in the
   * report; `onDrop` is told once per such leaf, with no events (the tracker never held them) and
   * an XREF_CLOSED error giving the backend's path and the count.
   */
  private reportStillPending(): void {
    if (!this.userOnDrop) return;
    for (const slot of this.slots) {
      walkTree(slot, slot.key, (path, leaf) => {
        const pending = leafStats(leaf).pending;
        if (pending > 0) {
          const error = new XrefError('XREF_CLOSED', `backend ${path} closed before ${pending} events it held were delivered: counted as dropped (closed)`, { field: 'pending' });
          this.drops.add([], 'closed', Object.assign(error, { backend: path, count: pending }));
        }
      });
    }
  }

  /** The report as it stands, and what the processors did. */
  stats(): TrackerStats {
    const processors = { cancelled: this.counters.cancelled, errors: this.counters.errors };
    for (const slot of this.slots) {
      walkTree(slot, slot.key, () => {}, (node) => {
        const inner = node instanceof BackendSlot ? node.backend : node;
        if (inner instanceof RoutingBackend) {
          processors.cancelled += inner.processorCounters.cancelled;
          processors.errors += inner.processorCounters.errors;
        }
      });
    }
    return { ...this.safeReport(), emitted: this.emitted, closed: this.closed, processors };
  }

  private report(): DeliveryReport {
    const total = { sent: 0, failed: 0, dropped: 0, pending: 0 };
    const backends: Record<string, BackendStats> = {};
    for (const slot of this.slots) {
      walkTree(slot, slot.key, (path, leaf) => {
        const stats = leafStats(leaf);
        if (this.closeEnded && stats.pending > 0) {
          stats.dropped += stats.pending;
          stats.droppedBy.closed = (stats.droppedBy.closed ?? 0) + stats.pending;
          stats.pending = 0;
        }
        backends[path] = stats;
        addCounts(total, stats);
      });
    }
    return { total, backends };
  }

  private safeReport(): DeliveryReport {
    try {
      return this.report();
    } catch (error) {
      this.logger.error({ err: error }, 'a backend could not report its stats');
      return { total: { sent: 0, failed: 0, dropped: 0, pending: 0 }, backends: {} };
    }
  }

  private timeoutOf(options: WaitOptions | undefined, what: string): number {
    const timeoutMs = options?.timeoutMs;
    if (timeoutMs === undefined) return DEFAULT_TIMEOUT_MS;
    // above 2^31 − 1 ms, setTimeout would fire after 1 ms: wait the longest a timer can (about 24.8 days)
    if (typeof timeoutMs === 'number' && timeoutMs >= 0 && Number.isFinite(timeoutMs)) return Math.min(timeoutMs, MAX_TIMER_MS - CLOSE_GRACE_MS);
    this.logger.warn({ timeoutMs }, `${what} timeoutMs must be a non-negative number, got ${quote(timeoutMs)}: waiting ${DEFAULT_TIMEOUT_MS} ms`);
    return DEFAULT_TIMEOUT_MS;
  }
}

/** A tracker on `backends` (see TrackerOptions for every option and its default). */
export function createTracker(options: TrackerOptions = {}): Tracker {
  return new Tracker(options);
}
