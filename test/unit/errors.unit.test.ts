import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorTable } from '../../src/domain/error-table.ts';
import { ERROR_CATALOGUE, InvalidEventError, XrefError, isXrefError, statusOf } from '../../src/domain/errors.ts';

const repo = join(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(join(repo, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|mjs)$/.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

describe('the error catalogue', () => {
  it('is the README error table', () => {
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toContain(errorTable());
  });

  it('gives each code one HTTP status, and errors their code', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) expect(statusOf(code as keyof typeof ERROR_CATALOGUE)).toBe(entry.status);
    const error = new InvalidEventError('ids.cookie', 7, 'must be a string');
    expect(isXrefError(error)).toBe(true);
    expect(isXrefError(error, 'XREF_INVALID_EVENT')).toBe(true);
    expect(isXrefError(error, 'XREF_LIMIT_EXCEEDED')).toBe(false);
    expect(isXrefError(new Error('plain'))).toBe(false);
    expect(error).toMatchObject({ code: 'XREF_INVALID_EVENT', field: 'ids.cookie', message: 'ids.cookie must be a string, got 7' });
  });

  it('keeps the cause of a wrapped failure', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new XrefError('XREF_NATS_UNAVAILABLE', 'cannot connect', { cause }).cause).toBe(cause);
  });

  it('is where every error xref throws comes from: no plain Error in the library code', () => {
    const stray = [...sources('src'), ...sources('actors')].flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((line, i) => [line, i + 1] as const)
        .filter(([line]) => /new Error\(|extends Error\b/.test(line) && !line.includes('class XrefError extends Error'))
        .map(([line, n]) => `${file.slice(repo.length + 1)}:${n}: ${line.trim()}`),
    );
    expect(stray).toEqual([]);
  });
});
