/**
 * Processors: the chain that filters or reshapes an event before its backends get it, and the
 * built-ins (`regexFilter`, `nameAllowlist`, `redact`). A processor changes the event in place or
 * returns a new one; it cancels the event for its branch only by throwing `EventEmissionExit`.
 * Any other error is logged and counted, and the chain goes on with the event as it was before
 * that processor.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, XrefError, quote } from '../domain/errors.ts';
import type { Processor, TrackerEvent } from './types.ts';
import { LogThrottle } from './timing.ts';

const EXIT_BRAND = Symbol.for('xref.tracker.EventEmissionExit');

/**
 * Thrown by a processor to cancel the event for its branch of the routing tree. A signal, not an
 * error: never logged or counted as a failure, and (so no stack is captured per event) not an
 * `Error` subclass.
 */
export class EventEmissionExit {
  readonly [EXIT_BRAND] = true;
  readonly name = 'EventEmissionExit';
  constructor(readonly message = 'event cancelled by a processor') {}
}

/** Whether `error` cancels the event (an EventEmissionExit, even from another copy of this module). */
export function isEmissionExit(error: unknown): boolean {
  return error instanceof EventEmissionExit || (typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[EXIT_BRAND] === true);
}

/** What the processors of one chain did: events cancelled, and processor errors (logged, then gone past). */
export interface ProcessorCounters {
  cancelled: number;
  errors: number;
  /** Errors are logged at most one line a second. */
  readonly log: LogThrottle;
}

export function processorCounters(): ProcessorCounters {
  return { cancelled: 0, errors: 0, log: new LogThrottle(1000) };
}

/** A copy deep enough to undo what a processor does to the event's own fields and to data, context and ids. */
function snapshot(event: TrackerEvent): TrackerEvent {
  const copy = { ...event };
  if (isPlainObject(event.data)) copy.data = { ...event.data };
  if (isPlainObject(event.context)) copy.context = { ...event.context };
  if (isPlainObject(event.ids)) copy.ids = { ...event.ids };
  return copy;
}

function logFailure(logger: Logger, counters: ProcessorCounters, error: unknown, processor: string, event: TrackerEvent): void {
  const unlogged = counters.log.due();
  if (unlogged === undefined) return;
  logger.warn({ err: error, processor, event: { id: event.id, name: event.name }, errors: counters.errors, unlogged }, 'a processor failed: going on with the event as it was before it');
}

/**
 * Runs `processors` in order on `event`. Returns the event to deliver (the same object changed in
 * place, or the one the last processor returned), or undefined when a processor cancelled it
 * (`EventEmissionExit`). A processor that throws anything else, or returns something that is not
 * an object, is logged (at most one line a second per chain) and counted in `counters.errors`,
 * and the next one gets the event as it was before it: changes it made to the event's fields and
 * to the first level of `data`, `context` and `ids` are undone (deeper in-place changes are not).
 * The built-ins need no undoing, so they run without that snapshot.
 */
export function runProcessors(processors: readonly Processor[], event: TrackerEvent, logger: Logger, counters: ProcessorCounters): TrackerEvent | undefined {
  for (let i = 0; i < processors.length; i++) {
    const processor = processors[i] as Processor;
    const before = BUILT_IN.has(processor) ? event : snapshot(event);
    try {
      const result = processor(event);
      if (result !== undefined) {
        if (typeof result !== 'object' || result === null) throw new XrefError('XREF_INVALID_ARGUMENT', `processor ${processor.name || `processors[${i}]`} must return nothing or an event object, got ${quote(result)}`);
        event = result;
      }
    } catch (error) {
      if (isEmissionExit(error)) {
        counters.cancelled++;
        return undefined;
      }
      counters.errors++;
      event = before;
      logFailure(logger, counters, error, processor.name || `processors[${i}]`, event);
    }
  }
  return event;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The one cancellation each built-in throws (no stack captured per event). */
const CANCEL = new EventEmissionExit('event cancelled by a built-in filter');

/** The built-ins: they change an event only in ways that need no undoing (a filter changes nothing), so the chain takes no snapshot for them. */
const BUILT_IN = new WeakSet<Processor>();

function named<P extends Processor>(name: string, processor: P): P {
  Object.defineProperty(processor, 'name', { value: name });
  BUILT_IN.add(processor);
  return processor;
}

export interface RegexFilterOptions {
  /** `allowlist`: only names matching a pattern pass; `blocklist`: names matching a pattern are cancelled. */
  type: 'allowlist' | 'blocklist';
  /**
   * Regular expressions (JavaScript syntax, no flags) on the event name, each anchored at both ends:
   * a pattern must match the whole name (`page` matches `page`, not `pageview`; write `page.*` for both).
   */
  patterns: readonly string[];
}

/**
 * Filters on the event name. Patterns are anchored at both ends (the whole name must match).
 * `allowlist` with no patterns cancels everything; `blocklist` with no patterns passes everything.
 * An unknown type or an invalid pattern is an XREF_INVALID_CONFIG error here, naming it.
 */
export function regexFilter(options: RegexFilterOptions): Processor {
  if (!isPlainObject(options)) throw new InvalidConfigError('regexFilter options', options, 'must be an object { type, patterns }');
  const { type, patterns } = options;
  if (type !== 'allowlist' && type !== 'blocklist') throw new InvalidConfigError('regexFilter.type', type, 'must be "allowlist" or "blocklist"');
  if (!Array.isArray(patterns)) throw new InvalidConfigError('regexFilter.patterns', patterns, 'must be an array of regular expressions (strings)');
  patterns.forEach((pattern: unknown, i) => {
    if (typeof pattern !== 'string') throw new InvalidConfigError(`regexFilter.patterns[${i}]`, pattern, 'must be a regular expression as a string');
    try {
      // alone first: a pattern valid only inside the group (`a)|(b`) would break the anchoring
      new RegExp(pattern);
    } catch (cause) {
      throw new InvalidConfigError(`regexFilter.patterns[${i}]`, pattern, `must be a valid regular expression (${(cause as Error).message})`);
    }
  });
  const allow = type === 'allowlist';
  if (patterns.length === 0) {
    return named(`regexFilter(${type})`, () => {
      if (allow) throw CANCEL;
    });
  }
  const combined = new RegExp(`^(?:${patterns.map((p) => `(?:${p})`).join('|')})$`);
  return named(`regexFilter(${type})`, (event: TrackerEvent) => {
    if (combined.test(event.name) !== allow) throw CANCEL;
  });
}

/** Passes only events whose name is one of `names` (exact, case-sensitive); `[]` cancels everything. */
export function nameAllowlist(names: readonly string[]): Processor {
  if (!Array.isArray(names)) throw new InvalidConfigError('nameAllowlist.names', names, 'must be an array of event names');
  names.forEach((name: unknown, i) => {
    if (typeof name !== 'string') throw new InvalidConfigError(`nameAllowlist.names[${i}]`, name, 'must be a string');
  });
  const allowed = new Set(names);
  return named('nameAllowlist', (event: TrackerEvent) => {
    if (!allowed.has(event.name)) throw CANCEL;
  });
}

/**
 * Removes fields by dotted path through objects, e.g. `data.password`, `context.ip`,
 * `data.card.number`, `ids.email`. A path that is not there is skipped. The objects along the
 * path are copied before the field is removed, so an object the event shares with the caller or
 * an open context is never changed.
 */
export function redact(paths: readonly string[]): Processor {
  if (!Array.isArray(paths)) throw new InvalidConfigError('redact.paths', paths, 'must be an array of dotted paths such as "data.password"');
  const split = paths.map((path: unknown, i) => {
    if (typeof path !== 'string' || path.split('.').some((segment) => segment === '')) {
      throw new InvalidConfigError(`redact.paths[${i}]`, path, 'must be a dotted path such as "data.password" (no empty segment)');
    }
    return path.split('.');
  });
  return named('redact', (event: TrackerEvent) => {
    for (const segments of split) removePath(event as unknown as Record<string, unknown>, segments);
  });
}

function removePath(root: Record<string, unknown>, segments: readonly string[]): void {
  const last = segments.length - 1;
  // look first: copy nothing when the field is not there
  let node: unknown = root;
  for (let i = 0; i < last; i++) {
    node = isPlainObject(node) && Object.hasOwn(node, segments[i] as string) ? node[segments[i] as string] : undefined;
    if (!isPlainObject(node)) return;
  }
  if (!Object.hasOwn(node as Record<string, unknown>, segments[last] as string)) return;
  if (last === 0) {
    delete root[segments[0] as string];
    return;
  }
  let parent = root;
  for (let i = 0; i < last - 1; i++) {
    const key = segments[i] as string;
    const copy = { ...(parent[key] as Record<string, unknown>) };
    parent[key] = copy;
    parent = copy;
  }
  // the object holding the field: copied without it (no delete, which would slow every later read of it)
  const holder = parent[segments[last - 1] as string] as Record<string, unknown>;
  const removed = segments[last] as string;
  const without: Record<string, unknown> = {};
  for (const key in holder) if (key !== removed && Object.hasOwn(holder, key)) without[key] = holder[key];
  parent[segments[last - 1] as string] = without;
}
