import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONSUMERS, decodeToken, durableName, encodeToken, isDurableOf, kvStream, kvSubject, linkKey, snapshotKeys, subjectMatches, subjects } from '../../src/nats/subjects.ts';

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

  it("names a consumer's durable consumers after it, and tells them from another consumer's", () => {
    expect(durableName(CONSUMERS.engine)).toBe('xref-engine');
    expect(durableName(CONSUMERS.engine, 42)).toBe('xref-engine-42');
    expect(isDurableOf('xref-engine', 'xref-engine')).toBe(true);
    expect(isDurableOf('xref-engine', 'xref-engine-42')).toBe(true);
    // another consumer, even one named after the engine, is never taken for one of the engine's
    for (const other of ['xref-engine-projection', 'xref-engine-', 'xref-engine-4a', 'xref-projection', 'xref-projection-3', 'xref-engin']) {
      expect(isDurableOf('xref-engine', other), other).toBe(false);
    }
    expect(isDurableOf('xref-projection', 'xref-engine-3')).toBe(false);
  });

  it('spells the KV names in one place', () => {
    expect(kvStream('xref_links')).toBe('KV_xref_links');
    expect(kvSubject('xref_snapshots', snapshotKeys.identifier('cookie:a b'))).toBe('$KV.xref_snapshots.i.cookie.a=20b');
    expect(snapshotKeys.user('db_id:7').startsWith(snapshotKeys.userPrefix)).toBe(true);
    expect(subjects.in('web').startsWith(subjects.inPrefix)).toBe(true);
  });

  it('a filter matches subjects as NATS does: * one token, > one or more at the end', () => {
    expect(subjectMatches('xref.in.>', 'xref.in.http')).toBe(true);
    expect(subjectMatches('xref.in.>', 'xref.in.a.b')).toBe(true);
    expect(subjectMatches('xref.in.>', 'xref.in')).toBe(false);
    expect(subjectMatches('xref.in.>', 'xref.ctl.forget')).toBe(false);
    expect(subjectMatches('xref.*.forget', 'xref.ctl.forget')).toBe(true);
    expect(subjectMatches('xref.*.forget', 'xref.ctl.unlink')).toBe(false);
    expect(subjectMatches('xref.ctl', 'xref.ctl.forget')).toBe(false);
  });
});
