/**
 * The read model's schema, as versioned migrations per dialect, and the runner both adapters use:
 * the migrations not applied yet run at start, in version order, each in its own transaction with
 * its row in `schema_migrations(version, applied_at)`. A new version is one more entry of
 * MIGRATIONS; an applied migration is never edited (a database that has it would not see the change).
 */
import { randomUUID } from 'node:crypto';
import { XrefError } from '../domain/errors.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  readonly version: number;
  /** What it does, for logs. */
  readonly description: string;
  /** Its statements in each dialect (a function: a migration may make values, such as an id). */
  readonly statements: (dialect: Dialect) => readonly string[];
}

/** A column type in each dialect: PostgreSQL's text compares bytewise ("C"), as SQLite's does. */
const types = (dialect: Dialect) =>
  dialect === 'sqlite' ? { int: 'INTEGER', text: 'TEXT', key: 'TEXT' } : { int: 'bigint', text: 'text', key: 'text COLLATE "C"' };

/** A list of records (unmatched, audit, errors): ordered by (time, stream seq), filtered by reason and kind/origin. */
function recordIndexes(table: string, kindColumn: string): string[] {
  return [
    `CREATE INDEX ${table}_time ON ${table} (time_ms, stream_seq)`,
    `CREATE INDEX ${table}_reason_time ON ${table} (reason, time_ms, stream_seq)`,
    `CREATE INDEX ${table}_${kindColumn}_time ON ${table} (${kindColumn}, time_ms, stream_seq)`,
  ];
}

/** Version 1: the whole read model. */
function schemaV1(dialect: Dialect): string[] {
  const { int, text, key } = types(dialect);
  // SQLite: a table keyed by text keeps its rows in key order, with no rowid beside it
  const noRowid = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  const instance = randomUUID().replaceAll('-', '').slice(0, 12);
  return [
    `CREATE TABLE positions (stream ${key} PRIMARY KEY, seq ${int} NOT NULL, created ${text} NOT NULL)${noRowid}`,
    `CREATE TABLE claim (id ${int} PRIMARY KEY CHECK (id = 1), owner ${text}, expires_ms ${int} NOT NULL)`,
    `INSERT INTO claim (id, owner, expires_ms) VALUES (1, NULL, 0)`,
    `CREATE TABLE instance (id ${text} NOT NULL)`,
    `INSERT INTO instance (id) VALUES ('${instance}')`,

    // events: seq is SQLite's rowid (INTEGER PRIMARY KEY), so the body lives in the table b-tree
    `CREATE TABLE events (seq ${int} PRIMARY KEY, id ${key} NOT NULL UNIQUE, name ${key}, category ${key}, session_id ${key}, source ${key} NOT NULL, time_ms ${int} NOT NULL, body ${text} NOT NULL)`,
    `CREATE INDEX events_time ON events (time_ms, seq)`,
    `CREATE INDEX events_session_time ON events (session_id, time_ms, seq) WHERE session_id IS NOT NULL`,
    `CREATE INDEX events_category_time ON events (category, time_ms, seq) WHERE category IS NOT NULL`,
    `CREATE INDEX events_name_time ON events (name, time_ms, seq) WHERE name IS NOT NULL`,
    `CREATE INDEX events_source_time ON events (source, time_ms, seq)`,
    `CREATE TABLE event_ids (kind ${key} NOT NULL, value ${key} NOT NULL, seq ${int} NOT NULL, PRIMARY KEY (kind, value, seq))${noRowid}`,

    // resolutions keyed by (event, user): about one per event, written in log order, so the
    // table grows at its end; the key serves an event's user, the one index a user's events
    `CREATE TABLE resolutions (event_seq ${int} NOT NULL, user_kind ${key} NOT NULL, user_id ${key} NOT NULL, via_kind ${key} NOT NULL, via_value ${key} NOT NULL, PRIMARY KEY (event_seq, user_kind, user_id))${noRowid}`,
    `CREATE INDEX resolutions_user ON resolutions (user_kind, user_id, event_seq)`,

    `CREATE TABLE unmatched (output_id ${key} PRIMARY KEY, stream_seq ${int} NOT NULL, event_seq ${int} NOT NULL, reason ${key} NOT NULL, kind ${key} NOT NULL, value ${key} NOT NULL, time_ms ${int} NOT NULL, body ${text} NOT NULL)${noRowid}`,
    ...recordIndexes('unmatched', 'kind'),
    `CREATE INDEX unmatched_identifier ON unmatched (kind, value, reason)`,
    `CREATE INDEX unmatched_event ON unmatched (event_seq)`,

    `CREATE TABLE audit (output_id ${key} PRIMARY KEY, stream_seq ${int} NOT NULL, reason ${key} NOT NULL, kind ${key} NOT NULL, value ${key} NOT NULL, user_kind ${key}, user_id ${key}, event_seq ${int} NOT NULL, event_id ${key} NOT NULL, time_ms ${int} NOT NULL, body ${text} NOT NULL)${noRowid}`,
    ...recordIndexes('audit', 'kind'),

    `CREATE TABLE errors (id ${key} PRIMARY KEY, stream_seq ${int} NOT NULL, reason ${key} NOT NULL, origin ${key} NOT NULL, time_ms ${int} NOT NULL, body ${text} NOT NULL)${noRowid}`,
    ...recordIndexes('errors', 'origin'),

    `CREATE TABLE links (kind ${key} NOT NULL, value ${key} NOT NULL, user_kind ${key} NOT NULL, user_id ${key} NOT NULL, event_seq ${int} NOT NULL, event_id ${key} NOT NULL, PRIMARY KEY (kind, value))${noRowid}`,
    `CREATE INDEX links_user ON links (user_kind, user_id, event_seq)`,
  ];
}

/**
 * Version 2: which input decided each resolution (`decided_seq`, the `at` of its `Xref-Resolution`
 * header; rows written before it take their event's own seq), and the active-people counts
 * (docs/activity.md): the counter's position, its person rows, its counts per period (now and
 * frozen), its anonymous clusters and the events still anonymous.
 */
function schemaV2(dialect: Dialect): string[] {
  const { int, text, key } = types(dialect);
  const noRowid = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  return [
    `ALTER TABLE resolutions ADD COLUMN decided_seq ${int}`,
    'UPDATE resolutions SET decided_seq = event_seq',
    'CREATE INDEX resolutions_decided ON resolutions (decided_seq)',
    // one row, always: its generation goes up whenever the counts are deleted, so that a write
    // counted before can tell (seq 0: nothing counted)
    `CREATE TABLE activity_state (id ${int} PRIMARY KEY CHECK (id = 1), generation ${int} NOT NULL, seq ${int} NOT NULL, columns ${text}, zones ${text}, scalars ${text})`,
    'INSERT INTO activity_state (id, generation, seq) VALUES (1, 0, 0)',
    `CREATE TABLE activity_people (zone ${key} NOT NULL, period ${key} NOT NULL, idx ${int} NOT NULL, start ${text} NOT NULL, person ${key} NOT NULL, events ${int} NOT NULL, hits ${text} NOT NULL, PRIMARY KEY (zone, period, idx, person))${noRowid}`,
    `CREATE INDEX activity_people_person ON activity_people (person)`,
    `CREATE TABLE activity_counts (zone ${key} NOT NULL, period ${key} NOT NULL, idx ${int} NOT NULL, start ${text} NOT NULL, counts ${text} NOT NULL, frozen ${text}, PRIMARY KEY (zone, period, idx))${noRowid}`,
    `CREATE TABLE activity_anon (id ${key} PRIMARY KEY, parent ${key}, size ${int})${noRowid}`,
    `CREATE TABLE activity_pending (seq ${int} PRIMARY KEY, anchor ${key} NOT NULL, time_ms ${int} NOT NULL, matched ${text} NOT NULL)`,
  ];
}

/**
 * Version 3: forgetting a user (docs/read-model.md). `erasures` holds each forget's receipt: the
 * rows it deleted per table (JSON), the user's rows counted again after (0), and when; the audit
 * rows of an identifier are found by it (a forget deletes them).
 */
function schemaV3(dialect: Dialect): string[] {
  const { int, text, key } = types(dialect);
  const noRowid = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  return [
    `CREATE TABLE erasures (request ${key} PRIMARY KEY, stream_seq ${int} NOT NULL, at ${text} NOT NULL, deleted ${text} NOT NULL, remaining ${int} NOT NULL)${noRowid}`,
    'CREATE INDEX audit_identifier ON audit (kind, value)',
  ];
}

/**
 * Version 4: unlinks (docs/read-model.md, unlinking an identifier). Each resolution keeps its
 * output id (what a retraction names it by; rows written before take the id their message had,
 * `<event id>:<user kind>.<user id>`, from their event when it is projected), and `retractions`
 * holds each resolution an unlink took back: what it was (event, user, via, the input that had
 * decided it) and the unlink input, by its own output id.
 */
function schemaV4(dialect: Dialect): string[] {
  const { int, key } = types(dialect);
  const noRowid = dialect === 'sqlite' ? ' WITHOUT ROWID' : '';
  return [
    `ALTER TABLE resolutions ADD COLUMN output_id ${key}`,
    "UPDATE resolutions SET output_id = (SELECT e.id FROM events e WHERE e.seq = resolutions.event_seq) || ':' || user_kind || '.' || user_id",
    `CREATE TABLE retractions (output_id ${key} PRIMARY KEY, stream_seq ${int} NOT NULL, retracted ${key} NOT NULL, event_id ${key} NOT NULL, user_kind ${key} NOT NULL, user_id ${key} NOT NULL, unlink_seq ${int} NOT NULL, event_seq ${int}, via_kind ${key}, via_value ${key}, decided_seq ${int})${noRowid}`,
    'CREATE INDEX retractions_unlink ON retractions (unlink_seq)',
    'CREATE INDEX retractions_decided ON retractions (decided_seq)',
    'CREATE INDEX retractions_user ON retractions (user_kind, user_id, unlink_seq)',
  ];
}

/**
 * Version 5: what the active-people counts read of each event (its identifier keys and the
 * buckets it matches, src/activity/event-features.ts), stored by a projection that counts, so that
 * the counting does not parse the event's body again.
 */
function schemaV5(dialect: Dialect): string[] {
  return [`ALTER TABLE events ADD COLUMN activity ${types(dialect).text}`];
}

/**
 * Version 6: the column of version 5 dropped. Handing the counting each event's features in memory
 * (src/projection/activity-feed.ts) left it read only after a restart, and writing it cost the
 * projection more than parsing the bodies then saves.
 */
function schemaV6(): string[] {
  return ['ALTER TABLE events DROP COLUMN activity'];
}

/** Every migration, in version order. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'the read model: events, resolutions, records, links, positions', statements: schemaV1 },
  { version: 2, description: 'the input that decided each resolution; the active-people counts', statements: schemaV2 },
  { version: 3, description: 'the receipts of forgotten users; audit rows by identifier', statements: schemaV3 },
  { version: 4, description: "resolutions' output ids; the resolutions unlinks took back", statements: schemaV4 },
  { version: 5, description: 'what the active-people counts read of each event', statements: schemaV5 },
  { version: 6, description: 'what the active-people counts read of each event, no longer stored', statements: schemaV6 },
];

/** The table of applied versions, made before anything else. */
export function migrationsTable(dialect: Dialect): string {
  const { int, text } = types(dialect);
  return `CREATE TABLE IF NOT EXISTS schema_migrations (version ${int} PRIMARY KEY, applied_at ${text} NOT NULL)`;
}

/** What the runner needs of a database: one transaction at a time, statements inside it. */
export interface MigrationTarget {
  readonly dialect: Dialect;
  /** Runs one statement outside any transaction. */
  exec(sql: string): Promise<void>;
  /**
   * Runs `work` in one transaction (taking whatever lock keeps two processes from migrating at
   * once), committed when it resolves, rolled back when it throws.
   */
  transaction<T>(work: (tx: MigrationTransaction) => Promise<T>): Promise<T>;
}

export interface MigrationTransaction {
  exec(sql: string): Promise<void>;
  /** The versions applied, read inside the transaction. */
  versions(): Promise<number[]>;
}

/** The highest version of `migrations` (0: none). */
export function latestVersion(migrations: readonly Migration[] = MIGRATIONS): number {
  return migrations.reduce((max, m) => Math.max(max, m.version), 0);
}

/**
 * Applies the migrations `target` lacks, in version order, each in its own transaction; returns
 * the versions it applied. A database at a version newer than any migration here (written by a
 * newer xref) is refused rather than used with a schema this code does not know.
 */
export async function runMigrations(target: MigrationTarget, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  ordered.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version < 1 || (i > 0 && ordered[i - 1]?.version === m.version)) {
      throw new XrefError('XREF_INTERNAL', `migration version ${m.version} must be a positive integer, once`);
    }
  });
  await target.exec(migrationsTable(target.dialect));
  const applied: number[] = [];
  const latest = latestVersion(ordered);
  for (const migration of ordered) {
    const done = await target.transaction(async (tx) => {
      const versions = await tx.versions();
      const newest = Math.max(0, ...versions);
      if (newest > latest) {
        throw new XrefError('XREF_DATABASE', `migrating the read model: the database is at schema version ${newest}, newer than this xref knows (${latest})`);
      }
      // read again inside the transaction: another process may have applied it meanwhile
      if (versions.includes(migration.version)) return false;
      for (const sql of migration.statements(target.dialect)) await tx.exec(sql);
      await tx.exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (${migration.version}, '${new Date().toISOString()}')`);
      return true;
    });
    if (done) applied.push(migration.version);
  }
  return applied;
}
