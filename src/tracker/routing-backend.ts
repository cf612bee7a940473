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
import { type ProcessorCounters, processorCounters, runProcessors } from './processors.ts';
import type { Backend, BackendHost, BackendStats, Counts, OnDrop, Processor, TrackerEvent, WaitOptions } from './types.ts';

/** Deeper than this, a value is shared rather than copied (a cycle cannot recurse forever). */
const MAX_COPY_DEPTH = 64;

/** A deep copy of the plain objects and arrays in a JSON-like value; anything else (a Date, a Buffer) is shared. */
export function copyJson<T>(value: T, depth = 0): T {
  if (typeof value !== 'object' || value === null || depth > MAX_COPY_DEPTH) return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyJson(value[i], depth + 1);
    return out as T;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  const source = value as Record<string, unknown>;
  for (const key of Object.keys(source)) out[key] = copyJson(source[key], depth + 1);
  return out as T;
}

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

function childHost(host: BackendHost, name: string): BackendHost {
  if (host.child) return host.child(name);
  const path = `${host.name}.${name}`;
  return { name: path, logger: host.logger.child({ backend: path }), onDrop: host.onDrop };
}

/** Checks a `{ name: backend }` map: names are non-empty and dot-free (a dot joins the tree's paths), values have `send`. */
export function checkBackends(backends: unknown, field: string): asserts backends is Record<string, Backend> {
  if (typeof backends !== 'object' || backends === null || Array.isArray(backends)) {
    throw new InvalidConfigError(field, backends, 'must be an object of name → backend');
  }
  for (const [name, backend] of Object.entries(backends)) {
    if (name.length === 0 || name.includes('.')) throw new InvalidConfigError(`${field}.${name}`, name, 'must be named without dots (a dot separates the levels of the tree in reports)');
    if (typeof backend !== 'object' || backend === null || typeof (backend as Backend).send !== 'function') {
      throw new InvalidConfigError(`${field}.${name}`, backend, 'must be a backend: an object with send(event)');
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
  private lastLoggedAt = 0;
  private unlogged = 0;

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
    try {
      this.backend.send(event);
      if (this.countsForIt) this.sent++;
    } catch (error) {
      this.fail(event, error);
    }
  }

  /** Counts `event` as failed for this backend (its send threw, or the branch could not give it the event). */
  fail(event: TrackerEvent, error: unknown): void {
    this.failed++;
    const now = Date.now();
    if (now - this.lastLoggedAt >= 1000) {
      this.host.logger.error({ err: error, event: { id: event.id, name: event.name }, failed: this.failed, unlogged: this.unlogged }, 'a backend failed to take an event: counted as failed');
      this.lastLoggedAt = now;
      this.unlogged = 0;
    } else this.unlogged++;
    try {
      this.host.onDrop([event], 'rejected', error instanceof Error ? error : new XrefError('XREF_INTERNAL', `the backend threw ${quote(error)}`, { cause: error }));
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
    for (const [name, slot] of this.slots) slot.attach(childHost(host, name));
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
      for (const slot of this.slots.values()) slot.fail(event, error);
      return;
    }
    if (copy === undefined) return;
    for (const slot of this.slots.values()) slot.send(copy);
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
