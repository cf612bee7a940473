/**
 * What a forget and a suppressed event do to the read model (docs/read-model.md, forgetting a
 * user), as write scripts both adapters run inside the audit batch's transaction, after its rows:
 * statements each run once per row of values, some counting what they delete, some counting what
 * is left, and a last one writing the receipt. The same SQL on both databases but for one function
 * name; `?` placeholders (PostgreSQL's adapter numbers them).
 */
import { idKey } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import type { Dialect } from './migrations.ts';
import type { Value } from './read-model-sql.ts';
import type { ForgetRow, ProjectionBatch, ReadModelReceipt, SuppressedRow } from './read-model.ts';

/** One statement, run once per row of values. */
export interface ScriptStep {
  readonly sql: string;
  readonly rows: ReadonlyArray<readonly Value[]>;
  /** The rows it deletes count in the receipt for this table. */
  readonly deleted?: string;
  /** A count (one value): it adds to the receipt's `remaining`. */
  readonly remaining?: true;
}

/** Statements run in order in the batch's transaction (sqlite-writes.mjs `script`, PostgresStore). */
export interface WriteScript {
  /** Nothing is run when this query finds a row (the request was applied already). */
  readonly unless?: { readonly sql: string; readonly params: readonly Value[] };
  /** The tables the receipt names, each 0 unless a step deletes from it. */
  readonly tables: readonly string[];
  readonly steps: readonly ScriptStep[];
  /** Run last with `params`, then the receipt's `deleted` (JSON) and `remaining`. */
  readonly receipt?: { readonly sql: string; readonly params: readonly Value[] };
}

/** What a receipt counts, per table, in this order. */
export const FORGET_TABLES = ['events', 'event_ids', 'resolutions', 'retractions', 'unmatched', 'audit', 'links', 'activity_people', 'activity_anon', 'activity_pending'] as const;

/** Keys per `IN (…)` list: far below either database's limit of parameters. */
const KEYS_PER_STATEMENT = 500;

/** Text found inside a body: SQLite's instr, PostgreSQL's strpos (both exact, unlike SQLite's LIKE). */
const contains = (dialect: Dialect, needle: string) => `${dialect === 'sqlite' ? 'instr' : 'strpos'}(body, ${needle}) > 0`;

const USER_EVENTS = 'SELECT event_seq FROM resolutions WHERE user_kind = ? AND user_id = ?';
/** The events carrying an identifier that are resolved to no one (buffered or unmatched): `[kind, value]`. */
const UNRESOLVED_CARRYING = 'SELECT i.seq FROM event_ids i WHERE i.kind = ? AND i.value = ? AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.event_seq = i.seq)';
/**
 * The identifier rows of events carrying an identifier that are resolved to no user but the
 * forgotten one: `[kind, value, user kind, user id]` (an event of another user carrying a
 * forgotten id stays: it is that user's).
 */
const OWN_CARRYING =
  'SELECT count(*) AS n FROM event_ids i WHERE i.kind = ? AND i.value = ? AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.event_seq = i.seq AND NOT (r.user_kind = ? AND r.user_id = ?))';

export const ERASURE_SQL = 'SELECT request, deleted, remaining, at FROM erasures WHERE request = ?';
const RECEIPT_SQL = 'INSERT INTO erasures (request, stream_seq, at, deleted, remaining) VALUES (?, ?, ?, ?, ?)';

/** The person key the active-people counter gives a user (activity-counter.ts). */
const personOf = (user: UserRef) => `user:${user.kind}:${user.id}`;

/** `IN (?, …)` lists over the keys, as rows of a step that takes each list once (`times` over: `id IN (…) OR parent IN (…)`). */
function keyChunks(keys: readonly string[], times: number): { placeholders: number[]; rows: Value[][] } {
  const placeholders: number[] = [];
  const rows: Value[][] = [];
  for (let at = 0; at < keys.length; at += KEYS_PER_STATEMENT) {
    const chunk = keys.slice(at, at + KEYS_PER_STATEMENT);
    placeholders.push(chunk.length);
    rows.push(Array.from({ length: times }, () => chunk).flat());
  }
  return { placeholders, rows };
}

const list = (n: number) => `(${Array.from({ length: n }, () => '?').join(', ')})`;

/** Steps over `IN (…)` lists of keys (one statement per list length). */
function keySteps(keys: readonly string[], where: (list: string) => string, table: string, count: boolean, times: number): ScriptStep[] {
  const { placeholders, rows } = keyChunks(keys, times);
  return placeholders.map((n, i) =>
    count ? { sql: `SELECT count(*) AS n FROM ${table} WHERE ${where(list(n))}`, rows: [rows[i]!], remaining: true } : { sql: `DELETE FROM ${table} WHERE ${where(list(n))}`, rows: [rows[i]!], deleted: table },
  );
}

/**
 * A forget: the user's events and resolutions (events resolved to the user, with every
 * resolution and identifier row of theirs), what unlinks took back from the user, the events carrying one of the cluster's identifiers
 * that are resolved to no one (buffered, unmatched) and their unmatched rows, the links and audit
 * rows naming the user or one of the identifiers (a relink's `previous`, a conflict's `claimedBy`
 * too), the user's and the identifiers' per-person activity rows; the counts stay (the counter
 * loads them again: one generation on). Then the user's rows are counted again, and the receipt
 * written. Applied once per request.
 */
export function forgetScript(row: ForgetRow, dialect: Dialect): WriteScript {
  const steps: ScriptStep[] = [];
  const counts: ScriptStep[] = [];
  const user = row.user;
  if (user !== undefined) {
    const u = [user.kind, user.id];
    const named = [`"previous":${JSON.stringify({ kind: user.kind, id: user.id })}`, `"claimedBy":${JSON.stringify({ kind: user.kind, id: user.id })}`];
    const auditOfUser = `(user_kind = ? AND user_id = ?) OR (reason IN ('relink', 'conflict') AND (${contains(dialect, '?')} OR ${contains(dialect, '?')}))`;
    steps.push(
      { sql: `DELETE FROM event_ids WHERE seq IN (${USER_EVENTS})`, rows: [u], deleted: 'event_ids' },
      { sql: `DELETE FROM events WHERE seq IN (${USER_EVENTS})`, rows: [u], deleted: 'events' },
      { sql: `DELETE FROM unmatched WHERE event_seq IN (${USER_EVENTS})`, rows: [u], deleted: 'unmatched' },
      // what unlinks took back from the user (the engine purges the user's subject, which holds them)
      { sql: 'DELETE FROM retractions WHERE user_kind = ? AND user_id = ?', rows: [u], deleted: 'retractions' },
      // every resolution of those events (an event resolved to two users is gone from the log)
      { sql: `DELETE FROM resolutions WHERE event_seq IN (${USER_EVENTS})`, rows: [u], deleted: 'resolutions' },
      { sql: 'DELETE FROM links WHERE user_kind = ? AND user_id = ?', rows: [u], deleted: 'links' },
      { sql: `DELETE FROM audit WHERE ${auditOfUser}`, rows: [[...u, ...named]], deleted: 'audit' },
      { sql: 'DELETE FROM activity_people WHERE person = ?', rows: [[personOf(user)]], deleted: 'activity_people' },
    );
    counts.push(
      { sql: 'SELECT count(*) AS n FROM resolutions WHERE user_kind = ? AND user_id = ?', rows: [u], remaining: true },
      { sql: 'SELECT count(*) AS n FROM retractions WHERE user_kind = ? AND user_id = ?', rows: [u], remaining: true },
      { sql: 'SELECT count(*) AS n FROM links WHERE user_kind = ? AND user_id = ?', rows: [u], remaining: true },
      { sql: `SELECT count(*) AS n FROM audit WHERE ${auditOfUser}`, rows: [[...u, ...named]], remaining: true },
      { sql: 'SELECT count(*) AS n FROM activity_people WHERE person = ?', rows: [[personOf(user)]], remaining: true },
    );
  }
  const ids = row.identifiers.map((id): Value[] => [id.kind, id.value]);
  if (ids.length > 0) {
    steps.push(
      { sql: `DELETE FROM unmatched WHERE event_seq IN (${UNRESOLVED_CARRYING})`, rows: ids, deleted: 'unmatched' },
      { sql: `DELETE FROM events WHERE seq IN (${UNRESOLVED_CARRYING})`, rows: ids, deleted: 'events' },
      { sql: `DELETE FROM event_ids WHERE seq IN (${UNRESOLVED_CARRYING})`, rows: ids, deleted: 'event_ids' },
      // an unmatched record of an event not stored (its id a duplicate) has no identifier rows
      { sql: 'DELETE FROM unmatched WHERE kind = ? AND value = ?', rows: ids, deleted: 'unmatched' },
      { sql: 'DELETE FROM links WHERE kind = ? AND value = ?', rows: ids, deleted: 'links' },
      { sql: 'DELETE FROM audit WHERE kind = ? AND value = ?', rows: ids, deleted: 'audit' },
    );
    const other = user === undefined ? ['', ''] : [user.kind, user.id];
    counts.push(
      { sql: OWN_CARRYING, rows: ids.map((id) => [...id, ...other]), remaining: true },
      { sql: 'SELECT count(*) AS n FROM unmatched WHERE kind = ? AND value = ?', rows: ids, remaining: true },
      { sql: 'SELECT count(*) AS n FROM links WHERE kind = ? AND value = ?', rows: ids, remaining: true },
      { sql: 'SELECT count(*) AS n FROM audit WHERE kind = ? AND value = ?', rows: ids, remaining: true },
    );
    // the counter's anonymous people, union-find and pending events keyed by the identifiers
    const keys = row.identifiers.map((id) => idKey(id.kind, id.value));
    const people = keys.map((key) => `anon:${key}`);
    for (const count of [false, true]) {
      const target = count ? counts : steps;
      target.push(
        ...keySteps(people, (l) => `person IN ${l}`, 'activity_people', count, 1),
        ...keySteps(keys, (l) => `id IN ${l} OR parent IN ${l}`, 'activity_anon', count, 2),
        ...keySteps(keys, (l) => `anchor IN ${l}`, 'activity_pending', count, 1),
      );
    }
  }
  // the counter's memory may hold what was deleted: its next write is refused and it loads the counts again
  steps.push({ sql: 'UPDATE activity_state SET generation = generation + 1 WHERE id = 1', rows: [[]] });
  return {
    unless: { sql: 'SELECT 1 AS n FROM erasures WHERE request = ?', params: [row.request] },
    tables: FORGET_TABLES,
    steps: [...steps, ...counts],
    receipt: { sql: RECEIPT_SQL, params: [row.request, row.streamSeq, row.at] },
  };
}

/** A suppressed event: deleted, with its identifier rows, should the projection have read it before the engine erased it. */
export function suppressedScript(row: SuppressedRow): WriteScript {
  return {
    tables: [],
    steps: [
      { sql: 'DELETE FROM event_ids WHERE seq = ? AND EXISTS (SELECT 1 FROM events WHERE seq = ? AND id = ?)', rows: [[row.seq, row.seq, row.eventId]] },
      { sql: 'DELETE FROM events WHERE seq = ? AND id = ?', rows: [[row.seq, row.eventId]] },
    ],
  };
}

/** A batch's scripts, in the order they are run, after its rows: its forgets, then its suppressed events. */
export function batchScripts(batch: ProjectionBatch, dialect: Dialect): WriteScript[] {
  return [...(batch.forgets ?? []).map((row) => forgetScript(row, dialect)), ...(batch.suppressed ?? []).map(suppressedScript)];
}

/** The receipt's row as the port gives it. */
export function receiptOf(row: { request: string; deleted: string; remaining: number; at: string } | undefined): ReadModelReceipt | undefined {
  if (row === undefined) return undefined;
  return { request: row.request, deleted: JSON.parse(row.deleted) as Record<string, number>, remaining: row.remaining, at: row.at };
}

/** The distinct users of a kind (a user whose every resolution was retracted among them): `[kind, kind, kind]`. */
export const USER_IDS_SQL = 'SELECT user_id FROM resolutions WHERE user_kind = ? UNION SELECT user_id FROM links WHERE user_kind = ? UNION SELECT user_id FROM retractions WHERE user_kind = ?';
/** A user's linked identifiers and those its events carry: `[kind, id, kind, id]`. */
export const USER_IDENTIFIERS_SQL =
  'SELECT kind, value FROM links WHERE user_kind = ? AND user_id = ? UNION SELECT i.kind, i.value FROM resolutions r CROSS JOIN event_ids i WHERE r.user_kind = ? AND r.user_id = ? AND i.seq = r.event_seq';
