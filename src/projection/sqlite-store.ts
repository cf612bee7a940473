/**
 * The embedded read model: SQLite through better-sqlite3, a file under XREF_DATA_DIR (or `:memory:`).
 * WAL, so the queries read while the projection writes; `synchronous = NORMAL`, safe with WAL
 * (a power cut may lose the last transactions, never corrupt: the projection reads them again from
 * the positions it finds). Statements are prepared once; each batch is one IMMEDIATE transaction
 * (the write lock taken first, so two processes never both read the claim and then write).
 */
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { XrefError, isXrefError } from '../domain/errors.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import { ERASURE_SQL, USER_IDENTIFIERS_SQL, USER_IDS_SQL, receiptOf } from './forget-sql.ts';
import { LINKED_VALUES_SQL, RETRACTED_BY_USER_SQL, retractedResolutions } from './retraction-sql.ts';
import { type MigrationTarget, runMigrations } from './migrations.ts';
import { type SqliteAccess, SqliteActivity } from './sqlite-activity.ts';
import { SqliteWriter, applyRequest, resetRequest, writeSpec } from './sqlite-writer.ts';
import { Fenced, sqliteWrites } from './sqlite-writes.mjs';
import {
  BUFFERED_EVENTS_SQL,
  BUFFERED_SUMMARY_SQL,
  COUNTS_SQL,
  DUMP_TABLES,
  IDENTIFIER_LINK_SQL,
  INSTANCE_SQL,
  POSITIONS_SQL,
  SCHEMA_VERSION_SQL,
  type Statement,
  UNMATCHED_REASONS_SQL,
  USER_EVENTS_SQL,
  USER_LINKS_SQL,
  USER_TOTAL_SQL,
  WATERMARK_SQL,
  dumpRow,
  dumpSql,
  eventByIdSql,
  eventsPage,
  fencedError,
  linkFacts,
  recordsPage,
  storedEvents,
  storedRecords,
  userEventRows,
} from './read-model-sql.ts';
import type {
  EventFilter,
  IdentifierFacts,
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
  LinkFacts,
} from './read-model.ts';

type Db = Database.Database;

/** How often, at most, apply() refreshes the planner's statistics. */
const OPTIMIZE_EVERY_MS = 5 * 60_000;
type Prepared = Database.Statement<unknown[]>;

/** Each connection's settings. */
const PRAGMAS = [
  'journal_mode = WAL',
  'synchronous = NORMAL',
  'busy_timeout = 10000',
  'cache_size = -65536',
  'temp_store = MEMORY',
  // checkpoint every 128 MB of WAL rather than 4 MB: a page the batches keep changing (an
  // index's) is copied into the file once per checkpoint, not once per batch; the WAL file
  // is then cut back to 64 MB
  'wal_autocheckpoint = 32768',
  'journal_size_limit = 67108864',
  // ANALYZE, when PRAGMA optimize runs one, reads a sample of each index, not the whole table
  'analysis_limit = 1000',
];

export class SqliteStore implements ReadModelStore {
  readonly dialect = 'sqlite' as const;
  readonly activity: SqliteActivity = new SqliteActivity(this.activityAccess());
  private readonly db: Db;
  /** The writer thread (a file's). */
  private thread: SqliteWriter | undefined;
  /** Read statements by their text: the page queries have a few shapes, each prepared once. */
  private readonly reads = new Map<string, Prepared>();
  private readonly rawReads = new Map<string, Prepared>();
  /** The writes of a database in memory, on this thread (a file's go to its writer thread). */
  private inline: ReturnType<typeof sqliteWrites> | undefined;
  private optimizedAt = 0;

  get url(): string {
    return `sqlite:${this.path === '' ? ':memory:' : this.path}`;
  }

  /** `path`: a file (made when missing; its directory must exist) or `:memory:`. */
  constructor(
    readonly path: string,
    private readonly logger?: Logger,
  ) {
    this.db = guard(`opening the SQLite read model ${path}`, () => new Database(path));
    guard(`setting up the SQLite read model ${path}`, () => {
      for (const pragma of PRAGMAS) this.db.pragma(pragma);
    });
  }

  async migrate(): Promise<void> {
    const target = sqliteMigrationTarget(this.db);
    const applied = await guardAsync('migrating the SQLite read model', () => runMigrations(target));
    if (applied.length > 0) this.logger?.info({ applied }, 'read model migrated');
    await this.optimize(undefined, 'optimize=0x10002');
  }

  async schemaVersion(): Promise<number> {
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
    return exists === undefined ? 0 : ((this.read(SCHEMA_VERSION_SQL).pluck().get() as number | null) ?? 0);
  }

  async instanceId(): Promise<string> {
    return this.read(INSTANCE_SQL).pluck().get() as string;
  }

  // the claim is taken, renewed and released on the write connection, after the writes asked before
  async claim(owner: string, ttlMs: number): Promise<boolean> {
    const writer = this.writer();
    if (writer !== undefined) return writer.claim(owner, ttlMs);
    let held = false;
    this.writeInline('claiming the read model', owner, (writes) => (held = writes.claim({ owner, ttlMs })));
    return held;
  }

  async release(owner: string): Promise<void> {
    const writer = this.writer();
    if (writer !== undefined) return writer.release(owner);
    this.writeInline('releasing the read model', owner, (writes) => writes.release({ owner }));
  }

  async positions(): Promise<ReadonlyMap<ProjectedStream, StreamPosition>> {
    const rows = this.read(POSITIONS_SQL).all() as StreamPosition[];
    return new Map(rows.map((row) => [row.stream, { stream: row.stream, seq: row.seq, created: row.created }]));
  }

  async apply(batch: ProjectionBatch, owner: string): Promise<boolean> {
    const writer = this.writer();
    const stored = writer !== undefined ? await writer.apply(batch, owner) : this.writeInline('applying a projection batch', owner, (writes) => writes.apply(applyRequest(batch, owner)));
    // the statistics of a database that grew since it was opened (empty, at first) are brought up
    // to date now and then, on the write connection (here, it could wait on that one's lock)
    if (Date.now() - this.optimizedAt > OPTIMIZE_EVERY_MS) await this.optimize(writer);
    return stored;
  }

  async resetStreams(streams: readonly ProjectedStream[], owner: string): Promise<void> {
    const writer = this.writer();
    if (writer !== undefined) return writer.resetStreams(streams, owner);
    this.writeInline(`resetting the read model's ${streams.join(', ')} rows`, owner, (writes) => writes.reset(resetRequest(streams, owner)));
  }

  async userIds(kind: string): Promise<string[]> {
    return this.read(USER_IDS_SQL).pluck().all(kind, kind, kind) as string[];
  }

  async userIdentifiers(user: UserRef): Promise<Identifier[]> {
    return this.read(USER_IDENTIFIERS_SQL).all(user.kind, user.id, user.kind, user.id) as Identifier[];
  }

  async linkedValues(kind: string): Promise<string[]> {
    return this.read(LINKED_VALUES_SQL).pluck().all(kind) as string[];
  }

  async retracted(user: UserRef): Promise<RetractedResolution[]> {
    return retractedResolutions(this.read(RETRACTED_BY_USER_SQL).all(user.kind, user.id));
  }

  async erasure(request: string): Promise<ReadModelReceipt | undefined> {
    return receiptOf(this.read(ERASURE_SQL).get(request) as Parameters<typeof receiptOf>[0]);
  }

  async watermark(): Promise<number> {
    return (this.read(WATERMARK_SQL).pluck().get() as number | undefined) ?? 0;
  }

  async events(query: PageQuery<EventFilter>): Promise<StoredEvent[]> {
    return storedEvents(this.all(eventsPage(query, 'sqlite')));
  }

  async event(id: string): Promise<StoredEvent | undefined> {
    return storedEvents(this.read(eventByIdSql('sqlite')).all(id))[0];
  }

  async userEvents(user: UserRef, limit: number): Promise<UserEvents> {
    const events = userEventRows(this.read(USER_EVENTS_SQL).all(user.kind, user.id, limit));
    // fewer than asked: they are all there are (counting them again would read every one twice)
    const total = events.length < limit ? events.length : (this.read(USER_TOTAL_SQL).pluck().get(user.kind, user.id) as number);
    return { total, events };
  }

  async userLinks(user: UserRef): Promise<LinkFacts[]> {
    return linkFacts(this.read(USER_LINKS_SQL).all(user.kind, user.id));
  }

  async identifier(identifier: Identifier, limit: number): Promise<IdentifierFacts> {
    const { kind, value } = identifier;
    const [link] = linkFacts(this.read(IDENTIFIER_LINK_SQL).all(kind, value));
    const summary = this.read(BUFFERED_SUMMARY_SQL).get(kind, value) as { count: number; oldest_ms: number | null };
    const events = summary.count === 0 ? [] : storedEvents(this.read(BUFFERED_EVENTS_SQL).all(kind, value, limit));
    const unmatched = this.read(UNMATCHED_REASONS_SQL).all(kind, value) as Array<{ reason: string; count: number }>;
    return { ...(link === undefined ? {} : { link }), buffered: { count: summary.count, oldestMs: summary.oldest_ms, events }, unmatched };
  }

  async records(list: RecordList, query: PageQuery<RecordFilter>): Promise<StoredRecord[]> {
    return storedRecords(this.all(recordsPage(list, query)));
  }

  async counts() {
    return this.read(COUNTS_SQL).get() as Record<'events' | 'resolutions' | 'unmatched' | 'audit' | 'errors' | 'links', number>;
  }

  async dump(): Promise<Readonly<Record<string, readonly unknown[]>>> {
    const read = this.db.transaction(() =>
      Object.fromEntries(Object.keys(DUMP_TABLES).map((table) => [table, (this.read(dumpSql(table)).all() as Array<Record<string, unknown>>).map(dumpRow)])),
    );
    return read();
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.thread?.close();
    this.thread = undefined;
    try {
      this.db.pragma('optimize');
    } finally {
      this.db.close();
    }
  }

  /** What the active-people counts (sqlite-activity.ts) use of this store. */
  private activityAccess(): SqliteAccess {
    const rows = async <R>(sql: string, params: readonly unknown[]) => this.read(sql).all(...params) as R[];
    const arrays = async <R extends readonly unknown[]>(sql: string, params: readonly unknown[]) => this.read(sql, true).all(...params) as R[];
    return {
      rows,
      // better-sqlite3 answers at once: the reads run between BEGIN and COMMIT with no other work in between
      snapshot: async (read) => {
        if (this.db.inTransaction) return read(rows, arrays);
        this.db.exec('BEGIN');
        try {
          const result = await read(rows, arrays);
          this.db.exec('COMMIT');
          return result;
        } catch (error) {
          if (this.db.inTransaction) this.db.exec('ROLLBACK');
          throw error;
        }
      },
      write: async (what, statements, owner, expect) => {
        const writer = this.writer();
        if (writer !== undefined) return writer.run(what, statements, owner, expect);
        let written = false;
        this.writeInline(what, owner, (writes) => (written = writes.run({ owner, statements, expect })));
        return written;
      },
    };
  }

  /** The plan SQLite picks for a statement (for tests and benchmarks). */
  plan(statement: Statement): string[] {
    return (this.db.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`).all(...statement.params) as Array<{ detail: string }>).map((row) => row.detail);
  }

  /** Statistics for the planner: cheap (analysis_limit), and only for the tables that changed much since the last. */
  private async optimize(writer?: SqliteWriter, pragma = 'optimize'): Promise<void> {
    this.optimizedAt = Date.now();
    if (writer !== undefined) return writer.optimize();
    guard('optimizing the SQLite read model', () => this.db.pragma(pragma));
  }

  /**
   * The writer thread of a file (made at the first write, once the schema is there); a database
   * in memory is one connection's, so it is written on this thread.
   */
  private writer(): SqliteWriter | undefined {
    if (this.path === ':memory:' || this.path === '') return undefined;
    this.thread ??= new SqliteWriter({ path: this.path, pragmas: PRAGMAS });
    return this.thread;
  }

  /** A write of a database in memory, here; the claim not held: XREF_FENCED. */
  private writeInline<T>(what: string, owner: string, write: (writes: ReturnType<typeof sqliteWrites>) => T): T {
    this.inline ??= sqliteWrites(this.db, writeSpec());
    const writes = this.inline;
    return guard(what, () => {
      try {
        return write(writes);
      } catch (error) {
        if (error instanceof Fenced) throw fencedError(what, owner);
        throw error;
      }
    });
  }

  /** `sql` prepared once (`raw`: its rows as arrays, a statement of its own). */
  private read(sql: string, raw = false): Prepared {
    const reads = raw ? this.rawReads : this.reads;
    let statement = reads.get(sql);
    if (statement === undefined) {
      statement = guard('preparing a read-model query', () => this.db.prepare<unknown[]>(sql));
      if (raw) statement.raw(true);
      reads.set(sql, statement);
    }
    return statement;
  }

  private all(statement: Statement): unknown[] {
    return this.read(statement.sql).all(...statement.params);
  }
}

/** The migration runner's view of a SQLite database: each migration in a BEGIN IMMEDIATE transaction. */
export function sqliteMigrationTarget(db: Db): MigrationTarget {
  return {
    dialect: 'sqlite',
    exec: async (sql) => void db.exec(sql),
    transaction: async (work) => {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await work({
          exec: async (sql) => void db.exec(sql),
          versions: async () => db.prepare<[], number>('SELECT version FROM schema_migrations').pluck().all(),
        });
        db.exec('COMMIT');
        return result;
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
    },
  };
}

/** A failure of SQLite as XREF_DATABASE, saying what was being done (an XrefError passes as it is). */
function guard<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw asDatabaseError(what, error);
  }
}

async function guardAsync<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw asDatabaseError(what, error);
  }
}

function asDatabaseError(what: string, error: unknown): unknown {
  if (isXrefError(error)) return error;
  return new XrefError('XREF_DATABASE', `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
