import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { it } from 'vitest';
import { openReadModel } from '../../src/projection/open-store.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { freshDatabase } from './postgres.ts';

/** A scenario that opens read-model stores as it needs them (a live one, a rebuilt one, …), all on one database. */
export type StoreScenario = (open: () => Promise<ReadModelStore>) => Promise<void>;

/**
 * Runs a scenario twice, as two tests: on a fresh SQLite file, and on a fresh PostgreSQL database
 * per store it opens (dropped afterwards).
 */
export function onBothDatabases(scenario: StoreScenario, logger: Logger, timeout = 60_000): void {
  it('on SQLite', { timeout }, () => scenario(() => openReadModel({ databaseUrl: `sqlite:${join(mkdtempSync(join(tmpdir(), 'xref-rm-')), 'xref.sqlite')}`, dataDir: tmpdir(), logger })));
  it('on PostgreSQL', { timeout }, async () => {
    const databases: Array<Awaited<ReturnType<typeof freshDatabase>>> = [];
    try {
      await scenario(async () => {
        const database = await freshDatabase();
        databases.push(database);
        return openReadModel({ databaseUrl: database.url, dataDir: tmpdir(), logger });
      });
    } finally {
      for (const database of databases) await database.drop();
    }
  });
}
