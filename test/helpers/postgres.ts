/**
 * A fresh PostgreSQL database for one test suite, through XREF_TEST_DATABASE_URL (default: the
 * local server, user postgres): made with a unique name, dropped by `drop()` (connections still
 * open to it are ended first).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_DATABASE_URL = process.env.XREF_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface FreshDatabase {
  /** The new database's URL (the server's URL with its name). */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** `work` on one connection to the database at `url`, closed after it. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Runs one statement on the server's own database. */
const onServer = async (sql: string): Promise<void> => {
  await withClient(TEST_DATABASE_URL, (client) => client.query(sql));
};

export async function freshDatabase(): Promise<FreshDatabase> {
  const name = `xref_test_${randomBytes(6).toString('hex')}`;
  await onServer(`CREATE DATABASE ${name}`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
