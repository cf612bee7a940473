/**
 * The read model on PostgreSQL (pg.Pool), for scale. A batch is one transaction on one client,
 * each table written by one statement over the whole of its rows (a COPY of new rows,
 * postgres-copy.ts; `INSERT … SELECT … FROM json_to_recordset($1)` when some are there already),
 * so a batch of thousands of rows costs a few round trips. int8 comes back as a number (a per-pool type
 * parser: sequences and epoch ms stay far below 2^53). Every statement is named, so each
 * connection parses and plans it once. Failures are XREF_DATABASE saying what was being done,
 * never with the URL's password.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { XrefError, isXrefError } from '../domain/errors.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import { ERASURE_SQL, USER_IDENTIFIERS_SQL, USER_IDS_SQL, type WriteScript, batchScripts, receiptOf } from './forget-sql.ts';
import { LINKED_VALUES_SQL, RETRACTED_BY_USER_SQL, retractedResolutions, retractionScripts, unlinkScripts } from './retraction-sql.ts';
import { type MigrationTransaction, runMigrations } from './migrations.ts';
import { type PostgresAccess, PostgresActivity } from './postgres-activity.ts';
import { copyRows, isUniqueViolation, pgText } from './postgres-copy.ts';
import {
  BUFFERED_EVENTS_SQL,
  BUFFERED_SUMMARY_SQL,
  CLAIM_OWNER_SQL,
  CLAIM_SQL,
  COLUMNS,
  INT_COLUMNS,
  COUNTS_SQL,
  DUMP_TABLES,
  IDENTIFIER_LINK_SQL,
  INSTANCE_SQL,
  POSITIONS_SQL,
  RELEASE_SQL,
  SCHEMA_VERSION_SQL,
  STREAM_RESETS,
  type Statement,
  type Value,
  UNMATCHED_REASONS_SQL,
  USER_EVENTS_SQL,
  USER_LINKS_SQL,
  USER_TOTAL_SQL,
  WATERMARK_SQL,
  type WrittenTable,
  auditValues,
  conflictClause,
  dumpRow,
  dumpSql,
  errorValues,
  eventIdValues,
  eventByIdSql,
  eventValues,
  eventsInOrder,
  eventsPage,
  fencedError,
  latestPositions,
  linkFacts,
  linkValues,
  positionValues,
  recordsPage,
  resolutionValues,
  storedEvents,
  storedRecords,
  unmatchedValues,
  userEventRows,
} from './read-model-sql.ts';
import type {
  EventFilter,
  IdentifierFacts,
  LinkFacts,
  PageQuery,
  ProjectedStream,
  ProjectionBatch,
  ReadModelReceipt,
  ReadModelStore,
  RecordFilter,
  RecordList,
  RetractedResolution,
  StoredEvent,
  StoredRecord,
  StreamPosition,
  UserEvents,
} from './read-model.ts';

type Queryable = pg.Pool | pg.PoolClient;

const INT8_OID = 20;
/** Any constant: the lock that keeps two processes from migrating one database at once. */
const MIGRATION_LOCK = 7_324_001;

/** The URL with its password masked, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
  }
}

/** `?` placeholders numbered `$1…`, as PostgreSQL takes them (the shared SQL holds no other `?`). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Rows as the JSON array of objects `json_to_recordset` reads: one parameter for a whole table,
 * serialized natively (far cheaper than pg's array literals). A body goes in as a JSON string of
 * its JSON text: PostgreSQL's json input refuses a lone surrogate's escape, which a record may
 * hold (`"\ud800"` from a client), but takes that escape inside a string.
 */
function recordset(table: WrittenTable, rows: readonly Value[][]): string {
  const columns = COLUMNS[table];
  return JSON.stringify(
    rows.map((row) => {
      const record: Record<string, Value> = {};
      columns.forEach((column, i) => {
        const value = row[i] ?? null;
        record[column] = typeof value === 'string' && column !== 'body' ? pgText(value) : value;
      });
      return record;
    }),
  );
}

/** `json_to_recordset($n::json) AS x (column type, …)` for a table's columns. */
const fromRecordset = (table: WrittenTable, n: number): string =>
  `json_to_recordset($${n}::json) AS x (${COLUMNS[table].map((column) => `${column} ${INT_COLUMNS.has(column) ? 'bigint' : 'text'}`).join(', ')})`;

const bulkInsertSql = (table: WrittenTable): string =>
  `INSERT INTO ${table} (${COLUMNS[table].join(', ')}) SELECT ${COLUMNS[table].map((c) => `x.${c}`).join(', ')} FROM ${fromRecordset(table, 1)} ${conflictClause(table)}`;

/**
 * Events and their identifiers in one statement: the identifiers of the events this statement
 * stored (an event whose id is there already is not stored again, nor its identifiers).
 */
const EVENTS_SQL =
  `WITH stored AS (INSERT INTO events (${COLUMNS.events.join(', ')}) SELECT ${COLUMNS.events.map((c) => `x.${c}`).join(', ')} FROM ${fromRecordset('events', 1)} ON CONFLICT DO NOTHING RETURNING seq) ` +
  `INSERT INTO event_ids (kind, value, seq) SELECT x.kind, x.value, x.seq FROM ${fromRecordset('event_ids', 2)} WHERE x.seq IN (SELECT seq FROM stored) ON CONFLICT DO NOTHING`;

/** A batch's rows, per table, as its columns take them. */
type BatchRows = Record<WrittenTable, Value[][]>;
/** The tables whose rows are only ever added (DO NOTHING on a key there already): written by COPY. */
const COPIED = ['events', 'event_ids', 'resolutions', 'unmatched', 'audit', 'errors'] as const satisfies readonly WrittenTable[];

/** A transaction's reads all see one state of the database (its first statement). */
const ONE_SNAPSHOT = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY';

/** Query values compared with key columns as the keys were written (pgText). */
const textValues = (params: readonly unknown[]): unknown[] => params.map((v) => (typeof v === 'string' ? pgText(v) : v));

export class PostgresStore implements ReadModelStore {
  readonly dialect = 'postgres' as const;
  readonly activity: PostgresActivity = new PostgresActivity(this.activityAccess());
  private readonly pool: pg.Pool;
  /** Statement names by text: each named statement is prepared once per connection. */
  private readonly names = new Map<string, string>();
  readonly url: string;

  constructor(
    url: string,
    private readonly logger?: Logger,
    options: { readonly max?: number } = {},
  ) {
    this.url = url;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.max ?? 10,
      application_name: 'xref',
      connectionTimeoutMillis: 10_000,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID && format !== 'binary' ? (text: string) => Number(text) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // an idle client's connection broke (server restart): the pool drops it and makes another
    this.pool.on('error', (error) => this.logger?.warn({ err: this.redact(error.message) }, 'read model connection lost'));
  }

  async migrate(): Promise<void> {
    const applied = await this.guard('migrating the PostgreSQL read model', () =>
      runMigrations({
        dialect: 'postgres',
        exec: (sql) => this.inTransaction(async (client) => void (await this.locked(client).exec(sql))),
        transaction: (work) => this.inTransaction((client) => work(this.locked(client))),
      }),
    );
    if (applied.length > 0) this.logger?.info({ applied }, 'read model migrated');
  }

  async schemaVersion(): Promise<number> {
    const exists = await this.rows<{ name: string | null }>("SELECT to_regclass('schema_migrations')::text AS name", [], 'reading the schema version');
    if (exists[0]?.name == null) return 0;
    const [row] = await this.rows<{ version: number | null }>(SCHEMA_VERSION_SQL, [], 'reading the schema version');
    return row?.version ?? 0;
  }

  async instanceId(): Promise<string> {
    const [row] = await this.rows<{ id: string }>(INSTANCE_SQL, [], "reading the read model's instance id");
    return row?.id ?? '';
  }

  async claim(owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const result = await this.guard('claiming the read model', () => this.run(this.pool, CLAIM_SQL, [owner, now + ttlMs, owner, now]));
    return result.rowCount === 1;
  }

  async release(owner: string): Promise<void> {
    await this.guard('releasing the read model', () => this.run(this.pool, RELEASE_SQL, [owner]));
  }

  async positions(): Promise<ReadonlyMap<ProjectedStream, StreamPosition>> {
    const rows = await this.rows<StreamPosition>(POSITIONS_SQL, [], 'reading the projection positions');
    return new Map(rows.map((row) => [row.stream, { stream: row.stream, seq: row.seq, created: row.created }]));
  }

  async apply(batch: ProjectionBatch, owner: string): Promise<boolean> {
    const what = 'applying a projection batch';
    return this.guard(what, async () => {
      const events = eventsInOrder(batch.events);
      const retractions = retractionScripts(batch);
      const rows: BatchRows = {
        events: events.map(eventValues),
        event_ids: events.flatMap(eventIdValues),
        resolutions: retractions.resolutions.map(resolutionValues),
        unmatched: batch.unmatched.map(unmatchedValues),
        audit: batch.audit.map(auditValues),
        errors: batch.errors.map(errorValues),
        links: linkValues(batch.audit, batch.unlinks),
        positions: latestPositions(batch.positions).map(positionValues),
      };
      const scripts = { before: retractions.scripts, unlinks: unlinkScripts(batch), after: batchScripts(batch, 'postgres') };
      try {
        await this.write(rows, scripts, 'copy', what, owner);
        return true;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // a row there already (a batch written again, an event id seen before): the batch again,
        // written row by row past the ones stored (which ones, it does not tell)
        await this.write(rows, scripts, 'insert', what, owner);
        return false;
      }
    });
  }

  async resetStreams(streams: readonly ProjectedStream[], owner: string): Promise<void> {
    const what = `resetting the read model's ${streams.join(', ')} rows`;
    await this.guard(what, () =>
      this.inTransaction(async (client) => {
        await this.fence(client, what, owner);
        const unique = [...new Set(streams)];
        for (const sql of new Set(unique.flatMap((stream) => STREAM_RESETS[stream]))) await client.query(sql);
        await this.run(client, 'DELETE FROM positions WHERE stream = ANY($1::text[])', [unique]);
      }),
    );
  }

  async userIds(kind: string): Promise<string[]> {
    return (await this.rows<{ user_id: string }>(USER_IDS_SQL, [kind, kind, kind], 'reading the users of a kind')).map((row) => row.user_id);
  }

  async userIdentifiers(user: UserRef): Promise<Identifier[]> {
    return this.rows<Identifier>(USER_IDENTIFIERS_SQL, [user.kind, user.id, user.kind, user.id], "reading a user's identifiers");
  }

  async linkedValues(kind: string): Promise<string[]> {
    return (await this.rows<{ value: string }>(LINKED_VALUES_SQL, [kind], 'reading the linked identifiers of a kind')).map((row) => row.value);
  }

  async retracted(user: UserRef): Promise<RetractedResolution[]> {
    return retractedResolutions(await this.rows(RETRACTED_BY_USER_SQL, [user.kind, user.id], 'reading what unlinks took back from a user'));
  }

  async erasure(request: string): Promise<ReadModelReceipt | undefined> {
    const [row] = await this.rows<Parameters<typeof receiptOf>[0] & object>(ERASURE_SQL, [request], "reading a forget's receipt");
    return receiptOf(row);
  }

  async watermark(): Promise<number> {
    const [row] = await this.rows<{ seq: number }>(WATERMARK_SQL, [], 'reading the watermark');
    return row?.seq ?? 0;
  }

  async events(query: PageQuery<EventFilter>): Promise<StoredEvent[]> {
    return storedEvents(await this.select(eventsPage(query, 'postgres'), 'querying events'));
  }

  async event(id: string): Promise<StoredEvent | undefined> {
    return storedEvents(await this.rows(eventByIdSql('postgres'), [id], 'reading an event'))[0];
  }

  async userEvents(user: UserRef, limit: number): Promise<UserEvents> {
    const what = "reading a user's events";
    const events = userEventRows(await this.rows(USER_EVENTS_SQL, [user.kind, user.id, limit], what));
    // fewer than asked: they are all there are (counting them again would read every one twice)
    if (events.length < limit) return { total: events.length, events };
    const [total] = await this.rows<{ count: number }>(USER_TOTAL_SQL, [user.kind, user.id], what);
    return { total: total?.count ?? 0, events };
  }

  async userLinks(user: UserRef): Promise<LinkFacts[]> {
    return linkFacts(await this.rows(USER_LINKS_SQL, [user.kind, user.id], "reading a user's links"));
  }

  async identifier(identifier: Identifier, limit: number): Promise<IdentifierFacts> {
    const what = 'reading an identifier';
    const { kind, value } = identifier;
    const [links, summary, events, unmatched] = await Promise.all([
      this.rows(IDENTIFIER_LINK_SQL, [kind, value], what),
      this.rows<{ count: number; oldest_ms: number | null }>(BUFFERED_SUMMARY_SQL, [kind, value], what),
      this.rows(BUFFERED_EVENTS_SQL, [kind, value, limit], what),
      this.rows<{ reason: string; count: number }>(UNMATCHED_REASONS_SQL, [kind, value], what),
    ]);
    const [link] = linkFacts(links);
    const buffered = { count: summary[0]?.count ?? 0, oldestMs: summary[0]?.oldest_ms ?? null, events: storedEvents(events) };
    return { ...(link === undefined ? {} : { link }), buffered, unmatched: unmatched.map((row) => ({ reason: row.reason, count: row.count })) };
  }

  async records(list: RecordList, query: PageQuery<RecordFilter>): Promise<StoredRecord[]> {
    return storedRecords(await this.select(recordsPage(list, query), `querying ${list} records`));
  }

  async counts() {
    const [row] = await this.rows<Record<'events' | 'resolutions' | 'unmatched' | 'audit' | 'errors' | 'links', number>>(COUNTS_SQL, [], 'counting rows');
    return row as Record<'events' | 'resolutions' | 'unmatched' | 'audit' | 'errors' | 'links', number>;
  }

  async dump(): Promise<Readonly<Record<string, readonly unknown[]>>> {
    return this.guard('dumping the read model', () =>
      this.inTransaction(async (client) => {
        await client.query(ONE_SNAPSHOT);
        const dump: Record<string, unknown[]> = {};
        for (const table of Object.keys(DUMP_TABLES)) dump[table] = (await client.query<Record<string, unknown>>(dumpSql(table))).rows.map(dumpRow);
        return dump;
      }),
    );
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  /** The plan PostgreSQL picks for a statement (for tests and benchmarks). */
  async plan(statement: Statement, analyze = false): Promise<string[]> {
    const rows = await this.rows<{ 'QUERY PLAN': string }>(`EXPLAIN ${analyze ? '(ANALYZE, BUFFERS) ' : ''}${statement.sql}`, statement.params, 'explaining a query', false);
    return rows.map((row) => row['QUERY PLAN']);
  }

  // --- plumbing ---------------------------------------------------------------------------------

  /** What the active-people counts (postgres-activity.ts) use of this store. */
  private activityAccess(): PostgresAccess {
    return {
      rows: (sql, params) => this.rows(sql, params, 'reading the active-people counts'),
      snapshot: (read) =>
        this.guard('reading the active-people counts', () =>
          this.inTransaction(async (client) => {
            await client.query(ONE_SNAPSHOT);
            return read(
              async (sql, params) => (await this.run(client, sql, textValues(params))).rows,
              async (sql, params) => (await this.run(client, sql, textValues(params), true, 'array')).rows,
            );
          }),
        ),
      write: (what, owner, work) =>
        this.guard(what, () =>
          this.inTransaction(async (client) => {
            await this.fence(client, what, owner);
            return work(async (sql, values) => (await this.run(client, sql, values)).rows);
          }),
        ),
      text: pgText,
    };
  }

  /** A migration transaction, once this client holds the migration lock. */
  private locked(client: pg.PoolClient): MigrationTransaction {
    let lock: Promise<unknown> | undefined;
    const take = () => (lock ??= client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]));
    return {
      exec: async (sql) => {
        await take();
        await client.query(sql);
      },
      versions: async () => {
        await take();
        const result = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
        return result.rows.map((row) => row.version);
      },
    };
  }

  private async fence(client: pg.PoolClient, what: string, owner: string): Promise<void> {
    // FOR UPDATE: a claim taken meanwhile waits for this batch, or this batch sees it. A batch
    // checks it last, right before its commit, so the row is locked only that long: the streams'
    // batches are written side by side and the claim's renewal waits at most for one commit
    // (FOR SHARE held through a batch would let a stream of them keep the renewal waiting)
    const result = await this.run(client, `${CLAIM_OWNER_SQL} FOR UPDATE`, []);
    if ((result.rows[0] as { owner: string | null } | undefined)?.owner !== owner) throw fencedError(what, owner);
  }

  /**
   * One batch in one transaction. `copy`: the keyed rows (events and their identifiers,
   * resolutions, records) by COPY straight into their tables, the cheapest way in, refused as a
   * whole (unique_violation) if one of them is there already; `insert`: by INSERT … ON CONFLICT DO
   * NOTHING, keeping the stored ones (events: the identifiers of those stored only). Links and
   * positions are upserts either way.
   */
  private write(rows: BatchRows, scripts: Readonly<Record<'before' | 'unlinks' | 'after', readonly WriteScript[]>>, how: 'copy' | 'insert', what: string, owner: string): Promise<void> {
    return this.inTransaction(async (client) => {
      // retractions first: a resolution they take back makes room for the same event and user placed again in this batch
      for (const script of scripts.before) await this.script(client, script);
      if (how === 'copy') {
        for (const table of COPIED) await copyRows(client, table, rows[table]);
      } else {
        if (rows.events.length > 0) await this.run(client, EVENTS_SQL, [recordset('events', rows.events), recordset('event_ids', rows.event_ids)]);
        for (const table of COPIED) if (table !== 'events' && table !== 'event_ids') await this.bulk(client, table, rows[table]);
      }
      // unlinks end the stored links before the batch's later ones are written
      for (const script of scripts.unlinks) await this.script(client, script);
      await this.bulk(client, 'links', rows.links);
      // forgets and suppressed events, after the rows: rows of this batch are erased too
      for (const script of scripts.after) await this.script(client, script);
      await this.bulk(client, 'positions', rows.positions);
      // last, right before the commit: the claim's row is locked only that long (see fence)
      await this.fence(client, what, owner);
    });
  }

  /** A write script (forget-sql.ts), as sqlite-writes.mjs runs it; unnamed statements (some differ in their number of keys). */
  private async script(client: pg.PoolClient, { unless, tables, steps, receipt }: WriteScript): Promise<void> {
    if (unless !== undefined && (await this.run(client, unless.sql, textValues(unless.params), false)).rows.length > 0) return;
    const deleted: Record<string, number> = Object.fromEntries(tables.map((table) => [table, 0]));
    let remaining = 0;
    for (const step of steps) {
      for (const values of step.rows) {
        const result = await this.run(client, step.sql, textValues(values), false);
        if (step.remaining) remaining += Number((result.rows[0] as { n: number }).n);
        else if (step.deleted !== undefined) deleted[step.deleted]! += result.rowCount ?? 0;
      }
    }
    if (receipt !== undefined) await this.run(client, receipt.sql, [...textValues(receipt.params), JSON.stringify(deleted), remaining], false);
  }

  private async bulk(client: pg.PoolClient, table: WrittenTable, rows: Value[][]): Promise<void> {
    if (rows.length > 0) await this.run(client, bulkInsertSql(table), [recordset(table, rows)]);
  }

  /**
   * `work` in one transaction on one client: committed when it resolves, rolled back when it
   * throws. The commit does not wait for the WAL to reach the disk (`synchronous_commit = off`):
   * a server crash may lose the last transactions, but each holds its rows and its stream's
   * position together, so the projection then reads those messages again; nothing is lost.
   */
  private async inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: unknown;
    try {
      // one round trip for both: each one a batch waits for is a turn of a busy event loop
      await client.query('BEGIN; SET LOCAL synchronous_commit = off');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollback: unknown) => (broken = rollback));
      throw error;
    } finally {
      // a client whose rollback failed is in no known state: the pool drops it
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  /** A named statement (`?` placeholders numbered), prepared once per connection. */
  private run(on: Queryable, sql: string, values: readonly unknown[], named = true, rowMode?: 'array'): Promise<pg.QueryResult> {
    const text = numbered(sql);
    let name = this.names.get(text);
    if (name === undefined && named) {
      name = `xref_${this.names.size + 1}`;
      this.names.set(text, name);
    }
    return on.query({ ...(named ? { name } : {}), text, values: [...values], ...(rowMode === undefined ? {} : { rowMode }) });
  }

  /** A read: its values compared with key columns as the keys were written (pgText). */
  private async rows<R>(sql: string, params: readonly unknown[], what: string, named = true): Promise<R[]> {
    const result = await this.guard(what, () => this.run(this.pool, sql, textValues(params), named));
    return result.rows as R[];
  }

  private select(statement: Statement, what: string): Promise<unknown[]> {
    return this.rows(statement.sql, statement.params, what);
  }

  private async guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isXrefError(error)) throw error;
      const reason = reasonOf(error);
      throw new XrefError('XREF_DATABASE', `${what}: ${this.redact(reason)}`, { cause: error });
    }
  }

  /** A message with the URL's password, should a driver ever quote it, masked. */
  private redact(message: string): string {
    let password = '';
    try {
      password = decodeURIComponent(new URL(this.url).password);
    } catch {
      // not a URL the WHATWG parser reads: pg would not have connected with it either
    }
    return password.length > 0 ? message.replaceAll(password, '***') : message;
  }
}

/** A driver error's reason: a refused connection is an AggregateError of one error per address, with no message of its own. */
function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') return error.errors.map(reasonOf).join('; ');
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}
