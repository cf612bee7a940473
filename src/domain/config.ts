import { InvalidConfigError, XrefError } from './errors.ts';
import { KIND_PATTERN } from './identifiers.ts';
import { defaultLimits } from './limits.ts';

export type RelinkPolicy = 'latest' | 'first';

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
}

/** The validated, frozen configuration the engine runs with. */
export interface Config {
  readonly internal: readonly string[];
  readonly relink: Readonly<Record<string, RelinkPolicy>>;
  readonly maxIdsPerUser: Readonly<Record<string, number>>;
  readonly buffer: { readonly maxEvents: number; readonly ttlMs: number };
  readonly junkValues: readonly string[];
  readonly junkPattern: string | undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The one place defaults come from. */
export function defaultConfig(): Config {
  return resolveConfig({});
}

const KEYS = ['internal', 'relink', 'maxIdsPerUser', 'buffer', 'junkValues', 'junkPattern'];

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

/** Validates a config (file or object) once, fills the defaults and freezes it. */
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
  return deepFreeze({
    internal: [...new Set(internal as string[])],
    relink,
    maxIdsPerUser,
    buffer: {
      maxEvents: positiveInt('buffer.maxEvents', buffer.maxEvents, 1000),
      ttlMs: positiveInt('buffer.ttlMs', buffer.ttlMs, 7 * DAY_MS),
    },
    junkValues: [...(junkValues as string[])],
    junkPattern: junkPattern as string | undefined,
  });
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

/** Settings of the `xref serve` process, from the environment; every one has a default. */
export interface ServiceSettings {
  /** NATS_URL: where the NATS server is (default nats://127.0.0.1:4222). */
  readonly natsUrl: string;
  /** XREF_DATA_DIR: where an embedded nats-server keeps its store (default .data). */
  readonly dataDir: string;
  /** XREF_CONFIG: path of the identity config file (JSON, the keys above); none = defaults. */
  readonly configFile: string | undefined;
  /** XREF_CHECKPOINT_EVERY: inputs between two checkpoints (default 50000). */
  readonly checkpointEvery: number;
  /** XREF_CHECKPOINT_MS: the most time between two checkpoints (default 10000). */
  readonly checkpointMs: number;
  /** XREF_PASSIVATE_AFTER_MS: a buffering actor idle this long leaves memory (default 60000). */
  readonly passivateAfterMs: number;
  /** XREF_MAX_LIVE_ACTORS: live actors per kind of machine before the least recently used is passivated (default 20000). */
  readonly maxLiveActors: number;
  /** XREF_MAX_IN_FLIGHT: inputs whose outputs may await their acks at once (default 5000). */
  readonly maxInFlight: number;
  /** XREF_DEDUP_LOOKBACK: the event-id dedup window, in inputs; read back at start to refill it (default 1000000). */
  readonly dedupLookback: number;
  /** XREF_SHUTDOWN_MS: the longest a clean stop may take before the process exits anyway (default 15000). */
  readonly shutdownMs: number;
  /** XREF_LEASE_TTL_MS: a standby takes the engine over once the holder has not renewed its lease for this long (default 10000). */
  readonly leaseTtlMs: number;
  /** PORT: the HTTP port (default 8080). */
  readonly port: number;
  /** XREF_HTTP_HOST: the address the HTTP collector listens on (default 0.0.0.0). */
  readonly httpHost: string;
  /**
   * XREF_WRITE_KEYS: comma-separated write keys the HTTP collector accepts (HTTP Basic user name,
   * Segment's convention). None and no XREF_INSECURE_NO_AUTH: the collector refuses to start.
   */
  readonly writeKeys: readonly string[];
  /** XREF_INSECURE_NO_AUTH=1 (or `--insecure-no-auth`): accept requests without a write key (default off). */
  readonly insecureNoAuth: boolean;
  /** XREF_HTTP_PUBLISH_DEADLINE_MS: how long a request waits for JetStream's acks before a 503 (default 5000). */
  readonly httpPublishDeadlineMs: number;
  /** XREF_HTTP_MAX_EVENT_BYTES: the largest event the collector takes, as JSON bytes (default 32768). */
  readonly httpMaxEventBytes: number;
  /** XREF_HTTP_MAX_REQUEST_BYTES: the largest request body (default 512000). */
  readonly httpMaxRequestBytes: number;
  /** XREF_HTTP_MAX_PENDING_EVENTS: events awaiting JetStream's ack at once before requests get a 503 (default 100000). */
  readonly httpMaxPendingEvents: number;
  /** XREF_SEGMENT_USER_KIND: the internal kind a Segment `userId` maps to (default user_id). */
  readonly segmentUserKind: string;
}

function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidConfigError(name, raw, `must be an integer >= ${min}`);
  return value;
}

export function serviceSettings(env: NodeJS.ProcessEnv = process.env): ServiceSettings {
  const natsUrl = env.NATS_URL || 'nats://127.0.0.1:4222';
  if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(natsUrl)) throw new InvalidConfigError('NATS_URL', natsUrl, 'must be a URL such as nats://127.0.0.1:4222');
  return Object.freeze({
    natsUrl,
    dataDir: env.XREF_DATA_DIR || '.data',
    configFile: env.XREF_CONFIG || undefined,
    checkpointEvery: envInt(env, 'XREF_CHECKPOINT_EVERY', 50_000),
    checkpointMs: envInt(env, 'XREF_CHECKPOINT_MS', 10_000),
    passivateAfterMs: envInt(env, 'XREF_PASSIVATE_AFTER_MS', 60_000, 0),
    maxLiveActors: envInt(env, 'XREF_MAX_LIVE_ACTORS', 20_000),
    maxInFlight: envInt(env, 'XREF_MAX_IN_FLIGHT', 5_000),
    dedupLookback: envInt(env, 'XREF_DEDUP_LOOKBACK', 1_000_000, 0),
    shutdownMs: envInt(env, 'XREF_SHUTDOWN_MS', 15_000),
    leaseTtlMs: envInt(env, 'XREF_LEASE_TTL_MS', 10_000, 400),
    port: envInt(env, 'PORT', 8080, 0),
    httpHost: env.XREF_HTTP_HOST || '0.0.0.0',
    writeKeys: Object.freeze(writeKeys(env.XREF_WRITE_KEYS)),
    insecureNoAuth: envFlag(env, 'XREF_INSECURE_NO_AUTH'),
    httpPublishDeadlineMs: envInt(env, 'XREF_HTTP_PUBLISH_DEADLINE_MS', 5_000),
    httpMaxEventBytes: envInt(env, 'XREF_HTTP_MAX_EVENT_BYTES', defaultLimits().eventBytes),
    httpMaxRequestBytes: envInt(env, 'XREF_HTTP_MAX_REQUEST_BYTES', defaultLimits().batchBytes),
    httpMaxPendingEvents: envInt(env, 'XREF_HTTP_MAX_PENDING_EVENTS', 100_000),
    segmentUserKind: envKind(env, 'XREF_SEGMENT_USER_KIND', 'user_id'),
  });
}

function envFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new InvalidConfigError(name, env[name], 'must be 1/true/yes or 0/false/no');
}

function envKind(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!KIND_PATTERN.test(raw)) throw new InvalidConfigError(name, raw, 'must match [A-Za-z0-9_-]+');
  return raw;
}

/** XREF_WRITE_KEYS, split on commas and trimmed. Error messages never quote a key. */
function writeKeys(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const keys: string[] = [];
  raw.split(',').forEach((part, i) => {
    const key = part.trim();
    if (key === '') return;
    if (/[\s:]/.test(key)) {
      throw new XrefError('XREF_INVALID_CONFIG', `XREF_WRITE_KEYS entry ${i + 1} holds a space or a ':' (a write key is an HTTP Basic user name, which cannot)`, {
        field: 'XREF_WRITE_KEYS',
      });
    }
    keys.push(key);
  });
  return [...new Set(keys)];
}

/** Address of nats://host:port, with the default port. */
export function natsHostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url.replace(/^(tls|ws|wss):/, 'nats:'));
  return { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port || 4222) };
}
