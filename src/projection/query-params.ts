/**
 * The query API's parameters, from strings to typed queries: the URL query of `GET /v1/events`,
 * `/v1/unmatched`, `/v1/audit`, `/v1/errors`, the path parts of `/v1/users` and
 * `/v1/identifiers`, and the same names given as options to `xref events`, `who` and `user`, so a
 * bad value gets the same answer wherever it comes from. Pure: no store, no HTTP. An unknown
 * parameter, a parameter given twice or a bad value is an XREF_INVALID_ARGUMENT naming the
 * parameter and quoting the value.
 *
 * Cursors are opaque to clients: base64url JSON of the last row's keyset (event time, sequence),
 * the order it was made for and a hash of the list and its filters, so a cursor used with other
 * filters or another order is refused instead of paging the wrong list.
 */
import { createHash } from 'node:crypto';
import type { SeriesRequest } from '../activity/activity-series.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { type Identifier, KIND_PATTERN } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import type { EventFilter, Keyset, Order, PageQuery, RecordFilter, RecordList } from './read-model.ts';

/** A parsed URL query (fastify's `request.query`): a value, or an array when a name is repeated. */
export type QueryString = Readonly<Record<string, unknown>>;

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
export const DEFAULT_WAIT_MS = 2000;
export const MAX_WAIT_MS = 10_000;

/** The lists a cursor can page: the events, or one of the record lists. */
export type PagedList = 'events' | RecordList;

/** The parameters of `GET /v1/events`, in the order the answers list them. */
export const EVENT_PARAMS = ['session_id', 'category', 'name', 'source', 'user', 'identifier', 'after', 'before', 'order', 'limit', 'cursor', 'min_seq', 'wait_ms'] as const;
/** The parameters of `GET /v1/unmatched`, `/v1/audit` and `/v1/errors`. */
export const RECORD_PARAMS = ['reason', 'kind', 'after', 'before', 'order', 'limit', 'cursor'] as const;
/** The parameters of `GET /v1/activity` (`bucket` may repeat). */
export const ACTIVITY_PARAMS = ['period', 'from', 'to', 'bucket', 'tz'] as const;
/** The origins of error records (the `kind` filter of `/v1/errors`). */
export const ERROR_ORIGINS = ['http', 'publish', 'engine'] as const;

/** A page of events, and how long to wait for the read model to reach an input first. */
export interface EventsQuery {
  readonly page: PageQuery<EventFilter>;
  /** Answer only once the read model holds input `minSeq` (min_seq). */
  readonly minSeq?: number;
  /** How long to wait for it (wait_ms). */
  readonly waitMs: number;
}

/** What parsing needs to know of the identity config. */
export interface ParamContext {
  /** The internal kinds: a user is one of them and an id. */
  readonly internal: readonly string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):?(\d{2}))$/;

function invalid(name: string, message: string): XrefError {
  return new XrefError('XREF_INVALID_ARGUMENT', message, { field: name });
}

/** Whether year, month and day name a day of the calendar (2021-02-30 does not). */
function isCalendarDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * A time bound (epoch ms): ISO 8601 with a zone, or a date alone meaning the whole UTC day, so
 * `after=2021-06-01` starts at its first millisecond and `before=2021-05-20` ends at its last.
 */
export function parseTimeBound(name: string, value: string, bound: 'after' | 'before'): number {
  const how = 'must be an ISO 8601 time with a zone (2021-06-01T09:30:00Z) or a date (2021-06-01, the whole day in UTC)';
  const date = DATE.exec(value);
  if (date !== null) {
    const [year, month, day] = [Number(date[1]), Number(date[2]), Number(date[3])];
    if (!isCalendarDay(year, month, day)) throw invalid(name, `${name} ${how}, got ${quote(value)} (no such day)`);
    const start = Date.UTC(year, month - 1, day);
    return bound === 'after' ? start : start + DAY_MS - 1;
  }
  const time = DATE_TIME.exec(value);
  const ms = time === null ? Number.NaN : Date.parse(value);
  if (time === null || Number.isNaN(ms)) throw invalid(name, `${name} ${how}, got ${quote(value)}`);
  const [year, month, day, hour, minute, second, offsetHour, offsetMinute] = time.slice(1).map((part) => (part === undefined ? 0 : Number(part)));
  if (!isCalendarDay(year!, month!, day!) || hour! > 23 || minute! > 59 || second! > 59 || offsetHour! > 23 || offsetMinute! > 59) {
    throw invalid(name, `${name} ${how}, got ${quote(value)} (no such time)`);
  }
  return ms;
}

function integer(name: string, value: string, min: number, max: number, why = ''): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) throw invalid(name, `${name} must be an integer from ${min} to ${max}, got ${quote(value)}`);
  if (n > max) throw invalid(name, `${name} must be at most ${max}, got ${quote(value)}${why}`);
  return n;
}

/** `<kind>:<rest>`, split at the first ':'; the kind must be a kind name. */
function kindAndValue(name: string, value: string, what: string): { kind: string; rest: string } {
  const at = value.indexOf(':');
  const kind = at === -1 ? '' : value.slice(0, at);
  const rest = at === -1 ? '' : value.slice(at + 1);
  if (!KIND_PATTERN.test(kind) || rest === '') throw invalid(name, `${name} must be <kind>:<${what}> (e.g. ${name === 'user' ? 'db_id:42' : 'cookie:c-81f2'}), got ${quote(value)}`);
  return { kind, rest };
}

/** A user: one of the internal kinds and an id (`name`: the parameter, for the message). */
export function checkUser(name: string, kind: string, id: string, context: ParamContext): UserRef {
  if (!context.internal.includes(kind)) {
    throw invalid(
      name,
      `${name === 'user' ? 'the kind of user' : name} must be an internal kind (${context.internal.join(', ')}), got ${quote(kind)}: users are known by their internal ids; ask /v1/identifiers/${kind}/<value> (xref who) whom a third-party id belongs to`,
    );
  }
  if (id === '') throw invalid(name, `the id of ${name === 'user' ? 'user' : 'the user'} must not be empty, got ${quote(id)}`);
  return { kind, id };
}

/** An identifier given as path parts or CLI arguments (`kindName`, `valueName`: their names). */
export function checkIdentifier(kind: string, value: string, kindName = 'kind', valueName = 'value'): Identifier {
  if (!KIND_PATTERN.test(kind)) throw invalid(kindName, `${kindName} must match [A-Za-z0-9_-]+, got ${quote(kind)}`);
  if (value === '') throw invalid(valueName, `${valueName} must not be empty, got ${quote(value)}`);
  return { kind, value };
}

/** The parameters of one query: any name not `known` is refused at once; each known one is read as one non-empty string. */
class Params {
  constructor(
    private readonly raw: QueryString,
    known: readonly string[],
  ) {
    for (const name of Object.keys(raw)) {
      if (!known.includes(name)) throw invalid(name, `unknown parameter ${quote(name)} (value ${quote(raw[name])}): the parameters are ${known.join(', ')}`);
    }
  }

  /** Every value of a name that may repeat: non-empty strings. */
  strings(name: string): string[] {
    const value = this.raw[name];
    const values = value === undefined ? [] : Array.isArray(value) ? (value as unknown[]) : [value];
    for (const one of values) {
      if (typeof one !== 'string' || one === '') throw invalid(name, `${name} must be a non-empty string, got ${quote(one)}`);
    }
    return values as string[];
  }

  /** The value of `name`: a non-empty string, or undefined when absent. */
  string(name: string): string | undefined {
    const value = this.raw[name];
    if (value === undefined) return undefined;
    if (Array.isArray(value)) throw invalid(name, `${name} must be given once, got ${value.length} values ${quote(value)}`);
    if (typeof value !== 'string') throw invalid(name, `${name} must be a string, got ${quote(value)}`);
    if (value === '') throw invalid(name, `${name} must not be empty, got ${quote(value)}`);
    return value;
  }
}

/** The time window and paging parameters every list takes; the cursor is checked against the whole filter. */
function paging<F extends EventFilter | RecordFilter>(params: Params, list: PagedList, fields: F, defaultOrder: Order): PageQuery<F> {
  const after = params.string('after');
  const before = params.string('before');
  const afterMs = after === undefined ? undefined : parseTimeBound('after', after, 'after');
  const beforeMs = before === undefined ? undefined : parseTimeBound('before', before, 'before');
  if (afterMs !== undefined && beforeMs !== undefined && afterMs > beforeMs) {
    throw invalid('after', `after must not be later than before, got after ${quote(after)} and before ${quote(before)}`);
  }
  const orderText = params.string('order');
  if (orderText !== undefined && orderText !== 'asc' && orderText !== 'desc') throw invalid('order', `order must be asc or desc, got ${quote(orderText)}`);
  const order: Order = orderText ?? defaultOrder;
  const limitText = params.string('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : integer('limit', limitText, 1, MAX_LIMIT, ': ask for the next page with the cursor of the answer');
  const filter: F = { ...fields, ...(afterMs === undefined ? {} : { afterMs }), ...(beforeMs === undefined ? {} : { beforeMs }) };
  const cursor = params.string('cursor');
  if (cursor === undefined) return { filter, order, limit };
  return { filter, order, limit, from: decodeCursor(cursor, list, order, filterHash(list, filter)) };
}

/**
 * The query of `GET /v1/activity` (and `xref activity` without a file): the period (required),
 * the range, the buckets and the zone; their values are checked against the counts themselves
 * (src/activity/activity-series.ts planSeries).
 */
export function parseActivityQuery(raw: QueryString): SeriesRequest {
  const params = new Params(raw, ACTIVITY_PARAMS);
  const period = params.string('period');
  if (period === undefined) throw invalid('period', 'period is required: day, week or month');
  const [from, to, tz] = [params.string('from'), params.string('to'), params.string('tz')];
  const buckets = params.strings('bucket');
  return { period, ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }), ...(buckets.length === 0 ? {} : { buckets }), ...(tz === undefined ? {} : { tz }) };
}

/** The query of `GET /v1/events` (and `xref events`). */
export function parseEventsQuery(raw: QueryString, context: ParamContext): EventsQuery {
  const params = new Params(raw, EVENT_PARAMS);
  const sessionId = params.string('session_id');
  const category = params.string('category');
  const name = params.string('name');
  const source = params.string('source');
  const userText = params.string('user');
  const identifierText = params.string('identifier');
  let user: UserRef | undefined;
  if (userText !== undefined) {
    const { kind, rest } = kindAndValue('user', userText, 'id');
    user = checkUser('user', kind, rest, context);
  }
  let identifier: Identifier | undefined;
  if (identifierText !== undefined) {
    const { kind, rest } = kindAndValue('identifier', identifierText, 'value');
    identifier = { kind, value: rest };
  }
  const fields: EventFilter = {
    ...(sessionId === undefined ? {} : { sessionId }),
    ...(category === undefined ? {} : { category }),
    ...(name === undefined ? {} : { name }),
    ...(source === undefined ? {} : { source }),
    ...(user === undefined ? {} : { user }),
    ...(identifier === undefined ? {} : { identifier }),
  };
  // a session reads as it happened; any other list starts with the newest
  const page = paging(params, 'events', fields, sessionId === undefined ? 'desc' : 'asc');
  const minSeqText = params.string('min_seq');
  const waitText = params.string('wait_ms');
  if (waitText !== undefined && minSeqText === undefined) throw invalid('wait_ms', `wait_ms is how long to wait for min_seq, and goes with it: got wait_ms ${quote(waitText)} without min_seq`);
  const minSeq = minSeqText === undefined ? undefined : integer('min_seq', minSeqText, 0, Number.MAX_SAFE_INTEGER);
  const waitMs = waitText === undefined ? DEFAULT_WAIT_MS : integer('wait_ms', waitText, 0, MAX_WAIT_MS);
  return { page, ...(minSeq === undefined ? {} : { minSeq }), waitMs };
}

/** The query of `GET /v1/unmatched`, `/v1/audit` or `/v1/errors`. */
export function parseRecordsQuery(list: RecordList, raw: QueryString): PageQuery<RecordFilter> {
  const params = new Params(raw, RECORD_PARAMS);
  const reason = params.string('reason');
  if (reason !== undefined && !KIND_PATTERN.test(reason)) {
    throw invalid('reason', `reason must match [A-Za-z0-9_-]+ (e.g. ${list === 'errors' ? 'schema_violation' : list === 'audit' ? 'relink' : 'expired'}), got ${quote(reason)}`);
  }
  const kind = params.string('kind');
  if (kind !== undefined) {
    if (list === 'errors' && !(ERROR_ORIGINS as readonly string[]).includes(kind)) {
      throw invalid('kind', `kind of /v1/errors is where the input was rejected and must be one of ${ERROR_ORIGINS.join(', ')}, got ${quote(kind)}`);
    }
    if (list !== 'errors' && !KIND_PATTERN.test(kind)) throw invalid('kind', `kind must be an identifier kind matching [A-Za-z0-9_-]+, got ${quote(kind)}`);
  }
  const fields: RecordFilter = { ...(reason === undefined ? {} : { reason }), ...(kind === undefined ? {} : { kind }) };
  return paging(params, list, fields, 'desc');
}

// --- cursors --------------------------------------------------------------------------------------

/** What a cursor holds (short keys: it travels in URLs). */
interface CursorBody {
  /** The list it pages. */
  readonly l: PagedList;
  /** The last row's time (epoch ms) and sequence. */
  readonly t: number;
  readonly s: number;
  readonly o: Order;
  /** Hash of the list and its filters. */
  readonly h: string;
}

/** JSON with every object's keys sorted: the same filter hashes the same however it was built. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A short hash of a list and its whole filter (time window included; order and limit apart). */
function filterHash(list: PagedList, filter: EventFilter | RecordFilter): string {
  return createHash('sha256').update(canonical([list, filter])).digest('base64url').slice(0, 16);
}

/** The cursor of the page after the one ending at `last`. */
export function encodeCursor(list: PagedList, query: PageQuery<EventFilter | RecordFilter>, last: Keyset): string {
  const body: CursorBody = { l: list, t: last.timeMs, s: last.seq, o: query.order, h: filterHash(list, query.filter) };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

function decodeCursor(cursor: string, list: PagedList, order: Order, hash: string): Keyset {
  const malformed = () => invalid('cursor', `cursor must be the "next" of an earlier answer, unchanged, got ${quote(cursor)}`);
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw malformed();
  let body: Partial<CursorBody>;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorBody>;
  } catch {
    throw malformed();
  }
  if (typeof body !== 'object' || body === null || !Number.isSafeInteger(body.t) || !Number.isSafeInteger(body.s) || (body.o !== 'asc' && body.o !== 'desc') || typeof body.h !== 'string' || typeof body.l !== 'string') {
    throw malformed();
  }
  if (body.l !== list) throw invalid('cursor', `cursor ${quote(cursor)} pages ${body.l === 'events' ? '/v1/events' : `/v1/${body.l}`}, not ${list === 'events' ? '/v1/events' : `/v1/${list}`}`);
  if (body.o !== order) throw invalid('cursor', `cursor ${quote(cursor)} was made for order=${body.o}, not order=${order}: page on with the order it was made for, or start again without a cursor`);
  if (body.h !== hash) throw invalid('cursor', `cursor ${quote(cursor)} was made for other filters: page on with the filters it was made for, or start again without a cursor`);
  return { timeMs: body.t!, seq: body.s! };
}
