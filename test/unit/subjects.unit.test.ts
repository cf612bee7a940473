import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, linkKey, subjects } from '../../src/nats/subjects.ts';

describe('subject and key encoding', () => {
  it('round-trips any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 64 }), (value) => {
        expect(decodeToken(encodeToken(value))).toBe(value);
      }),
      { numRuns: 2000 },
    );
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 32 }), (value) => {
      // lone surrogates are not valid UTF-8: only well-formed strings are identifier values
      fc.pre(value.isWellFormed());
      expect(decodeToken(encodeToken(value))).toBe(value);
    }));
  });

  it('always yields one valid NATS token and KV key part', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 64 }), (value) => {
        expect(encodeToken(value)).toMatch(/^[A-Za-z0-9_=-]+$/);
      }),
    );
  });

  it('keeps [A-Za-z0-9_-] as it is and is injective on tricky values', () => {
    expect(encodeToken('nice_page-visitor9')).toBe('nice_page-visitor9');
    const tricky = ['a.b', 'a*', '>', 'a b', '=', '=2E', '~', '', 'é', '日本'];
    const encoded = tricky.map(encodeToken);
    expect(new Set(encoded).size).toBe(tricky.length);
    expect(subjects.group('db_id', 'a.b')).toBe('xref.groups.db_id.a=2Eb');
    expect(linkKey('cookie', 'x y')).toBe('cookie.x=20y');
  });
});
