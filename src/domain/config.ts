import { type ActivityConfig, type ActivityConfigInput, resolveActivityConfig } from '../activity/activity-config.ts';
import { InvalidConfigError } from './errors.ts';
import { KIND_PATTERN } from './identifiers.ts';
import { payloadRules } from './payload-rules.ts';

export type RelinkPolicy = 'latest' | 'first';

/** A JSON Schema (draft-07, as ajv 8 reads it): an object, or `true` / `false`. */
export type JsonSchema = boolean | Readonly<Record<string, unknown>>;

/** What becomes of an event whose type (`category/name` or `name`) has no schema. */
export type UnknownTypes = 'accept' | 'reject';

/** The config file (JSON) and the `groupEvents` config: every key optional. */
export interface ConfigInput {
  /** Internal kinds: unique per user, never merged. The first listed wins when an event carries several. */
  internal?: string[];
  /** Per third-party kind: where later events go once a second user claims the identifier. */
  relink?: Record<string, RelinkPolicy>;
  /** Per third-party kind: the most identifiers of that kind one user may hold; the next is refused. */
  maxIdsPerUser?: Record<string, number>;
  /** Bounds of a buffer of unplaced events: count, and age in event time (ms). */
  buffer?: { maxEvents?: number; ttlMs?: number };
  /** Values added to the built-in junk list (compared trimmed, case-insensitive). */
  junkValues?: string[];
  /** A regular expression; values it matches are junk too. */
  junkPattern?: string;
  /**
   * Per event type, a JSON Schema its `data` must match (an event without `data` is checked as
   * `{}`): the key is the event's `name`, or `category/name`, which wins over `name` alone.
   */
  schemas?: Record<string, JsonSchema>;
  /** An event whose type has no schema: `accept` (default) or `reject`. */
  unknownTypes?: UnknownTypes;
  /** The most an event's timestamp may be ahead of its arrival, in ms (default 300000: 5 minutes). */
  maxFutureMs?: number;
  /** Active-user counting: zone, closing, buckets (docs/activity.md). */
  activity?: ActivityConfigInput;
}

/** The validated, frozen configuration the engine runs with. */
export interface Config {
  readonly internal: readonly string[];
  readonly relink: Readonly<Record<string, RelinkPolicy>>;
  readonly maxIdsPerUser: Readonly<Record<string, number>>;
  readonly buffer: { readonly maxEvents: number; readonly ttlMs: number };
  readonly junkValues: readonly string[];
  readonly junkPattern: string | undefined;
  readonly schemas: Readonly<Record<string, JsonSchema>>;
  readonly unknownTypes: UnknownTypes;
  readonly maxFutureMs: number;
  /** The validated `activity` key, when the config has one (`resolveActivityConfig()` gives its defaults). */
  readonly activity?: ActivityConfig;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const FIVE_MINUTES_MS = 5 * 60 * 1000;

/** The one place defaults come from. */
export function defaultConfig(): Config {
  return resolveConfig({});
}

const KEYS = ['internal', 'relink', 'maxIdsPerUser', 'buffer', 'junkValues', 'junkPattern', 'schemas', 'unknownTypes', 'maxFutureMs', 'activity'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kindMap<T>(field: string, value: unknown, check: (v: unknown) => v is T, expected: string): Record<string, T> {
  if (value === undefined) return {};
  if (!isRecord(value)) throw new InvalidConfigError(field, value, 'must be an object of kind → value');
  const out: Record<string, T> = {};
  for (const [kind, v] of Object.entries(value)) {
    if (!KIND_PATTERN.test(kind)) throw new InvalidConfigError(`${field} kind`, kind, 'must match [A-Za-z0-9_-]+');
    if (!check(v)) throw new InvalidConfigError(`${field}.${kind}`, v, expected);
    out[kind] = v;
  }
  return out;
}

function positiveInt(field: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidConfigError(field, value, 'must be a positive integer');
  }
  return value;
}

/** The `schemas` object: keys `name` or `category/name`, values JSON Schemas (compiled by `payloadRules`). */
function schemaMap(value: unknown): Record<string, JsonSchema> {
  if (value === undefined) return {};
  if (!isRecord(value)) throw new InvalidConfigError('schemas', value, 'must be an object of event type (name, or category/name) → JSON Schema of its data');
  const out: Record<string, JsonSchema> = {};
  for (const [key, schema] of Object.entries(value)) {
    if (key.length === 0 || key.startsWith('/') || key.endsWith('/')) throw new InvalidConfigError('schemas key', key, 'must be an event name, or category/name');
    if (typeof schema !== 'boolean' && !isRecord(schema)) throw new InvalidConfigError(`schemas.${key}`, schema, 'must be a JSON Schema (an object, or true / false)');
    try {
      // a copy: freezing the config must not freeze the caller's objects
      out[key] = structuredClone(schema) as JsonSchema;
    } catch {
      throw new InvalidConfigError(`schemas.${key}`, schema, 'must be a JSON Schema: plain JSON values only');
    }
  }
  return out;
}

/**
 * Validates a config (file or object) once, fills the defaults and freezes it. Its schemas are
 * compiled here, once (one that does not compile is an InvalidConfigError naming `schemas.<key>`).
 */
export function resolveConfig(input: unknown): Config {
  if (!isRecord(input)) throw new InvalidConfigError('(root)', input, 'must be a JSON object');
  for (const key of Object.keys(input)) {
    if (!KEYS.includes(key)) throw new InvalidConfigError(key, input[key], `is not a config key (known: ${KEYS.join(', ')})`);
  }
  const internal = input.internal ?? ['db_id', 'user_id'];
  if (!Array.isArray(internal) || internal.length === 0) {
    throw new InvalidConfigError('internal', internal, 'must be a non-empty array of kind names');
  }
  internal.forEach((kind, i) => {
    if (typeof kind !== 'string' || !KIND_PATTERN.test(kind)) throw new InvalidConfigError(`internal[${i}]`, kind, 'must match [A-Za-z0-9_-]+');
  });
  const relink = kindMap('relink', input.relink, (v): v is RelinkPolicy => v === 'latest' || v === 'first', 'must be "latest" or "first"');
  const maxIdsPerUser = kindMap('maxIdsPerUser', input.maxIdsPerUser, (v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1, 'must be a positive integer');
  const buffer = input.buffer ?? {};
  if (!isRecord(buffer)) throw new InvalidConfigError('buffer', buffer, 'must be an object { maxEvents, ttlMs }');
  for (const key of Object.keys(buffer)) {
    if (key !== 'maxEvents' && key !== 'ttlMs') throw new InvalidConfigError(`buffer.${key}`, buffer[key], 'is not a buffer key (known: maxEvents, ttlMs)');
  }
  const junkValues = input.junkValues ?? [];
  if (!Array.isArray(junkValues) || junkValues.some((v) => typeof v !== 'string')) {
    throw new InvalidConfigError('junkValues', junkValues, 'must be an array of strings');
  }
  const junkPattern = input.junkPattern;
  if (junkPattern !== undefined) {
    if (typeof junkPattern !== 'string') throw new InvalidConfigError('junkPattern', junkPattern, 'must be a regular expression string');
    try {
      new RegExp(junkPattern);
    } catch (cause) {
      throw new InvalidConfigError('junkPattern', junkPattern, `is not a valid regular expression (${(cause as Error).message})`);
    }
  }
  const unknownTypes = input.unknownTypes ?? 'accept';
  if (unknownTypes !== 'accept' && unknownTypes !== 'reject') throw new InvalidConfigError('unknownTypes', unknownTypes, 'must be "accept" or "reject"');
  const maxFutureMs = input.maxFutureMs ?? FIVE_MINUTES_MS;
  if (typeof maxFutureMs !== 'number' || !Number.isSafeInteger(maxFutureMs) || maxFutureMs < 0) {
    throw new InvalidConfigError('maxFutureMs', maxFutureMs, 'must be a non-negative integer (milliseconds)');
  }
  const config: Config = deepFreeze({
    internal: [...new Set(internal as string[])],
    relink,
    maxIdsPerUser,
    buffer: {
      maxEvents: positiveInt('buffer.maxEvents', buffer.maxEvents, 1000),
      ttlMs: positiveInt('buffer.ttlMs', buffer.ttlMs, 7 * DAY_MS),
    },
    junkValues: [...(junkValues as string[])],
    junkPattern: junkPattern as string | undefined,
    schemas: schemaMap(input.schemas),
    unknownTypes,
    maxFutureMs,
    activity: input.activity === undefined ? undefined : resolveActivityConfig(input.activity),
  });
  payloadRules(config);
  return config;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

export function relinkPolicy(config: Config, kind: string): RelinkPolicy {
  return config.relink[kind] ?? 'latest';
}
