/**
 * What the two read-model adapters share: the query text (written once, `?` placeholders; the
 * PostgreSQL adapter numbers them), the values each row is written with, and how answers are read
 * back into the port's types. Both dialects take this SQL as it is (row values, CROSS JOIN), but
 * for the join of an answer's resolution.
 *
 * Resolutions hold no event body: every answer joins `events` on the event's seq. The projection
 * reads XREF_IN and XREF_GROUPS side by side, so a resolution may be written before its event: it
 * is left out of every answer (a user's events, their total, `?user=` pages) until the event is
 * projected, and a link's `since` is null until then. Text keys compare bytewise in both (PostgreSQL's columns are COLLATE "C"), so every
 * order, and so every answer, is the same on either database.
 */
import type { XrefEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { Dialect } from './migrations.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import type {
  AuditRow,
  ErrorRow,
  EventFilter,
  EventRow,
  LinkFacts,
  PageQuery,
  ProjectedStream,
  RecordFilter,
  RecordList,
  ResolutionRow,
  StoredEvent,
  StoredRecord,
  StreamPosition,
  UnlinkRow,
  UnmatchedRow,
} from './read-model.ts';

/** A statement and its parameters, in placeholder order. */
export interface Statement {
  readonly sql: string;
  readonly params: readonly (string | number | null)[];
}

/** A value as a column takes it: absent is NULL, a body its JSON text. */
export type Value = string | number | null;
type Column = Value;
const orNull = (value: string | undefined): string | null => value ?? null;

// --- writing ----------------------------------------------------------------------------------

/** The columns of each table a batch writes, in the order of the values below. */
export const COLUMNS = {
  events: ['seq', 'id', 'name', 'category', 'session_id', 'source', 'time_ms', 'body'],
  event_ids: ['kind', 'value', 'seq'],
  resolutions: ['event_seq', 'user_kind', 'user_id', 'via_kind', 'via_value', 'decided_seq', 'output_id'],
  unmatched: ['output_id', 'stream_seq', 'event_seq', 'reason', 'kind', 'value', 'time_ms', 'body'],
  audit: ['output_id', 'stream_seq', 'reason', 'kind', 'value', 'user_kind', 'user_id', 'event_seq', 'event_id', 'time_ms', 'body'],
  errors: ['id', 'stream_seq', 'reason', 'origin', 'time_ms', 'body'],
  links: ['kind', 'value', 'user_kind', 'user_id', 'event_seq', 'event_id'],
  positions: ['stream', 'seq', 'created'],
} as const;

export type WrittenTable = keyof typeof COLUMNS;
/** The integer columns (bigint in PostgreSQL); every other one is text. */
export const INT_COLUMNS: ReadonlySet<string> = new Set(['seq', 'time_ms', 'stream_seq', 'event_seq', 'decided_seq']);

/** A link written over the stored one only when it comes from a later event. */
const LINK_CONFLICT =
  'ON CONFLICT (kind, value) DO UPDATE SET user_kind = excluded.user_kind, user_id = excluded.user_id, event_seq = excluded.event_seq, event_id = excluded.event_id WHERE excluded.event_seq > links.event_seq';
/** A position moved forward only. */
const POSITION_CONFLICT = 'ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, created = excluded.created WHERE excluded.seq > positions.seq';

/** How a row that is there already is met: kept, but for a later link or a further position. */
export const conflictClause = (table: WrittenTable): string =>
  table === 'links' ? LINK_CONFLICT : table === 'positions' ? POSITION_CONFLICT : 'ON CONFLICT DO NOTHING';

/** The INSERT of `rows` rows (`?` per column, row after row). */
export const insertRowsSql = (table: WrittenTable, rows: number): string => {
  const row = `(${COLUMNS[table].map(() => '?').join(', ')})`;
  return `INSERT INTO ${table} (${COLUMNS[table].join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')} ${conflictClause(table)}`;
};
/** One row's INSERT (`?` per column). */
export const insertRowSql = (table: WrittenTable): string => insertRowsSql(table, 1);

export const eventValues = (row: EventRow): Value[] => [row.seq, row.id, orNull(row.name), orNull(row.category), orNull(row.sessionId), row.source, row.timeMs, row.json];
/** One row per identifier of the event. */
export const eventIdValues = (row: EventRow): Value[][] => Object.entries(row.ids).map(([kind, value]) => [kind, value, row.seq]);
export const resolutionValues = (row: ResolutionRow): Value[] => [row.eventSeq, row.user.kind, row.user.id, row.via.kind, row.via.value, row.decidedSeq, row.outputId ?? null];
export const unmatchedValues = (row: UnmatchedRow): Value[] => [
  row.outputId,
  row.streamSeq,
  row.eventSeq,
  row.reason,
  row.identifier.kind,
  row.identifier.value,
  row.timeMs,
  JSON.stringify(row.record),
];
export const auditValues = (row: AuditRow): Value[] => [
  row.outputId,
  row.streamSeq,
  row.reason,
  row.identifier.kind,
  row.identifier.value,
  row.user?.kind ?? null,
  row.user?.id ?? null,
  row.eventSeq,
  row.eventId,
  row.timeMs,
  JSON.stringify(row.record),
];
export const errorValues = (row: ErrorRow): Value[] => [row.id, row.streamSeq, row.reason, row.origin, row.timeMs, JSON.stringify(row.record)];
export const positionValues = (position: StreamPosition): Value[] => [position.stream, position.seq, position.created];

/** The audit reasons that move an identifier's link; conflicts and refusals leave it where it is. */
const LINKING = new Set(['link', 'relink']);

/**
 * The links a batch's audit rows set: per identifier, its link or relink with the highest event
 * seq (the later in the batch on a tie). The store writes each over the stored one only when its
 * event seq is higher, so the order batches come in does not matter. An unlink of the batch
 * (`unlinks`, written first: the stored link goes) ends the links its identifier had before it in
 * the stream: those rows are left out.
 */
export function linkValues(audit: readonly AuditRow[], unlinks: readonly UnlinkRow[] = []): Value[][] {
  const ended = new Map<string, number>();
  for (const u of unlinks) {
    const key = `${u.identifier.kind}:${u.identifier.value}`;
    ended.set(key, Math.max(ended.get(key) ?? 0, u.streamSeq));
  }
  const latest = new Map<string, AuditRow & { user: UserRef }>();
  for (const row of audit) {
    if (!LINKING.has(row.reason) || row.user === undefined) continue;
    const key = `${row.identifier.kind}:${row.identifier.value}`;
    if (row.streamSeq < (ended.get(key) ?? 0)) continue;
    const seen = latest.get(key);
    if (seen === undefined || row.eventSeq >= seen.eventSeq) latest.set(key, row as AuditRow & { user: UserRef });
  }
  return [...latest.values()].map((row) => [row.identifier.kind, row.identifier.value, row.user.kind, row.user.id, row.eventSeq, row.eventId]);
}

/** The events of a batch in log order, each id once (the first one wins, as the table keeps it). */
export function eventsInOrder(events: readonly EventRow[]): EventRow[] {
  const seen = new Set<string>();
  // read from one stream, they come in order already: sorted only when not
  let sorted = true;
  for (let i = 1; i < events.length && sorted; i++) sorted = events[i - 1]!.seq <= events[i]!.seq;
  return (sorted ? events : [...events].sort((a, b) => a.seq - b.seq)).filter((row) => !seen.has(row.id) && seen.add(row.id));
}

/** A batch's positions, each stream once (its furthest): one upsert per stream. */
export function latestPositions(positions: readonly StreamPosition[]): StreamPosition[] {
  const latest = new Map<ProjectedStream, StreamPosition>();
  for (const position of positions) {
    const seen = latest.get(position.stream);
    if (seen === undefined || position.seq >= seen.seq) latest.set(position.stream, position);
  }
  return [...latest.values()];
}

/**
 * What deletes the active-people counts (made from the events and their resolutions: deleted
 * with either): their rows, and their state back to nothing counted, one generation on.
 */
export const ACTIVITY_RESET_SQL: readonly string[] = [
  ...['activity_people', 'activity_counts', 'activity_anon', 'activity_pending'].map((table) => `DELETE FROM ${table}`),
  'UPDATE activity_state SET generation = generation + 1, seq = 0, columns = NULL, zones = NULL, scalars = NULL WHERE id = 1',
];

const emptied = (...tables: string[]) => tables.map((table) => `DELETE FROM ${table}`);

/** What `resetStreams` runs per stream: the rows read from it deleted, and what was made from them. */
export const STREAM_RESETS: Readonly<Record<ProjectedStream, readonly string[]>> = {
  in: [...emptied('events', 'event_ids'), ...ACTIVITY_RESET_SQL],
  groups: [...emptied('resolutions', 'retractions'), ...ACTIVITY_RESET_SQL],
  unmatched: emptied('unmatched'),
  audit: emptied('audit', 'links'),
  errors: emptied('errors'),
};

/** Rejection of a write by a process that does not hold the claim. */
export function fencedError(what: string, owner: string): XrefError {
  return new XrefError('XREF_FENCED', `${what}: the read model is claimed by another projection, not by ${JSON.stringify(owner)}`);
}

/** The claim taken when free, expired (`expires_ms < now`) or already held: `[owner, expires, owner, now]`. */
export const CLAIM_SQL = 'UPDATE claim SET owner = ?, expires_ms = ? WHERE id = 1 AND (owner IS NULL OR owner = ? OR expires_ms < ?)';
export const RELEASE_SQL = 'UPDATE claim SET owner = NULL, expires_ms = 0 WHERE id = 1 AND owner = ?';
/**
 * Who holds the claim. A holder whose claim ran out still holds it until another owner takes it:
 * a slow batch of the only projection is not refused, and once another one claims, the old one is.
 */
export const CLAIM_OWNER_SQL = 'SELECT owner FROM claim WHERE id = 1';
export const POSITIONS_SQL = 'SELECT stream, seq, created FROM positions ORDER BY stream';

// --- reading ----------------------------------------------------------------------------------

/** An event answer's columns: the event, and the resolution it carries (NULLs without one). */
interface EventAnswer {
  seq: number;
  source: string;
  time_ms: number;
  body: string;
  user_kind: string | null;
  user_id: string | null;
  via_kind: string | null;
  via_value: string | null;
}

/**
 * The resolution an event answer carries: the one with the lowest user (kind, then id; an event
 * resolved to several users carries the same one in every answer). Joined past the page's LIMIT,
 * so it costs one probe of the key (event_seq, user_kind, user_id) per row answered: PostgreSQL
 * through LATERAL (a plain join there may hash the whole table), SQLite (no LATERAL) through the
 * first row of the key's range.
 */
const FIRST_RESOLUTION: Readonly<Record<Dialect, string>> = {
  sqlite:
    'LEFT JOIN resolutions r ON r.event_seq = p.seq AND (r.user_kind, r.user_id) = ' +
    '(SELECT f.user_kind, f.user_id FROM resolutions f WHERE f.event_seq = p.seq ORDER BY f.user_kind, f.user_id LIMIT 1)',
  postgres:
    'LEFT JOIN LATERAL (SELECT f.user_kind, f.user_id, f.via_kind, f.via_value FROM resolutions f WHERE f.event_seq = p.seq ORDER BY f.user_kind, f.user_id LIMIT 1) r ON true',
};
const ANSWER_COLUMNS = 'p.seq, p.source, p.time_ms, p.body, r.user_kind, r.user_id, r.via_kind, r.via_value';

function direction(order: 'asc' | 'desc') {
  return order === 'asc' ? { dir: 'ASC', past: '>' } : { dir: 'DESC', past: '<' };
}

/**
 * A page of events. With `user` or `identifier`, the rows of that user (resolutions) or identifier
 * (event_ids) drive the query, in that order (CROSS JOIN keeps SQLite from walking every event in
 * time order to find a few), and their events are sorted; otherwise one of the events' (column,
 * time, seq) indexes gives the rows in order, and the LIMIT stops it. With `user`, each event
 * carries that user's resolution; otherwise its first one (FIRST_RESOLUTION). A resolution whose
 * event is not projected yet is no answer until the event is.
 */
export function eventsPage(query: PageQuery<EventFilter>, dialect: Dialect): Statement {
  const { filter: f } = query;
  const { dir, past } = direction(query.order);
  const tables: string[] = [];
  const where: string[] = [];
  const params: Column[] = [];
  const when = (condition: string, ...values: Column[]) => {
    where.push(condition);
    params.push(...values);
  };
  if (f.identifier !== undefined) {
    tables.push('event_ids i');
    when('i.kind = ? AND i.value = ?', f.identifier.kind, f.identifier.value);
  }
  if (f.user !== undefined) {
    tables.push('resolutions r');
    when('r.user_kind = ? AND r.user_id = ?', f.user.kind, f.user.id);
    if (f.identifier !== undefined) where.push('r.event_seq = i.seq');
  }
  tables.push('events e');
  if (f.user !== undefined) where.push('e.seq = r.event_seq');
  else if (f.identifier !== undefined) where.push('e.seq = i.seq');
  if (f.sessionId !== undefined) when('e.session_id = ?', f.sessionId);
  if (f.category !== undefined) when('e.category = ?', f.category);
  if (f.name !== undefined) when('e.name = ?', f.name);
  if (f.source !== undefined) when('e.source = ?', f.source);
  if (f.afterMs !== undefined) when('e.time_ms >= ?', f.afterMs);
  if (f.beforeMs !== undefined) when('e.time_ms <= ?', f.beforeMs);
  if (query.from !== undefined) when(`(e.time_ms, e.seq) ${past} (?, ?)`, query.from.timeMs, query.from.seq);
  params.push(query.limit);
  const conditions = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  const order = `ORDER BY p.time_ms ${dir}, p.seq ${dir}`;
  if (f.user !== undefined) {
    const columns = 'e.seq, e.source, e.time_ms, e.body, r.user_kind, r.user_id, r.via_kind, r.via_value';
    return { sql: `SELECT ${columns} FROM ${tables.join(' CROSS JOIN ')}${conditions} ORDER BY e.time_ms ${dir}, e.seq ${dir} LIMIT ?`, params };
  }
  const page = `SELECT e.seq, e.source, e.time_ms, e.body FROM ${tables.join(' CROSS JOIN ')}${conditions} ORDER BY e.time_ms ${dir}, e.seq ${dir} LIMIT ?`;
  return { sql: `SELECT ${ANSWER_COLUMNS} FROM (${page}) p ${FIRST_RESOLUTION[dialect]} ${order}`, params };
}

/** One event by id, with its first resolution: `[id]`. */
export const eventByIdSql = (dialect: Dialect): string => `SELECT ${ANSWER_COLUMNS} FROM (SELECT seq, source, time_ms, body FROM events WHERE id = ?) p ${FIRST_RESOLUTION[dialect]}`;

/** A user's newest `limit` resolved events, in log order: `[kind, id, limit]`. */
export const USER_EVENTS_SQL =
  'SELECT seq, body, via_kind, via_value FROM (SELECT r.event_seq AS seq, e.body, r.via_kind, r.via_value FROM resolutions r CROSS JOIN events e ' +
  'WHERE r.user_kind = ? AND r.user_id = ? AND e.seq = r.event_seq ORDER BY r.event_seq DESC LIMIT ?) p ORDER BY seq ASC';
/** How many resolved events of a user are projected: `[kind, id]`. */
export const USER_TOTAL_SQL = 'SELECT count(*) AS count FROM resolutions r CROSS JOIN events e WHERE r.user_kind = ? AND r.user_id = ? AND e.seq = r.event_seq';

const LINK_COLUMNS = 'SELECT l.kind, l.value, l.user_kind, l.user_id, l.event_seq, l.event_id, e.time_ms FROM links l LEFT JOIN events e ON e.seq = l.event_seq';
/** A user's links in the order they were made: `[kind, id]`. */
export const USER_LINKS_SQL = `${LINK_COLUMNS} WHERE l.user_kind = ? AND l.user_id = ? ORDER BY l.event_seq, l.kind, l.value`;
/** An identifier's link: `[kind, value]`. */
export const IDENTIFIER_LINK_SQL = `${LINK_COLUMNS} WHERE l.kind = ? AND l.value = ?`;

/** An identifier's events neither resolved nor unmatched (each `[kind, value]` first). */
const BUFFERED =
  'FROM event_ids i CROSS JOIN events e WHERE i.kind = ? AND i.value = ? AND e.seq = i.seq ' +
  'AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.event_seq = i.seq) AND NOT EXISTS (SELECT 1 FROM unmatched u WHERE u.event_seq = i.seq)';
export const BUFFERED_SUMMARY_SQL = `SELECT count(*) AS count, min(e.time_ms) AS oldest_ms ${BUFFERED}`;
/** `[kind, value, limit]`. */
export const BUFFERED_EVENTS_SQL = `SELECT e.seq, e.source, e.time_ms, e.body, NULL AS user_kind, NULL AS user_id, NULL AS via_kind, NULL AS via_value ${BUFFERED} ORDER BY i.seq LIMIT ?`;
/** An identifier's unmatched records per reason: `[kind, value]`. */
export const UNMATCHED_REASONS_SQL = 'SELECT reason, count(*) AS count FROM unmatched WHERE kind = ? AND value = ? GROUP BY reason ORDER BY reason';

/** The list tables and the column their `kind` filter reads. */
const RECORD_KIND: Readonly<Record<RecordList, string>> = { unmatched: 'kind', audit: 'kind', errors: 'origin' };

/** A page of records, on the list's (time, stream seq) or (reason|kind, time, stream seq) index. */
export function recordsPage(list: RecordList, query: PageQuery<RecordFilter>): Statement {
  const { filter: f } = query;
  const { dir, past } = direction(query.order);
  const where: string[] = [];
  const params: Column[] = [];
  const when = (condition: string, ...values: Column[]) => {
    where.push(condition);
    params.push(...values);
  };
  if (f.reason !== undefined) when('reason = ?', f.reason);
  if (f.kind !== undefined) when(`${RECORD_KIND[list]} = ?`, f.kind);
  if (f.afterMs !== undefined) when('time_ms >= ?', f.afterMs);
  if (f.beforeMs !== undefined) when('time_ms <= ?', f.beforeMs);
  if (query.from !== undefined) when(`(time_ms, stream_seq) ${past} (?, ?)`, query.from.timeMs, query.from.seq);
  params.push(query.limit);
  const conditions = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  return { sql: `SELECT stream_seq, time_ms, body FROM ${list}${conditions} ORDER BY time_ms ${dir}, stream_seq ${dir} LIMIT ?`, params };
}

export const COUNTS_SQL = `SELECT ${['events', 'resolutions', 'unmatched', 'audit', 'errors', 'links'].map((t) => `(SELECT count(*) FROM ${t}) AS ${t}`).join(', ')}`;
export const WATERMARK_SQL = "SELECT seq FROM positions WHERE stream = 'in'";
export const INSTANCE_SQL = 'SELECT id FROM instance';
export const SCHEMA_VERSION_SQL = 'SELECT max(version) AS version FROM schema_migrations';

/** The tables `dump()` gives, each with its primary key (the order of its rows). */
export const DUMP_TABLES: Readonly<Record<string, string>> = {
  positions: 'stream',
  events: 'seq',
  event_ids: 'kind, value, seq',
  resolutions: 'event_seq, user_kind, user_id',
  retractions: 'output_id',
  unmatched: 'output_id',
  audit: 'output_id',
  errors: 'id',
  links: 'kind, value',
  activity_state: 'id',
  activity_people: 'zone, period, idx, person',
  activity_counts: 'zone, period, idx',
  activity_anon: 'id',
  activity_pending: 'seq',
  erasures: 'request',
};

/** A table's dump: every column, but the counts' state without its generation (it only says how often they were deleted). */
export const dumpSql = (table: string): string => `SELECT ${table === 'activity_state' ? 'seq, columns, zones, scalars' : '*'} FROM ${table} ORDER BY ${DUMP_TABLES[table]}`;

/** A dumped row: its JSON body parsed. */
export function dumpRow(row: Record<string, unknown>): Record<string, unknown> {
  return typeof row.body === 'string' ? { ...row, body: JSON.parse(row.body) as unknown } : row;
}

export function storedEvent(row: EventAnswer): StoredEvent {
  return {
    seq: row.seq,
    event: JSON.parse(row.body) as XrefEvent,
    source: row.source,
    timeMs: row.time_ms,
    user: row.user_kind === null || row.user_id === null ? null : { kind: row.user_kind, id: row.user_id },
    via: row.via_kind === null || row.via_value === null ? null : ({ kind: row.via_kind, value: row.via_value } satisfies Identifier),
  };
}

export function storedEvents(rows: readonly unknown[]): StoredEvent[] {
  return (rows as EventAnswer[]).map(storedEvent);
}

export function storedRecords(rows: readonly unknown[]): StoredRecord[] {
  return (rows as Array<{ stream_seq: number; time_ms: number; body: string }>).map((row) => ({
    seq: row.stream_seq,
    timeMs: row.time_ms,
    record: JSON.parse(row.body) as Record<string, unknown>,
  }));
}

export function linkFacts(rows: readonly unknown[]): LinkFacts[] {
  type LinkAnswer = { kind: string; value: string; user_kind: string; user_id: string; event_seq: number; event_id: string; time_ms: number | null };
  return (rows as LinkAnswer[]).map((row) => ({
    identifier: { kind: row.kind, value: row.value },
    user: { kind: row.user_kind, id: row.user_id },
    sinceMs: row.time_ms,
    linkedBy: row.event_id,
    seq: row.event_seq,
  }));
}

export function userEventRows(rows: readonly unknown[]) {
  return (rows as Array<{ seq: number; body: string; via_kind: string; via_value: string }>).map((row) => ({
    seq: row.seq,
    event: JSON.parse(row.body) as XrefEvent,
    via: { kind: row.via_kind, value: row.via_value },
  }));
}
