/**
 * Opens the read model that XREF_DATABASE_URL names (settings.databaseUrl), migrated: unset, the
 * SQLite file `<dataDir>/xref.sqlite`; `sqlite:<path>`, that file; `sqlite::memory:`, SQLite in
 * memory; `postgres://…` or `postgresql://…`, PostgreSQL.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { XrefError, quote } from '../domain/errors.ts';
import type { ReadModelStore } from './read-model.ts';
import { SqliteStore } from './sqlite-store.ts';

export interface OpenReadModelOptions {
  /** settings.databaseUrl (undefined: SQLite under `dataDir`). */
  readonly databaseUrl: string | undefined;
  /** settings.dataDir. */
  readonly dataDir: string;
  /** The read model's logger (its component named by the caller, e.g. `componentLogger('read-model')`). */
  readonly logger: Logger;
}

/** Where the read model lives, read from the URL. */
export type ReadModelLocation = { readonly dialect: 'sqlite'; readonly path: string } | { readonly dialect: 'postgres'; readonly url: string };

export function readModelLocation(databaseUrl: string | undefined, dataDir: string): ReadModelLocation {
  if (databaseUrl === undefined) return { dialect: 'sqlite', path: join(dataDir, 'xref.sqlite') };
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) return { dialect: 'postgres', url: databaseUrl };
  if (databaseUrl.startsWith('sqlite:') && databaseUrl.length > 'sqlite:'.length) return { dialect: 'sqlite', path: databaseUrl.slice('sqlite:'.length) };
  // the URL may hold a password: name the scheme only
  throw new XrefError('XREF_INVALID_CONFIG', `XREF_DATABASE_URL must be postgres://…, postgresql://… or sqlite:<path>, got ${quote(databaseUrl.split(':')[0])}`, {
    field: 'XREF_DATABASE_URL',
  });
}

/** The read model, its migrations applied. */
export async function openReadModel(options: OpenReadModelOptions): Promise<ReadModelStore> {
  const log = options.logger;
  const location = readModelLocation(options.databaseUrl, options.dataDir);
  let store: ReadModelStore;
  let where: { path: string } | { url: string };
  if (location.dialect === 'sqlite') {
    if (location.path !== ':memory:') {
      try {
        mkdirSync(dirname(location.path), { recursive: true });
      } catch (error) {
        throw new XrefError('XREF_DATABASE', `making the directory of the SQLite read model ${location.path}: ${(error as Error).message}`, { cause: error });
      }
    }
    store = new SqliteStore(location.path, log);
    where = { path: location.path };
  } else {
    // loaded only for PostgreSQL (with pg): a SQLite read model's threads start without it
    const { PostgresStore, redactUrl } = await import('./postgres-store.ts');
    store = new PostgresStore(location.url, log);
    where = { url: redactUrl(location.url) };
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  log.info({ dialect: store.dialect, ...where, schemaVersion: await store.schemaVersion() }, 'read model opened');
  return store;
}
