/**
 * The read-model contract on both adapters: SQLite (a file, and in memory) and PostgreSQL (a
 * fresh database for the suite, dropped afterwards; each test on an empty schema in it). Then what
 * only one adapter or openReadModel does: files kept across opens, query plans, failures named.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReadModel, readModelLocation } from '../../src/projection/open-store.ts';
import { PostgresStore, redactUrl } from '../../src/projection/postgres-store.ts';
import { SqliteStore } from '../../src/projection/sqlite-store.ts';
import { eventsPage, recordsPage } from '../../src/projection/read-model-sql.ts';
import { type EventFilter, type ReadModelStore, eventRow as rowOf } from '../../src/projection/read-model.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { T0, auditRow, batchOf, errorRow, eventRow, readModelContract, resolutionRow, unmatchedRow } from '../helpers/read-model-contract.ts';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'xref-read-model-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

readModelContract('SQLite file', async () => {
  const dir = tempDir();
  const store = await openReadModel({ databaseUrl: undefined, dataDir: join(dir, 'data'), logger });
  return { store, done: () => store.close() };
});

readModelContract('SQLite in memory', async () => {
  const store = await openReadModel({ databaseUrl: 'sqlite::memory:', dataDir: '/nonexistent', logger });
  return { store, done: () => store.close() };
});

describe('PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    database = await freshDatabase();
    return () => database.drop();
  });

  readModelContract('PostgreSQL', async () => {
    // an empty schema for each test, in the suite's database
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public');
    await admin.end();
    const store = await openReadModel({ databaseUrl: database.url, dataDir: '/nonexistent', logger });
    return { store, done: () => store.close() };
  });
});

/** A logger whose lines the test reads (nothing printed). */
function capturedLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** A few thousand rows over many users, sessions, categories and identifiers: enough for the planner to choose as at scale. */
async function load(store: ReadModelStore, n = 3000) {
  expect(await store.claim('loader', 60_000)).toBe(true);
  const events = Array.from({ length: n }, (_, i) =>
    eventRow(i + 1, { session: `s${i % 300}`, category: `cat${i % 7}`, name: `name${i % 11}`, source: `src${i % 3}`, at: i * 10, ids: { cookie: `c${i % 500}`, email: `m${i % 900}` } }),
  );
  const resolutions = events.filter((e) => e.seq % 3 !== 0).map((e) => resolutionRow(e, { kind: 'db_id', id: `u${e.seq % 200}` }));
  const unmatched = events.filter((e) => e.seq % 3 === 0).map((e, i) => unmatchedRow(i + 1, e, ['expired', 'junk', 'unlinked'][i % 3] as string));
  const audit = events.slice(0, 500).map((e, i) => auditRow(i + 1, i % 4 === 0 ? 'conflict' : 'link', { kind: 'cookie', value: `c${i}` }, { kind: 'db_id', id: `u${i % 200}` }, e));
  const errors = events.slice(0, 500).map((_, i) => errorRow(i + 1, ['invalid_event', 'schema_violation'][i % 2] as string, ['http', 'publish', 'engine'][i % 3] as string, i * 10));
  await store.apply(batchOf({ events, resolutions, unmatched, audit, errors }), 'loader');
}

const FILTERS: Array<[string, EventFilter]> = [
  ['session', { sessionId: 's5' }],
  ['category and time', { category: 'cat3', afterMs: T0 + 1000, beforeMs: T0 + 20_000 }],
  ['name', { name: 'name4' }],
  ['source', { source: 'src1' }],
  ['time only', { afterMs: T0 + 1000, beforeMs: T0 + 2000 }],
];

describe('SQLite', () => {
  it('keeps a file across opens: the rows, the instance id, the schema; WAL', async () => {
    const path = join(tempDir(), 'kept.sqlite');
    const first = await openReadModel({ databaseUrl: `sqlite:${path}`, dataDir: '/nonexistent', logger });
    await load(first, 50);
    const [dump, id] = [await first.dump(), await first.instanceId()];
    await first.close();
    await first.close();
    const again = await openReadModel({ databaseUrl: `sqlite:${path}`, dataDir: '/nonexistent', logger });
    expect(await again.dump()).toEqual(dump);
    expect(await again.instanceId()).toBe(id);
    expect(await again.schemaVersion()).toBe(6);
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    await again.close();
  });

  it('fences one process with another: two stores on one file share one claim', async () => {
    const path = join(tempDir(), 'shared.sqlite');
    const [a, b] = [new SqliteStore(path), new SqliteStore(path)];
    await a.migrate();
    await b.migrate();
    expect(await a.claim('a', 60_000)).toBe(true);
    expect(await b.claim('b', 60_000)).toBe(false);
    await expect(b.apply(batchOf({ events: [eventRow(1)] }), 'b')).rejects.toMatchObject({ code: 'XREF_FENCED' });
    await a.apply(batchOf({ events: [eventRow(1)] }), 'a');
    expect((await b.counts()).events).toBe(1);
    await a.close();
    await b.close();
  });

  it('serves every filter from its index, in order (no sort of the whole set)', async () => {
    const store = new SqliteStore(':memory:');
    await store.migrate();
    await load(store);
    const index: Record<string, string> = { session: 'events_session_time', 'category and time': 'events_category_time', name: 'events_name_time', source: 'events_source_time', 'time only': 'events_time' };
    for (const [what, filter] of FILTERS) {
      for (const order of ['asc', 'desc'] as const) {
        for (const from of [undefined, { timeMs: T0 + 1500, seq: 150 }]) {
          const plan = store.plan(eventsPage({ filter, order, limit: 100, ...(from === undefined ? {} : { from }) }, 'sqlite')).join('\n');
          expect(plan, what).toContain(`USING INDEX ${index[what]}`);
          expect(plan, what).not.toContain('TEMP B-TREE');
        }
      }
    }
    // a user or an identifier: its own rows first (a few), then their events by seq
    expect(store.plan(eventsPage({ filter: { user: { kind: 'db_id', id: 'u1' } }, order: 'desc', limit: 100 }, 'sqlite')).join('\n')).toMatch(/SEARCH r USING (COVERING )?INDEX resolutions_user[\s\S]*SEARCH e USING INTEGER PRIMARY KEY/);
    expect(store.plan(eventsPage({ filter: { identifier: { kind: 'cookie', value: 'c1' } }, order: 'desc', limit: 100 }, 'sqlite')).join('\n')).toMatch(/SEARCH i USING PRIMARY KEY[\s\S]*SEARCH e USING INTEGER PRIMARY KEY/);
    for (const list of ['unmatched', 'audit', 'errors'] as const) {
      for (const filter of [{}, { reason: 'junk' }, { kind: list === 'errors' ? 'http' : 'cookie' }]) {
        const plan = store.plan(recordsPage(list, { filter, order: 'desc', limit: 100 })).join('\n');
        expect(plan, `${list} ${JSON.stringify(filter)}`).toMatch(new RegExp(`USING INDEX ${list}_`));
        expect(plan, `${list} ${JSON.stringify(filter)}`).not.toContain('TEMP B-TREE');
      }
    }
    await store.close();
  });

  it('names the file it could not open (XREF_DATABASE)', async () => {
    const file = join(tempDir(), 'a-file');
    rmSync(file, { force: true });
    const store = await openReadModel({ databaseUrl: `sqlite:${file}`, dataDir: '/nonexistent', logger });
    await store.close();
    // a directory where the database file should be
    await expect(openReadModel({ databaseUrl: `sqlite:${tempDir()}`, dataDir: '/nonexistent', logger })).rejects.toMatchObject({ code: 'XREF_DATABASE', message: expect.stringContaining('SQLite read model') });
  });
});

describe('openReadModel', () => {
  it('opens <dataDir>/xref.sqlite when no URL is set, making the directory, and says which database it opened', async () => {
    const dataDir = join(tempDir(), 'deep', 'er');
    const { logger: log, lines } = capturedLogger();
    const store = await openReadModel({ databaseUrl: undefined, dataDir, logger: log.child({ component: 'read-model' }) });
    expect(store.dialect).toBe('sqlite');
    expect(existsSync(join(dataDir, 'xref.sqlite'))).toBe(true);
    expect(lines).toContainEqual(expect.objectContaining({ component: 'read-model', dialect: 'sqlite', path: join(dataDir, 'xref.sqlite'), schemaVersion: 6, msg: 'read model opened' }));
    await store.close();
  });

  it('reads sqlite:<path>, sqlite::memory:, postgres:// and postgresql://, and refuses anything else naming its scheme only', () => {
    expect(readModelLocation(undefined, '/d')).toEqual({ dialect: 'sqlite', path: '/d/xref.sqlite' });
    expect(readModelLocation('sqlite:/x/y.db', '/d')).toEqual({ dialect: 'sqlite', path: '/x/y.db' });
    expect(readModelLocation('sqlite::memory:', '/d')).toEqual({ dialect: 'sqlite', path: ':memory:' });
    expect(readModelLocation('postgres://u:p@h/db', '/d')).toEqual({ dialect: 'postgres', url: 'postgres://u:p@h/db' });
    expect(readModelLocation('postgresql://h/db', '/d')).toEqual({ dialect: 'postgres', url: 'postgresql://h/db' });
    for (const bad of ['mysql://root:hunter2@h/db', 'sqlite:']) {
      try {
        readModelLocation(bad, '/d');
        expect.unreachable();
      } catch (error) {
        expect(error).toMatchObject({ code: 'XREF_INVALID_CONFIG', field: 'XREF_DATABASE_URL' });
        expect((error as Error).message).not.toContain('hunter2');
      }
    }
  });

  it('wraps a PostgreSQL it cannot reach in XREF_DATABASE, never quoting the password', async () => {
    const attempt = openReadModel({ databaseUrl: 'postgres://xref:hunter2@127.0.0.1:1/nowhere', dataDir: '/nonexistent', logger });
    await expect(attempt).rejects.toMatchObject({ code: 'XREF_DATABASE', message: expect.stringMatching(/^migrating the PostgreSQL read model: .*ECONNREFUSED/) });
    await expect(attempt).rejects.not.toMatchObject({ message: expect.stringContaining('hunter2') });
  });
});

describe('PostgreSQL only', () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    database = await freshDatabase();
    return () => database.drop();
  });

  it('migrates once when two processes start together, and logs the URL without its password', async () => {
    const url = new URL(database.url);
    url.password = 'hunter2';
    const { logger: captured, lines } = capturedLogger();
    const log = captured.child({ component: 'read-model' });
    const [a, b] = await Promise.all([openReadModel({ databaseUrl: database.url, dataDir: '/x', logger: log }), openReadModel({ databaseUrl: database.url, dataDir: '/x', logger: log })]);
    expect(await a.schemaVersion()).toBe(6);
    expect(await a.instanceId()).toBe(await b.instanceId());
    // each version applied by one of them (one may apply 1, the other the rest)
    expect(lines.filter((line) => line.msg === 'read model migrated').flatMap((line) => line.applied as number[]).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines).toContainEqual(expect.objectContaining({ component: 'read-model', dialect: 'postgres', msg: 'read model opened' }));
    // claims across pools
    expect(await a.claim('a', 60_000)).toBe(true);
    expect(await b.claim('b', 60_000)).toBe(false);
    await expect(b.apply(batchOf({ events: [eventRow(1)] }), 'b')).rejects.toMatchObject({ code: 'XREF_FENCED' });
    await Promise.all([a.close(), b.close()]);
    expect(redactUrl(url.toString())).not.toContain('hunter2');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('names a statement the database refused (XREF_DATABASE), and rolls the batch back whole', async () => {
    const store = new PostgresStore(database.url, logger);
    await store.migrate();
    expect(await store.claim('a', 60_000)).toBe(true);
    // a NUL or a lone surrogate in a key column is kept (as U+FFFD, and found so); in a body, kept as it was
    const odd = eventRow(1, { session: 'nul\0here', ids: { cookie: 'x\0y', email: 'lone\ud800' } });
    const event = { ...odd.event, data: { nul: 'a\0b', lone: '\udc00x', pair: '😀' } };
    const body = { ...rowOf(1, event, odd.source, odd.timeMs), event };
    await store.apply(batchOf({ events: [body] }), 'a');
    expect((await store.event('e1'))?.event).toEqual(body.event);
    expect((await store.events({ filter: { identifier: { kind: 'email', value: 'lone\ud800' } }, order: 'asc', limit: 10 })).map((e) => e.seq)).toEqual([1]);
    expect((await store.events({ filter: { sessionId: 'nul\0here' }, order: 'asc', limit: 10 })).map((e) => e.seq)).toEqual([1]);
    expect((await store.events({ filter: { identifier: { kind: 'cookie', value: 'x\0y' } }, order: 'asc', limit: 10 })).map((e) => e.seq)).toEqual([1]);
    // a time beyond bigint: refused, and the events before it in the batch are not kept either
    const before = await store.dump();
    await expect(store.apply(batchOf({ events: [eventRow(2), { ...eventRow(3), timeMs: 1e300 }] }), 'a')).rejects.toMatchObject({ code: 'XREF_DATABASE', message: expect.stringMatching(/^applying a projection batch: /) });
    expect(await store.dump()).toEqual(before);
    await store.close();
  });

  it('serves every filter from an index, never reading a whole table, after ANALYZE', async () => {
    const store = new PostgresStore(database.url, logger);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public');
    await store.migrate();
    await load(store);
    await admin.query('ANALYZE');
    await admin.end();
    for (const [what, filter] of FILTERS) {
      for (const order of ['asc', 'desc'] as const) {
        const plan = (await store.plan(eventsPage({ filter, order, limit: 100, from: { timeMs: T0 + 1500, seq: 150 } }, 'postgres'))).join('\n');
        // a few thousand rows: PostgreSQL may take another events index, or a bitmap scan and sort the few it found, but never reads a whole table
        expect(plan, what).toMatch(/Index (Only )?Scan( Backward)? using events_|Bitmap Index Scan on events_/);
        expect(plan, what).not.toMatch(/Seq Scan/);
      }
    }
    await store.close();
  });
});
