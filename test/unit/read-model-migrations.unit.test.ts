/**
 * The migration runner on SQLite in memory: versions applied in order, each once, each in its own
 * transaction (a failing one leaves nothing of itself), and a database newer than the code refused.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, type Migration, latestVersion, runMigrations } from '../../src/projection/migrations.ts';
import { sqliteMigrationTarget } from '../../src/projection/sqlite-store.ts';

const open: Database.Database[] = [];
function memory() {
  const db = new Database(':memory:');
  open.push(db);
  return db;
}
afterEach(() => open.splice(0).forEach((db) => db.close()));

const tables = (db: Database.Database) => db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
const versions = (db: Database.Database) => db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
const v7: Migration = { version: 7, description: 'a column more', statements: () => ['ALTER TABLE events ADD COLUMN extra TEXT', 'CREATE INDEX events_extra ON events (extra)'] };

describe('read-model migrations', () => {
  it('applies versions 1 to 6 (the whole schema, a claim row, an instance id, the activity tables, the receipts, the retractions, a column added and dropped again) and records each with its time', async () => {
    const db = memory();
    expect(await runMigrations(sqliteMigrationTarget(db))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(tables(db)).toEqual([
      'activity_anon',
      'activity_counts',
      'activity_pending',
      'activity_people',
      'activity_state',
      'audit',
      'claim',
      'erasures',
      'errors',
      'event_ids',
      'events',
      'instance',
      'links',
      'positions',
      'resolutions',
      'retractions',
      'schema_migrations',
      'unmatched',
    ]);
    const [row] = db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all() as Array<{ version: number; applied_at: string }>;
    expect(row?.version).toBe(1);
    expect(Date.parse(row?.applied_at ?? '')).not.toBeNaN();
    expect(db.prepare('SELECT id, owner, expires_ms FROM claim').all()).toEqual([{ id: 1, owner: null, expires_ms: 0 }]);
    expect(db.prepare('SELECT id FROM instance').pluck().all()).toEqual([expect.stringMatching(/^[0-9a-f]{12}$/)]);
    expect(latestVersion()).toBe(6);
    expect((db.prepare('PRAGMA table_info(events)').all() as Array<{ name: string }>).map((c) => c.name)).not.toContain('activity');
  });

  it('applies each version once: running again does nothing, and a new version is one more entry', async () => {
    const db = memory();
    await runMigrations(sqliteMigrationTarget(db));
    const instance = db.prepare('SELECT id FROM instance').pluck().get();
    expect(await runMigrations(sqliteMigrationTarget(db))).toEqual([]);
    expect(await runMigrations(sqliteMigrationTarget(db), [v7, ...MIGRATIONS])).toEqual([7]);
    expect(await runMigrations(sqliteMigrationTarget(db), [...MIGRATIONS, v7])).toEqual([]);
    expect(versions(db)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(db.prepare('SELECT id FROM instance').pluck().all()).toEqual([instance]);
    expect((db.prepare('PRAGMA table_info(events)').all() as Array<{ name: string }>).map((c) => c.name)).toContain('extra');
  });

  it('applies versions in order on an empty database, whatever order they are listed in', async () => {
    const db = memory();
    expect(await runMigrations(sqliteMigrationTarget(db), [v7, ...MIGRATIONS])).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(versions(db)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('rolls a failing migration back whole: neither its statements nor its version stay, earlier ones do', async () => {
    const db = memory();
    const broken: Migration = { version: 7, description: 'broken', statements: () => ['CREATE TABLE half_done (x INTEGER)', 'ALTER TABLE nowhere ADD COLUMN y TEXT'] };
    await expect(runMigrations(sqliteMigrationTarget(db), [...MIGRATIONS, broken])).rejects.toThrow(/nowhere/);
    expect(versions(db)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(tables(db)).not.toContain('half_done');
    expect(db.inTransaction).toBe(false);
  });

  it('version 2 gives the resolutions of a version-1 database the input that decided them: their own event\'s', async () => {
    const db = memory();
    await runMigrations(sqliteMigrationTarget(db), MIGRATIONS.slice(0, 1));
    db.prepare("INSERT INTO resolutions (event_seq, user_kind, user_id, via_kind, via_value) VALUES (7, 'user', 'u1', 'cookie', 'c1')").run();
    expect(await runMigrations(sqliteMigrationTarget(db))).toEqual([2, 3, 4, 5, 6]);
    expect(db.prepare('SELECT event_seq, decided_seq FROM resolutions').all()).toEqual([{ event_seq: 7, decided_seq: 7 }]);
  });

  it("version 4 gives the resolutions of a version-3 database the output id their message had (from their event, once it is projected)", async () => {
    const db = memory();
    await runMigrations(sqliteMigrationTarget(db), MIGRATIONS.slice(0, 3));
    db.prepare("INSERT INTO events (seq, id, source, time_ms, body) VALUES (7, 'e7', 'web', 0, '{}')").run();
    db.prepare("INSERT INTO resolutions (event_seq, user_kind, user_id, via_kind, via_value, decided_seq) VALUES (7, 'user', 'u1', 'cookie', 'c1', 7), (8, 'user', 'u1', 'cookie', 'c1', 8)").run();
    expect(await runMigrations(sqliteMigrationTarget(db))).toEqual([4, 5, 6]);
    expect(db.prepare('SELECT event_seq, output_id FROM resolutions ORDER BY event_seq').all()).toEqual([
      { event_seq: 7, output_id: 'e7:user.u1' },
      { event_seq: 8, output_id: null },
    ]);
  });

  it('refuses a database at a version newer than it knows', async () => {
    const db = memory();
    await runMigrations(sqliteMigrationTarget(db), [...MIGRATIONS, v7]);
    await expect(runMigrations(sqliteMigrationTarget(db))).rejects.toMatchObject({ code: 'XREF_DATABASE', message: expect.stringMatching(/schema version 7, newer than this xref knows \(6\)/) });
  });

  it('refuses a list with a version twice or a version that is not a positive integer', async () => {
    await expect(runMigrations(sqliteMigrationTarget(memory()), [...MIGRATIONS, { ...v7, version: 1 }])).rejects.toMatchObject({ code: 'XREF_INTERNAL' });
    await expect(runMigrations(sqliteMigrationTarget(memory()), [{ ...v7, version: 0 }])).rejects.toMatchObject({ code: 'XREF_INTERNAL' });
  });
});
