/**
 * The tracker's open contexts, on AsyncLocalStorage: they follow the async call chain, so two
 * concurrent requests never see each other's. The store is an immutable chain of frames; each
 * frame holds its own values (deep-copied and frozen at entry) and the merge of its parents' with
 * them (later contexts win on shared keys), so an event only shallow-copies the top frame's merge.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { XrefError, quote } from '../domain/errors.ts';
import { copyJson } from './json-copy.ts';

/** One open context. Immutable: leaving or re-entering builds new frames. */
export interface ContextFrame {
  readonly name: string;
  readonly values: Readonly<Record<string, unknown>>;
  /** The parents' merged values, then this frame's: what an event emitted here carries. */
  readonly merged: Readonly<Record<string, unknown>>;
  readonly parent: ContextFrame | undefined;
}

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `${what} name must be a non-empty string, got ${quote(name)}`, { field: 'name' });
  }
}

function frameOf(name: unknown, values: unknown, parent: ContextFrame | undefined, what: string): ContextFrame {
  checkName(name, what);
  if (values !== undefined && values !== null && !isPlainObject(values)) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `${what} values of context ${quote(name)} must be a plain object, got ${quote(values)}`, { field: 'values' });
  }
  const copied = values == null ? EMPTY : copyJson(values as Readonly<Record<string, unknown>>, true);
  return link(name, copied, parent);
}

function link(name: string, values: Readonly<Record<string, unknown>>, parent: ContextFrame | undefined): ContextFrame {
  // not frozen: an event copies it with a spread, which is several times slower from a frozen object
  const merged = parent === undefined ? { ...values } : { ...parent.merged, ...values };
  return Object.freeze({ name, values, merged, parent });
}

export class ContextStack {
  private readonly als = new AsyncLocalStorage<ContextFrame | undefined>();

  /** The innermost open context of the current async chain. */
  top(): ContextFrame | undefined {
    return this.als.getStore();
  }

  /** The merged values of the open contexts, as a new object (shallow copy) an event may own. */
  merged(): Record<string, unknown> {
    const frame = this.als.getStore();
    return frame === undefined ? {} : { ...frame.merged };
  }

  /** The names of the open contexts, outermost first. */
  names(): string[] {
    const names: string[] = [];
    for (let frame = this.als.getStore(); frame !== undefined; frame = frame.parent) names.unshift(frame.name);
    return names;
  }

  /** Runs `fn` inside a new context and returns what it returns; the context is left when `fn` returns or throws (and, for a promise, never leaks to the caller). */
  run<T>(name: string, values: Record<string, unknown> | undefined, fn: () => T): T {
    if (typeof fn !== 'function') throw new XrefError('XREF_INVALID_ARGUMENT', `context fn must be a function, got ${quote(fn)}`, { field: 'fn' });
    return this.als.run(frameOf(name, values, this.als.getStore(), 'context'), fn);
  }

  /** Opens a context for the rest of the current async chain (what runs after this, synchronously or later from here). */
  enter(name: string, values?: Record<string, unknown>): void {
    this.als.enterWith(frameOf(name, values, this.als.getStore(), 'enterContext'));
  }

  /** Leaves the innermost open context named `name` (the ones opened after it stay open); throws when none is. */
  exit(name: string): void {
    checkName(name, 'exitContext');
    const above: ContextFrame[] = [];
    let frame = this.als.getStore();
    while (frame !== undefined && frame.name !== name) {
      above.push(frame);
      frame = frame.parent;
    }
    if (frame === undefined) {
      const open = this.names();
      throw new XrefError(
        'XREF_INVALID_ARGUMENT',
        `exitContext name must be an open context (${open.length === 0 ? 'none is open' : `open: ${open.join(', ')}`}), got ${quote(name)}`,
        { field: 'name' },
      );
    }
    let rebuilt = frame.parent;
    for (let i = above.length - 1; i >= 0; i--) rebuilt = link((above[i] as ContextFrame).name, (above[i] as ContextFrame).values, rebuilt);
    this.als.enterWith(rebuilt);
  }
}
