/**
 * The routing backend: a branch of the backend tree with its own processors and backends. Each
 * branch deep-copies the event once (so siblings never see each other's changes), runs its
 * processors on its copy, then hands it to its backends in the order given; one backend's error
 * never stops the others. Also the pieces the tracker shares with it: the slot that mounts,
 * guards and counts one backend, the hosts that name and log for each node, and the tree walk
 * the reports are made from.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, XrefError, quote } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { copyJson } from './json-copy.ts';
import { type ProcessorCounters, processorCounters, runProcessors } from './processors.ts';
import type { Backend, BackendHost, BackendStats, Counts, DropReason, OnDrop, Processor, TrackerEvent, WaitOptions } from './types.ts';
import { LogThrottle } from './timing.ts';

export { copyJson } from './json-copy.ts';

const NO_CHILDREN: ReadonlyMap<string, Backend> = new Map();

export function emptyStats(): BackendStats {
  return { sent: 0, failed: 0, dropped: 0, pending: 0, droppedBy: {} };
}

/** Adds `stats` into `total` (and its reasons into `droppedBy`, when given). */
export function addCounts(total: Counts, stats: Counts, droppedBy?: BackendStats['droppedBy'], from?: BackendStats['droppedBy']): void {
  total.sent += stats.sent;
  total.failed += stats.failed;
  total.dropped += stats.dropped;
  total.pending += stats.pending;
  if (droppedBy && from) for (const [reason, n] of Object.entries(from) as Array<[keyof BackendStats['droppedBy'], number]>) droppedBy[reason] = (droppedBy[reason] ?? 0) + n;
}

/** The host of the node at `path`: a child logger of `root` bound to it, the shared onDrop, and hosts for its children. */
export function hostFor(root: Logger, path: string, onDrop: OnDrop): BackendHost {
  return { name: path, logger: root.child({ backend: path }), onDrop, child: (name: string) => hostFor(root, `${path}.${name}`, onDrop) };
}

/** An integer-like key (`0`, `42`): JavaScript lists those first, in numeric order, so the order given would be lost. */
function isIndexKey(name: string): boolean {
  const n = Number(name);
  return Number.isInteger(n) && n >= 0 && n < 2 ** 32 - 1 && String(n) === name;
}

/** Refuses a backend name that is empty, holds a dot (a dot joins the tree's paths) or looks like an integer (it would not keep its order). */
export function checkBackendName(name: string, field: string): void {
  if (name.length === 0 || name.includes('.')) throw new InvalidConfigError(field, name, 'must be named without dots (a dot separates the levels of the tree in reports)');
  if (isIndexKey(name)) throw new InvalidConfigError(field, name, 'must not be an integer (JavaScript lists integer keys first, in numeric order, so the backends would not be called in the order given): use a name such as b1');
}

/** Checks a `{ name: backend }` map: names (checkBackendName), values have `send`, each instance mounted once. */
export function checkBackends(backends: unknown, field: string): asserts backends is Record<string, Backend> {
  if (typeof backends !== 'object' || backends === null || Array.isArray(backends)) {
    throw new InvalidConfigError(field, backends, 'must be an object of name → backend');
  }
  for (const [name, backend] of Object.entries(backends)) {
    checkBackendName(name, `${field}.${name}`);
    if (typeof backend !== 'object' || backend === null || typeof (backend as Backend).send !== 'function') {
      throw new InvalidConfigError(`${field}.${name}`, backend, 'must be a backend: an object with send(event)');
    }
  }
  checkMountedOnce(Object.entries(backends), field);
}

/**
 * Refuses a backend instance mounted twice in the tree under `entries` (it would be attached twice
 * and counted twice): an XREF_INVALID_CONFIG error naming both paths.
 */
export function checkMountedOnce(entries: Iterable<[string, Backend]>, field: string, seen = new Map<Backend, string>()): void {
  for (const [path, backend] of entries) {
    const first = seen.get(backend);
    if (first !== undefined) {
      throw new XrefError('XREF_INVALID_CONFIG', `config ${field}.${path} is the same backend instance as ${field}.${first}: mount each instance once (make one backend per name)`, { field: `${field}.${path}` });
    }
    seen.set(backend, path);
    const children = backend.children?.();
    if (children && children.size > 0) {
      const below: Array<[string, Backend]> = [];
      for (const [name, child] of children) below.push([`${path}.${name}`, child instanceof BackendSlot ? child.backend : child]);
      checkMountedOnce(below, field, seen);
    }
  }
}

/**
 * One mounted backend: calls it without ever letting its error out (a `send` that throws is
 * logged, counted as failed and reported to onDrop as `rejected`), and counts for it when it has
 * no `stats()` of its own (a send that returns is sent). Its `stats()` is the backend's account
 * plus those failures.
 */
export class BackendSlot implements Backend {
  private host: BackendHost;
  private attached = false;
  private readonly countsForIt: boolean;
  private sent = 0;
  private failed = 0;
  /** Set by `close()`: a later event is dropped as `closed` here when the backend keeps no stats, or given to it to account for. */
  private closed = false;
  private droppedClosed = 0;
  private readonly failures = new LogThrottle(1000);

  constructor(
    readonly key: string,
    readonly backend: Backend,
    fallbackHost: BackendHost,
  ) {
    this.host = fallbackHost;
    this.countsForIt = typeof backend.stats !== 'function';
  }

  get path(): string {
    return this.host.name;
  }

  attach(host: BackendHost): void {
    this.host = host;
    this.attached = true;
    this.backend.attach?.(host);
  }

  /** Mounts it on its fallback host when nobody mounted it before its first event. */
  ensureAttached(): void {
    if (!this.attached) this.attach(this.host);
  }

  send(event: TrackerEvent): void {
    if (this.closed && this.countsForIt) {
      this.droppedClosed++;
      this.tell([event], 'closed');
      return;
    }
    try {
      this.backend.send(event);
      if (this.countsForIt) this.sent++;
    } catch (error) {
      this.fail(event, error);
    }
  }

  /** Counts `event` as failed for every leaf at or below this slot (the branch above could not give it the event). */
  failBelow(event: TrackerEvent, error: unknown): void {
    if (this.backend instanceof RoutingBackend) this.backend.failAll(event, error);
    else this.fail(event, error);
  }

  /** Counts `event` as failed for this backend (its send threw, or the branch could not give it the event). */
  fail(event: TrackerEvent, error: unknown): void {
    this.failed++;
    const unlogged = this.failures.due();
    if (unlogged !== undefined) this.host.logger.error({ err: error, event: { id: event.id, name: event.name }, failed: this.failed, unlogged }, 'a backend failed to take an event: counted as failed');
    this.tell([event], 'rejected', error instanceof Error ? error : new XrefError('XREF_INTERNAL', `the backend threw ${quote(error)}`, { cause: error }));
  }

  private tell(events: TrackerEvent[], reason: DropReason, error?: Error): void {
    try {
      this.host.onDrop(events, reason, error);
    } catch (dropError) {
      this.host.logger.error({ err: dropError }, 'onDrop threw');
    }
  }

  stats(): BackendStats {
    let stats: BackendStats;
    if (this.countsForIt) stats = { sent: this.sent, failed: 0, dropped: 0, pending: 0, droppedBy: {} };
    else {
      const own = safeStats(this.backend, this.host.logger);
      stats = { ...own, droppedBy: { ...own.droppedBy } };
    }
    if (this.failed > 0) {
      stats.failed += this.failed;
      stats.droppedBy.rejected = (stats.droppedBy.rejected ?? 0) + this.failed;
    }
    if (this.droppedClosed > 0) {
      stats.dropped += this.droppedClosed;
      stats.droppedBy.closed = (stats.droppedBy.closed ?? 0) + this.droppedClosed;
    }
    return stats;
  }

  /** The backend's children (a routing backend's slots), or none for a leaf. */
  children(): ReadonlyMap<string, Backend> {
    return this.backend.children?.() ?? NO_CHILDREN;
  }

  flush(options?: WaitOptions): Promise<void> {
    return this.settle('flush', options);
  }

  close(options?: WaitOptions): Promise<void> {
    this.closed = true;
    return this.settle('close', options);
  }

  private async settle(what: 'flush' | 'close', options: WaitOptions | undefined): Promise<void> {
    try {
      await this.backend[what]?.(options);
    } catch (error) {
      this.host.logger.error({ err: error }, `the backend's ${what} failed`);
    }
  }
}

function safeStats(backend: Backend, logger: Logger): BackendStats {
  try {
    const stats = backend.stats?.();
    if (stats) return stats;
  } catch (error) {
    logger.error({ err: error }, "the backend's stats() threw: reporting zeros");
  }
  return emptyStats();
}

/**
 * Walks the tree under `backend` (at `path`): `onLeaf` for every backend without children, and
 * `onNode` for every backend on the way (leaves included).
 */
export function walkTree(backend: Backend, path: string, onLeaf: (path: string, backend: Backend) => void, onNode?: (backend: Backend) => void): void {
  onNode?.(backend);
  const children = backend.children?.();
  if (children && children.size > 0) {
    for (const [name, child] of children) walkTree(child, `${path}.${name}`, onLeaf, onNode);
  } else onLeaf(path, backend);
}

/** The stats of one leaf as reported: its own `stats()`, or zeros for a backend that keeps none. */
export function leafStats(backend: Backend): BackendStats {
  const stats = backend.stats?.();
  return stats ? { ...stats, droppedBy: { ...stats.droppedBy } } : emptyStats();
}

export interface RoutingBackendOptions {
  /** Run on this branch's own copy of each event, before its backends (default none). */
  processors?: readonly Processor[];
  /** `{ name: backend }`, called in this order; names show in reports as `<branch>.<name>`. */
  backends: Record<string, Backend>;
}

export class RoutingBackend implements Backend {
  /** Events this branch's processors cancelled, and processor errors. */
  readonly processorCounters: ProcessorCounters = processorCounters();
  private readonly processors: readonly Processor[];
  private readonly slots = new Map<string, BackendSlot>();
  private logger: Logger = componentLogger('tracker').child({ backend: 'routing' });
  private attached = false;

  constructor(options: RoutingBackendOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidConfigError('routingBackend options', options, 'must be an object { processors, backends }');
    const processors = options.processors ?? [];
    if (!Array.isArray(processors)) throw new InvalidConfigError('routingBackend processors', processors, 'must be an array of functions');
    processors.forEach((processor: unknown, i) => {
      if (typeof processor !== 'function') throw new InvalidConfigError(`routingBackend processors[${i}]`, processor, 'must be a function (event) => event | void');
    });
    this.processors = [...processors];
    checkBackends(options.backends, 'routingBackend backends');
    const root = componentLogger('tracker');
    for (const [name, backend] of Object.entries(options.backends)) {
      this.slots.set(name, new BackendSlot(name, backend, hostFor(root, name, () => {})));
    }
  }

  attach(host: BackendHost): void {
    this.attached = true;
    this.logger = host.logger;
    for (const [name, slot] of this.slots) slot.attach(host.child(name));
  }

  send(event: TrackerEvent): void {
    if (!this.attached) {
      this.attached = true;
      for (const slot of this.slots.values()) slot.ensureAttached();
    }
    let copy: TrackerEvent | undefined;
    try {
      copy = runProcessors(this.processors, copyJson(event), this.logger, this.processorCounters);
    } catch (error) {
      // not a processor's error (those are caught): the branch could not copy the event
      for (const slot of this.slots.values()) slot.failBelow(event, error);
      return;
    }
    if (copy === undefined) return;
    for (const slot of this.slots.values()) slot.send(copy);
  }

  /** Counts `event` as failed for every leaf of this branch (a branch above could not copy it). */
  failAll(event: TrackerEvent, error: unknown): void {
    for (const slot of this.slots.values()) slot.failBelow(event, error);
  }

  children(): ReadonlyMap<string, Backend> {
    return this.slots;
  }

  /** The sum over the leaves of this branch. */
  stats(): BackendStats {
    const total = emptyStats();
    for (const [name, slot] of this.slots) walkTree(slot, name, (_path, leaf) => {
      const stats = leafStats(leaf);
      addCounts(total, stats, total.droppedBy, stats.droppedBy);
    });
    return total;
  }

  async flush(options?: WaitOptions): Promise<void> {
    await Promise.all([...this.slots.values()].map((slot) => slot.flush(options)));
  }

  async close(options?: WaitOptions): Promise<void> {
    await Promise.all([...this.slots.values()].map((slot) => slot.close(options)));
  }
}

/** A branch of the backend tree: its own copy of each event, its processors, then its backends in order. */
export function routingBackend(options: RoutingBackendOptions): RoutingBackend {
  return new RoutingBackend(options);
}
