import { ERROR_CATALOGUE } from './errors.ts';

/** The README's error table, printed from the catalogue (`npm run errors:table`). */
export function errorTable(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.meaning} | \`${e.message}\` |`);
  return ['| code | HTTP | meaning | message |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${errorTable()}\n`);
