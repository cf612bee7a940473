/**
 * Rows into PostgreSQL by COPY (text format, pg-copy-streams): the cheapest way in for a batch of
 * new rows, far cheaper on the server than an INSERT … ON CONFLICT of the same rows. COPY knows
 * no ON CONFLICT: a row whose key is there already fails the whole statement (unique_violation),
 * and the store then writes the batch again the way that keeps the stored rows (postgres-store.ts).
 */
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { COLUMNS, type Value, type WrittenTable } from './read-model-sql.ts';

/** PostgreSQL's error code for a duplicate key. */
export const UNIQUE_VIOLATION = '23505';

/** Whether `error` is PostgreSQL refusing a duplicate key. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === UNIQUE_VIOLATION;
}

/**
 * PostgreSQL's text holds no NUL character and no lone surrogate (SQLite's takes both): a key
 * column gets U+FFFD in their place, and so do the query values compared with it, so such a value
 * is still found. A body is JSON text from JSON.stringify, where both are escapes.
 */
export function pgText(value: string): string {
  const text = value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value;
  return text.isWellFormed() ? text : text.toWellFormed();
}

/** What COPY's text format escapes: the backslash, the column and row separators. */
const SPECIAL = /[\\\t\n\r]/;
const SPECIALS = /[\\\t\n\r]/g;
/** A key that may need more than its text: one of SPECIAL, a NUL or a surrogate (pgText). */
const KEY_SPECIAL = /[\\\t\n\r\0\ud800-\udfff]/;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const escaped = (text: string): string => text.replace(SPECIALS, (c) => ESCAPES[c]!);
/** A column's text in COPY's format (one scan for the usual value, which needs nothing). */
const keyField = (text: string): string => (KEY_SPECIAL.test(text) ? escaped(pgText(text)) : text);
const bodyField = (text: string): string => (SPECIAL.test(text) ? escaped(text) : text);

/**
 * `rows` as COPY's text format: a line per row, its columns (those of COLUMNS[table], in order)
 * separated by tabs, `\N` for NULL. Key columns as pgText makes them (a body is JSON text, taken
 * as it is: escaped, its backslashes stay backslashes). Integers as their digits.
 */
export function copyText(table: WrittenTable, rows: readonly Value[][]): string {
  const columns = COLUMNS[table];
  const width = columns.length;
  const isKey = columns.map((column) => column !== 'body');
  let out = '';
  for (const row of rows) {
    for (let i = 0; i < width; i++) {
      const value = row[i] ?? null;
      const field = value === null ? '\\N' : typeof value === 'number' ? String(value) : isKey[i] ? keyField(value) : bodyField(value);
      out += i === 0 ? field : `\t${field}`;
    }
    out += '\n';
  }
  return out;
}

/** `COPY table (columns) FROM STDIN` of `rows`, on `client` (inside the caller's transaction). */
export function copyRows(client: pg.PoolClient, table: WrittenTable, rows: readonly Value[][]): Promise<void> {
  if (rows.length === 0) return Promise.resolve();
  const data = Buffer.from(copyText(table, rows));
  return new Promise<void>((resolve, reject) => {
    const stream = client.query(copyFrom(`COPY ${table} (${COLUMNS[table].join(', ')}) FROM STDIN`));
    stream.on('error', reject);
    stream.on('finish', () => resolve());
    stream.end(data);
  });
}
