import { InvalidEventError, LimitExceededError } from './errors.ts';
import { KIND_PATTERN } from './identifiers.ts';
import type { Limits } from './limits.ts';

/** The event envelope (docs/architecture.md, the event envelope), after validation (identifier values are strings). */
export interface XrefEvent {
  readonly id: string;
  readonly name?: string;
  readonly timestamp?: string;
  readonly ids: Readonly<Record<string, string>>;
  readonly category?: string;
  readonly session_id?: string;
  readonly data?: Readonly<Record<string, unknown>>;
  readonly context?: Readonly<Record<string, unknown>>;
}

const OPTIONAL_STRINGS = ['name', 'category', 'session_id'] as const;
const OPTIONAL_OBJECTS = ['data', 'context'] as const;
const KNOWN = new Set(['id', 'name', 'timestamp', 'ids', 'category', 'session_id', 'data', 'context']);
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(raw: Record<string, unknown>, field: string): void {
  const value = raw[field];
  if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
    throw new InvalidEventError(field, value, 'must be a non-empty string when present');
  }
}

/** Event time in epoch ms, or undefined when the event has no timestamp. */
export function eventTime(event: XrefEvent): number | undefined {
  return event.timestamp === undefined ? undefined : Date.parse(event.timestamp);
}

/**
 * Checks one raw value against the envelope and returns the normalized event (integer identifier
 * values become their decimal string). Throws InvalidEventError / LimitExceededError naming the
 * field and the bad value. `bytes` is the event's size when the caller already knows it.
 */
export function validateEvent(raw: unknown, limits: Limits, bytes?: number): XrefEvent {
  return parseEvent(raw, limits, bytes).event;
}

/** `validateEvent`, and the event time it read on the way (epoch ms; undefined without a timestamp). */
export function parseEvent(raw: unknown, limits: Limits, bytes?: number): { event: XrefEvent; time: number | undefined } {
  if (!isPlainObject(raw)) throw new InvalidEventError('event', raw, 'must be a JSON object');
  const size = bytes ?? Buffer.byteLength(JSON.stringify(raw));
  if (size > limits.eventBytes) throw new LimitExceededError('event', size, limits.eventBytes, 'bytes');
  for (const key of Object.keys(raw)) {
    if (!KNOWN.has(key)) throw new InvalidEventError(key, raw[key], `is not an envelope field (known: ${[...KNOWN].join(', ')})`);
  }
  if (typeof raw.id !== 'string' || raw.id.length === 0) {
    throw new InvalidEventError('id', raw.id, 'is required and must be a non-empty string');
  }
  if (raw.id.length > limits.idValueChars) {
    throw new LimitExceededError('id', raw.id.length, limits.idValueChars, 'characters');
  }
  for (const field of OPTIONAL_STRINGS) optionalString(raw, field);
  let time: number | undefined;
  if (raw.timestamp !== undefined) {
    time = typeof raw.timestamp === 'string' && ISO_8601.test(raw.timestamp) ? Date.parse(raw.timestamp) : Number.NaN;
    if (Number.isNaN(time)) throw new InvalidEventError('timestamp', raw.timestamp, 'must be an ISO 8601 date-time such as 2021-01-01T09:15:29.243Z');
  }
  for (const field of OPTIONAL_OBJECTS) {
    if (raw[field] !== undefined && !isPlainObject(raw[field])) {
      throw new InvalidEventError(field, raw[field], 'must be a JSON object when present');
    }
  }
  const ids = raw.ids;
  if (!isPlainObject(ids)) throw new InvalidEventError('ids', ids, 'is required and must be an object of kind → value');
  const kinds = Object.keys(ids);
  if (kinds.length === 0) throw new InvalidEventError('ids', ids, 'must hold at least one identifier');
  let normalized: Record<string, string> | undefined;
  for (const kind of kinds) {
    if (kind.length > limits.kindChars) throw new LimitExceededError(`ids kind ${JSON.stringify(kind.slice(0, 80))}`, kind.length, limits.kindChars, 'characters');
    if (!KIND_PATTERN.test(kind)) throw new InvalidEventError(`ids kind`, kind, 'must match [A-Za-z0-9_-]+');
    const value = ids[kind];
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new InvalidEventError(`ids.${kind}`, value, 'must be a string or an integer');
      normalized ??= { ...(ids as Record<string, string>) };
      normalized[kind] = String(value);
    } else if (typeof value !== 'string') {
      throw new InvalidEventError(`ids.${kind}`, value, 'must be a string or an integer');
    } else if (value.length > limits.idValueChars) {
      throw new LimitExceededError(`ids.${kind}`, value.length, limits.idValueChars, 'characters');
    } else if (!value.isWellFormed()) {
      throw new InvalidEventError(`ids.${kind}`, value, 'must be well-formed Unicode (it holds a lone surrogate)');
    }
  }
  return { event: (normalized ? { ...raw, ids: normalized } : raw) as unknown as XrefEvent, time };
}
