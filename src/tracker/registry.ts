/**
 * The tracker registry: one tracker set up at start-up (`registerTracker`) and fetched by name
 * wherever events are emitted (`getTracker`), without passing it around. The default name is
 * `default`.
 */
import { XrefError, quote } from '../domain/errors.ts';
import type { Tracker } from './tracker.ts';

const trackers = new Map<string, Tracker>();

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw new XrefError('XREF_INVALID_ARGUMENT', `tracker name must be a non-empty string, got ${quote(name)}`, { field: 'name' });
}

/** Registers `tracker` under `name` (default `default`), replacing any registered there; returns it. */
export function registerTracker(name: string, tracker: Tracker): Tracker;
export function registerTracker(tracker: Tracker): Tracker;
export function registerTracker(nameOrTracker: string | Tracker, tracker?: Tracker): Tracker {
  const [name, value] = typeof nameOrTracker === 'string' ? [nameOrTracker, tracker] : ['default', nameOrTracker];
  checkName(name);
  if (typeof value !== 'object' || value === null || typeof (value as Tracker).emit !== 'function') {
    throw new XrefError('XREF_INVALID_ARGUMENT', `tracker must be a tracker (from createTracker), got ${quote(value)}`, { field: 'tracker' });
  }
  trackers.set(name, value);
  return value;
}

/** The tracker registered under `name` (default `default`); an XREF_NOT_FOUND error naming it and the registered ones otherwise. */
export function getTracker(name = 'default'): Tracker {
  checkName(name);
  const tracker = trackers.get(name);
  if (tracker === undefined) {
    const known = [...trackers.keys()];
    throw new XrefError('XREF_NOT_FOUND', `tracker ${quote(name)} is not known (registered: ${known.length === 0 ? 'none' : known.map((n) => quote(n)).join(', ')})`, { field: 'name' });
  }
  return tracker;
}

/** Removes the tracker registered under `name`; whether there was one. */
export function unregisterTracker(name = 'default'): boolean {
  return trackers.delete(name);
}
