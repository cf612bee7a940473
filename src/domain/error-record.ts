/**
 * The one shape of an error record: what XREF_ERRORS holds (`xref.errors.<reason>`), one per
 * rejection wherever it happened (an HTTP item refused by index, a `publish` line, an input the
 * engine refused), and what the read model's `errors` table is filled from. Built here only, from
 * the XrefError that refused the input.
 */
import { type ErrorCode, type XrefError, quote } from './errors.ts';

/** Where the rejection happened. */
export type ErrorOrigin = 'http' | 'publish' | 'engine';

export interface ErrorRecord {
  /** Unique: the message id (the engine's is `rejectedId(seq)`, the same on a replay; else a random UUID). */
  readonly id: string;
  /** The code without `XREF_`, lower case (`schema_violation`, `future_timestamp`, `invalid_event`, …): the subject's last token. */
  readonly reason: string;
  readonly code: ErrorCode;
  readonly message: string;
  /** Dotted path of the offending field (`data.price`, `timestamp`, `ids.cookie`), when known. */
  readonly field?: string;
  /** The bad value as JSON text, cut at `RECORD_LIMITS.valueChars` (then ending with `…`). */
  readonly value?: string;
  readonly origin: ErrorOrigin;
  /** The HTTP route, the publish subject, or the input's subject (engine). */
  readonly source: string;
  /** When it was rejected (ISO 8601); the engine's is the input's publish time, so a replay writes the same record. */
  readonly at: string;
  /** The input as received (JSON text), cut at `RECORD_LIMITS.rawChars` with a marker saying so. */
  readonly raw?: string;
  /** The input's XREF_IN sequence (engine). */
  readonly seq?: number;
  /** The item's index in its request (http), or its line number (publish). */
  readonly index?: number;
  /** The event's id, when the input had one. */
  readonly eventId?: string;
}

export const RECORD_LIMITS = Object.freeze({ valueChars: 200, rawChars: 2048 });

/** Where and when an error happened, and what was refused. */
export interface ErrorContext {
  readonly id: string;
  readonly origin: ErrorOrigin;
  readonly source: string;
  readonly atMs: number;
  /** The input as a parsed value (serialized here)… */
  readonly raw?: unknown;
  /** …or as the text received (kept as it is), which wins. */
  readonly rawText?: string;
  /** The candidate event the error's `field` is a path in (default: `raw`). */
  readonly candidate?: unknown;
  readonly seq?: number;
  readonly index?: number;
}

/** `XREF_SCHEMA_VIOLATION` → `schema_violation`. */
export function reasonOf(code: ErrorCode): string {
  return code.replace(/^XREF_/, '').toLowerCase();
}

/** `text` cut at `max` characters, with a marker naming the whole length; as it is when it fits. */
export function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [cut: ${text.length} characters in all]`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ownValue(error: XrefError): { value: unknown } | undefined {
  return 'value' in error ? { value: (error as XrefError & { value: unknown }).value } : undefined;
}

/** The value at a dotted path (`ids.cookie`, `data.items.0.price`) of `root`, if there is one. */
function valueAt(root: unknown, path: string): { value: unknown } | undefined {
  let at: unknown = root;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return { value: at };
}

function serialized(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch {
    return quote(raw, RECORD_LIMITS.rawChars);
  }
}

/**
 * The error record of `error` in `context`: reason from its code, its field, the bad value (the
 * error's own `value` when it carries one, else the value at `field` in the candidate event), the
 * raw input, each cut to its limit.
 */
export function errorRecord(error: XrefError, context: ErrorContext): ErrorRecord {
  const candidate = context.candidate ?? context.raw;
  const bad = error.field === undefined || error.field === 'event' ? undefined : (ownValue(error) ?? valueAt(candidate, error.field));
  const raw = context.rawText ?? serialized(context.raw);
  const eventId = isRecord(candidate) && typeof candidate.id === 'string' && candidate.id.length > 0 ? cut(candidate.id, RECORD_LIMITS.valueChars) : undefined;
  return {
    id: context.id,
    reason: reasonOf(error.code),
    code: error.code,
    message: error.message,
    ...(error.field === undefined ? {} : { field: error.field }),
    ...(bad === undefined || bad.value === undefined ? {} : { value: quote(bad.value, RECORD_LIMITS.valueChars) }),
    origin: context.origin,
    source: context.source,
    at: new Date(context.atMs).toISOString(),
    ...(raw === undefined ? {} : { raw: cut(raw, RECORD_LIMITS.rawChars) }),
    ...(context.seq === undefined ? {} : { seq: context.seq }),
    ...(context.index === undefined ? {} : { index: context.index }),
    ...(eventId === undefined ? {} : { eventId }),
  };
}
