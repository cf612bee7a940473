import { InvalidConfigError, XrefError, quote } from './domain/errors.ts';
import { KIND_PATTERN } from './domain/identifiers.ts';
import { defaultLimits } from './domain/limits.ts';

/**
 * The process settings of every xref command, read from the environment once (`loadSettings`)
 * and passed down as one frozen object. Every setting has its default in `settingDefaults()`,
 * the only place defaults are written; the offline library reads the same defaults. (The log
 * level, XREF_LOG_LEVEL, is read by src/log.ts alone: the root logger exists before any command
 * runs.)
 */
export interface Settings {
  /** NATS_URL: where the NATS server is (default nats://127.0.0.1:4222), without credentials (they have settings of their own). */
  readonly natsUrl: string;
  /**
   * NATS_USER with NATS_PASSWORD, NATS_TOKEN, or NATS_CREDS (the path of a .creds file): how every
   * NATS connection of xref's authenticates, at most one of them (default none: no credentials).
   */
  readonly natsAuth: NatsAuth;
  /** XREF_DATA_DIR: where an embedded nats-server keeps its store, and the SQLite read model its file (default .data). */
  readonly dataDir: string;
  /** XREF_CONFIG: path of the identity config file (JSON); none = defaults. */
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
  /**
   * XREF_DATABASE_URL: the read model's database. Unset: SQLite, the file `<XREF_DATA_DIR>/xref.sqlite`
   * (`sqlite:<path>` names another file, `sqlite::memory:` keeps it in memory); `postgres://…` or
   * `postgresql://…`: PostgreSQL.
   */
  readonly databaseUrl: string | undefined;
  /** XREF_PROJECTION_BATCH: inputs the projection writes in one transaction, at most (default 20000). */
  readonly projectionBatch: number;
  /** XREF_PROJECTION_MS: the longest the projection holds what it read before writing it (default 50). */
  readonly projectionMs: number;
  /** XREF_NO_ACTIVITY=1: the projection does not count active people (docs/activity.md; default: it does). */
  readonly noActivity: boolean;
  /** XREF_USER_EVENTS_CAP: the most events `GET /v1/users/:kind/:id` returns: the newest, with `truncated` (default 10000). */
  readonly userEventsCap: number;
  /** XREF_ERRORS_PER_SECOND: error records kept in full per reason per second; the rest are only counted (default 100). */
  readonly errorsPerSecond: number;
  /** PORT: the HTTP port (default 8080). */
  readonly port: number;
  /** XREF_HTTP_HOST: the address the HTTP collector listens on (default 0.0.0.0). */
  readonly httpHost: string;
  /**
   * XREF_WRITE_KEYS: comma-separated write keys the HTTP collector accepts (HTTP Basic user name,
   * Segment's convention). None and no XREF_INSECURE_NO_AUTH: the collector refuses to start.
   */
  readonly writeKeys: readonly string[];
  /** XREF_READ_TOKENS: comma-separated bearer tokens the query routes accept (none: they answer 401). */
  readonly readTokens: readonly string[];
  /**
   * XREF_ADMIN_TOKENS: comma-separated bearer tokens of the admin routes (forget a user, lift a
   * suppression, unlink an identifier; none: they answer 401). Each differs from every write key
   * and read token.
   */
  readonly adminTokens: readonly string[];
  /** XREF_READ_TOKEN: the read token the query commands send with `--url` when `--token` is not given. */
  readonly readToken: string | undefined;
  /** XREF_INSECURE_NO_AUTH=1 (or `--insecure-no-auth`): accept requests without a write key (default off). */
  readonly insecureNoAuth: boolean;
  /** XREF_PUBLIC_URL: the URL browsers reach this server at, for the analytics.js settings document (default: none). */
  readonly publicUrl: string | undefined;
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

/**
 * The credentials xref's NATS connections send (src/nats/connection.ts): nats-server decides by
 * them what a connection may publish and read (docs/security.md). A plain object, so that a worker
 * thread with a connection of its own can be handed it.
 */
export type NatsAuth =
  | { readonly scheme: 'none' }
  | { readonly scheme: 'user'; readonly user: string; readonly pass: string }
  | { readonly scheme: 'token'; readonly token: string }
  | { readonly scheme: 'creds'; readonly credsFile: string };

/** Every setting's default: the one place they are written. */
export function settingDefaults(): Settings {
  const limits = defaultLimits();
  return Object.freeze({
    natsUrl: 'nats://127.0.0.1:4222',
    natsAuth: Object.freeze({ scheme: 'none' }),
    dataDir: '.data',
    configFile: undefined,
    checkpointEvery: 50_000,
    checkpointMs: 10_000,
    passivateAfterMs: 60_000,
    maxLiveActors: 20_000,
    maxInFlight: 5_000,
    dedupLookback: 1_000_000,
    shutdownMs: 15_000,
    leaseTtlMs: 10_000,
    databaseUrl: undefined,
    projectionBatch: 20_000,
    projectionMs: 50,
    noActivity: false,
    userEventsCap: 10_000,
    errorsPerSecond: 100,
    port: 8080,
    httpHost: '0.0.0.0',
    writeKeys: Object.freeze([]),
    readTokens: Object.freeze([]),
    adminTokens: Object.freeze([]),
    readToken: undefined,
    insecureNoAuth: false,
    publicUrl: undefined,
    httpPublishDeadlineMs: 5_000,
    httpMaxEventBytes: limits.eventBytes,
    httpMaxRequestBytes: limits.batchBytes,
    httpMaxPendingEvents: 100_000,
    segmentUserKind: 'user_id',
  });
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads every setting from `env` (default the process environment); a bad value is an error naming the variable and the value. */
export function loadSettings(env: Env = process.env): Settings {
  const d = settingDefaults();
  const int = (name: string, fallback: number, min = 1) => envInt(env, name, fallback, min);
  const natsUrl = env.NATS_URL || d.natsUrl;
  refuseUrlCredentials(natsUrl);
  if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(natsUrl)) throw new InvalidConfigError('NATS_URL', natsUrl, 'must be a URL such as nats://127.0.0.1:4222');
  const writeKeys = credentials(env, 'XREF_WRITE_KEYS', 'a write key is an HTTP Basic user name, which cannot');
  const readTokenList = readTokens(env, writeKeys);
  return Object.freeze({
    natsUrl,
    natsAuth: natsAuth(env),
    dataDir: env.XREF_DATA_DIR || d.dataDir,
    configFile: env.XREF_CONFIG || d.configFile,
    checkpointEvery: int('XREF_CHECKPOINT_EVERY', d.checkpointEvery),
    checkpointMs: int('XREF_CHECKPOINT_MS', d.checkpointMs),
    passivateAfterMs: int('XREF_PASSIVATE_AFTER_MS', d.passivateAfterMs, 0),
    maxLiveActors: int('XREF_MAX_LIVE_ACTORS', d.maxLiveActors),
    maxInFlight: int('XREF_MAX_IN_FLIGHT', d.maxInFlight),
    dedupLookback: int('XREF_DEDUP_LOOKBACK', d.dedupLookback, 0),
    shutdownMs: int('XREF_SHUTDOWN_MS', d.shutdownMs),
    leaseTtlMs: int('XREF_LEASE_TTL_MS', d.leaseTtlMs, 400),
    databaseUrl: databaseUrl(env),
    projectionBatch: int('XREF_PROJECTION_BATCH', d.projectionBatch),
    projectionMs: int('XREF_PROJECTION_MS', d.projectionMs),
    noActivity: envFlag(env, 'XREF_NO_ACTIVITY'),
    userEventsCap: int('XREF_USER_EVENTS_CAP', d.userEventsCap),
    errorsPerSecond: int('XREF_ERRORS_PER_SECOND', d.errorsPerSecond),
    port: int('PORT', d.port, 0),
    httpHost: env.XREF_HTTP_HOST || d.httpHost,
    writeKeys,
    readTokens: readTokenList,
    adminTokens: adminTokens(env, writeKeys, readTokenList),
    readToken: env.XREF_READ_TOKEN?.trim() || d.readToken,
    insecureNoAuth: envFlag(env, 'XREF_INSECURE_NO_AUTH'),
    publicUrl: env.XREF_PUBLIC_URL?.trim() || d.publicUrl,
    httpPublishDeadlineMs: int('XREF_HTTP_PUBLISH_DEADLINE_MS', d.httpPublishDeadlineMs),
    httpMaxEventBytes: int('XREF_HTTP_MAX_EVENT_BYTES', d.httpMaxEventBytes),
    httpMaxRequestBytes: int('XREF_HTTP_MAX_REQUEST_BYTES', d.httpMaxRequestBytes),
    httpMaxPendingEvents: int('XREF_HTTP_MAX_PENDING_EVENTS', d.httpMaxPendingEvents),
    segmentUserKind: envKind(env, 'XREF_SEGMENT_USER_KIND', d.segmentUserKind),
  });
}

function envInt(env: Env, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidConfigError(name, raw, `must be an integer >= ${min}`);
  return value;
}

function envFlag(env: Env, name: string): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new InvalidConfigError(name, env[name], 'must be 1/true/yes or 0/false/no');
}

function envKind(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!KIND_PATTERN.test(raw)) throw new InvalidConfigError(name, raw, 'must match [A-Za-z0-9_-]+');
  return raw;
}

/** A comma-separated list of secrets, trimmed, deduplicated; error messages never quote one. */
function credentials(env: Env, name: string, why: string): readonly string[] {
  const raw = env[name];
  if (raw === undefined) return Object.freeze([]);
  const keys: string[] = [];
  raw.split(',').forEach((part, i) => {
    const key = part.trim();
    if (key === '') return;
    if (/[\s:]/.test(key)) throw new XrefError('XREF_INVALID_CONFIG', `${name} entry ${i + 1} holds a space or a ':' (${why})`, { field: name });
    keys.push(key);
  });
  return Object.freeze([...new Set(keys)]);
}

/** Secrets of another kind a bearer token must not be, and what to say when it is one (naming their variable). */
interface OtherSecrets {
  readonly secrets: readonly string[];
  readonly why: string;
}

/**
 * A comma-separated list of bearer tokens (`Authorization: Bearer <token>`), each differing from
 * the secrets of `others`. Error messages name the entry, never a token.
 */
function bearerTokens(env: Env, name: string, role: string, others: readonly OtherSecrets[]): readonly string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return Object.freeze([]);
  const tokens = new Set<string>();
  raw.split(',').forEach((part, i) => {
    const token = part.trim();
    const refuse = (why: string) => new XrefError('XREF_INVALID_CONFIG', `${name} entry ${i + 1} ${why}`, { field: name });
    if (token === '') throw refuse(`is empty: list the tokens separated by single commas, e.g. ${name}=token1,token2`);
    if (/\s/.test(token)) throw refuse(`holds a space (${role} is sent as Authorization: Bearer <token>, which cannot)`);
    for (const other of others) if (other.secrets.includes(token)) throw refuse(`is also ${other.why}`);
    tokens.add(token);
  });
  return Object.freeze([...tokens]);
}

const WRITE_KEYS_ARE_PUBLIC = 'a write key (XREF_WRITE_KEYS): write keys are public in web pages, so';

/** XREF_READ_TOKENS: the tokens of the read routes; a write key is no read token (write keys sit in web pages for anyone to read). */
function readTokens(env: Env, writeKeys: readonly string[]): readonly string[] {
  return bearerTokens(env, 'XREF_READ_TOKENS', 'a read token', [{ secrets: writeKeys, why: `${WRITE_KEYS_ARE_PUBLIC} a read token must be another secret` }]);
}

/**
 * XREF_ADMIN_TOKENS: the tokens of the admin routes, which erase people. An admin token is
 * neither a write key nor a read token, so that whoever may send or read events cannot forget
 * or unlink anyone.
 */
function adminTokens(env: Env, writeKeys: readonly string[], readTokenList: readonly string[]): readonly string[] {
  return bearerTokens(env, 'XREF_ADMIN_TOKENS', 'an admin token', [
    { secrets: writeKeys, why: `${WRITE_KEYS_ARE_PUBLIC} an admin token must be another secret` },
    { secrets: readTokenList, why: 'a read token (XREF_READ_TOKENS): whoever may read must not erase, so an admin token must be another secret' },
  ]);
}

/** XREF_DATABASE_URL, checked for a scheme xref reads (`postgres://`, `postgresql://`, `sqlite:`). */
function databaseUrl(env: Env): string | undefined {
  const raw = env.XREF_DATABASE_URL?.trim();
  if (raw === undefined || raw === '') return undefined;
  if (!/^(postgres|postgresql):\/\/\S+$/.test(raw) && !/^sqlite:\S+$/.test(raw)) {
    // the URL may hold a password: name the scheme only
    throw new InvalidConfigError('XREF_DATABASE_URL', raw.split(':')[0], 'must start with postgres://, postgresql:// or sqlite: (unset: SQLite under XREF_DATA_DIR)');
  }
  return raw;
}

/** The NATS credential settings, each a scheme of its own. */
const NATS_SCHEMES = [['NATS_USER', 'NATS_PASSWORD'], ['NATS_TOKEN'], ['NATS_CREDS']] as const;

/**
 * NATS_USER with NATS_PASSWORD, NATS_TOKEN or NATS_CREDS (unset or empty: not given). Two schemes
 * are refused rather than one picked: which one nats-server checked would be a guess. Messages
 * name the settings, never a secret.
 */
export function natsAuth(env: Env = process.env): NatsAuth {
  const given = (name: string) => (env[name] ?? '') !== '';
  const schemes = NATS_SCHEMES.map((names) => names.filter(given)).filter((names) => names.length > 0);
  if (schemes.length > 1) {
    const [first, second] = schemes.map((names) => names.join('/'));
    throw new XrefError('XREF_INVALID_CONFIG', `${first} and ${second} are both set: set one way for xref to authenticate to NATS (NATS_USER with NATS_PASSWORD, NATS_TOKEN, or NATS_CREDS)`, {
      field: schemes[1]![0],
    });
  }
  const { NATS_USER: user, NATS_PASSWORD: pass, NATS_TOKEN: token, NATS_CREDS: credsFile } = env;
  if (given('NATS_USER') !== given('NATS_PASSWORD')) {
    const [set, unset] = given('NATS_USER') ? ['NATS_USER', 'NATS_PASSWORD'] : ['NATS_PASSWORD', 'NATS_USER'];
    throw new XrefError('XREF_INVALID_CONFIG', `${set} is set without ${unset}: a NATS user authenticates with both`, { field: unset });
  }
  if (user && pass) return Object.freeze({ scheme: 'user', user, pass });
  if (token) return Object.freeze({ scheme: 'token', token });
  if (credsFile) return Object.freeze({ scheme: 'creds', credsFile });
  return Object.freeze({ scheme: 'none' });
}

/**
 * Refuses a NATS URL holding a user, a password or a token (`nats://user:pass@host`): the NATS
 * client would not send them, and the URL is logged. The message quotes the host only.
 */
export function refuseUrlCredentials(url: string): void {
  // a NATS URL has no path: any '@' ends credentials (which may hold a '/' or a '#' themselves)
  const at = url.lastIndexOf('@');
  if (at === -1) return;
  const host = url.slice(at + 1).split('/')[0];
  throw new XrefError(
    'XREF_INVALID_CONFIG',
    `NATS_URL holds credentials before the host ${quote(host)}, which the NATS client does not send: set NATS_URL=nats://<host>:<port> and the credentials in NATS_USER and NATS_PASSWORD (a token in NATS_TOKEN)`,
    { field: 'NATS_URL' },
  );
}

/** Address of nats://host:port, with the default port. */
export function natsHostPort(url: string): { host: string; port: number } {
  const parsed = new URL(url.replace(/^(tls|ws|wss):/, 'nats:'));
  return { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port || 4222) };
}
