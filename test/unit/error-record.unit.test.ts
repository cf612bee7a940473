import { describe, expect, it } from 'vitest';
import { ErrorBudget } from '../../src/domain/error-budget.ts';
import { RECORD_LIMITS, cut, errorRecord, reasonOf } from '../../src/domain/error-record.ts';
import { ERROR_CATALOGUE, type ErrorCode, InvalidEventError, LimitExceededError, XrefError } from '../../src/domain/errors.ts';

const context = { id: 'r1', origin: 'http', source: '/v1/events', atMs: Date.parse('2024-05-01T12:00:00.000Z'), index: 2 } as const;

describe('error records', () => {
  it('take their reason from the code: without XREF_, lower case', () => {
    expect(reasonOf('XREF_SCHEMA_VIOLATION')).toBe('schema_violation');
    expect(reasonOf('XREF_FUTURE_TIMESTAMP')).toBe('future_timestamp');
    expect(reasonOf('XREF_INVALID_JSON')).toBe('invalid_json');
    for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) expect(reasonOf(code)).toMatch(/^[a-z_]+$/);
  });

  it('hold the code, message, field, the bad value from the candidate, origin, source, time, raw, index and event id', () => {
    const raw = { id: 'e1', ids: { cookie: ['a'] } };
    expect(errorRecord(new InvalidEventError('ids.cookie', ['a'], 'must be a string or an integer'), { ...context, raw })).toStrictEqual({
      id: 'r1',
      reason: 'invalid_event',
      code: 'XREF_INVALID_EVENT',
      message: 'ids.cookie must be a string or an integer, got ["a"]',
      field: 'ids.cookie',
      value: '["a"]',
      origin: 'http',
      source: '/v1/events',
      at: '2024-05-01T12:00:00.000Z',
      raw: JSON.stringify(raw),
      index: 2,
      eventId: 'e1',
    });
  });

  it('leave out what is not known: no field, no value, no raw, no event id', () => {
    expect(errorRecord(new XrefError('XREF_INVALID_JSON', 'invalid JSON (x)'), { ...context, index: undefined })).toStrictEqual({
      id: 'r1',
      reason: 'invalid_json',
      code: 'XREF_INVALID_JSON',
      message: 'invalid JSON (x)',
      origin: 'http',
      source: '/v1/events',
      at: '2024-05-01T12:00:00.000Z',
    });
    // the field "event" is the whole event: its value is the raw input, not repeated
    const record = errorRecord(new LimitExceededError('event', 40_000, 32_768, 'bytes'), { ...context, raw: { id: 'big', ids: { c: '1' } } });
    expect(record.field).toBe('event');
    expect(record.value).toBeUndefined();
    expect(record.eventId).toBe('big');
  });

  it('cut the bad value at 200 characters and the raw input at 2 KB, saying it was cut', () => {
    const long = 'x'.repeat(5000);
    const record = errorRecord(new InvalidEventError('name', long, 'must be short'), { ...context, raw: { id: 'e', name: long } });
    expect(record.value).toBe(`"${'x'.repeat(RECORD_LIMITS.valueChars - 1)}…`);
    expect(record.raw!.length).toBeLessThan(RECORD_LIMITS.rawChars + 60);
    expect(record.raw).toMatch(/… \[cut: 5020 characters in all\]$/);
    expect(record.raw!.startsWith('{"id":"e","name":"xxx')).toBe(true);
    // raw text is kept as it was received
    expect(errorRecord(new XrefError('XREF_INVALID_JSON', 'bad'), { ...context, rawText: '{"id": 1,' }).raw).toBe('{"id": 1,');
    expect(errorRecord(new XrefError('XREF_INVALID_EVENT', 'bad'), { ...context, raw: 'a string item' }).raw).toBe('"a string item"');
    expect(cut('abc', 3)).toBe('abc');
    expect(cut('abcd', 3)).toBe('abc… [cut: 4 characters in all]');
  });

  it('read a value nested too deeply to print without failing', () => {
    let deep: unknown = {};
    for (let i = 0; i < 20_000; i++) deep = { a: deep };
    const record = errorRecord(new InvalidEventError('event', deep, 'must be readable'), { ...context, raw: deep });
    expect(record.raw).toBe('{an object too deep to print}');
  });
});

describe('error budget (storm bounds)', () => {
  it('keeps N per reason per second in full, counts the rest, and starts again each second', () => {
    const budget = new ErrorBudget(3);
    const second = 1_714_564_800_000;
    const kept = (reason: string, at: number, n: number) => Array.from({ length: n }, () => budget.keep(reason, at)).filter(Boolean).length;
    expect(kept('schema_violation', second, 5)).toBe(3);
    expect(kept('invalid_event', second + 999, 2)).toBe(2); // another reason: its own allowance
    expect(kept('schema_violation', second + 999, 1)).toBe(0);
    expect(kept('schema_violation', second + 1000, 4)).toBe(3); // a new second
    expect(budget.total).toEqual({ schema_violation: 10, invalid_event: 2 });
    expect(budget.dropped).toEqual({ schema_violation: 4 });
  });

  it('is a pure function of the (reason, time) sequence: the same inputs keep the same records', () => {
    const times = Array.from({ length: 500 }, (_, i) => 1_700_000_000_000 + Math.floor(i / 7) * 250);
    const run = () => {
      const budget = new ErrorBudget(5);
      return times.map((t, i) => budget.keep(i % 3 === 0 ? 'a' : 'b', t));
    };
    expect(run()).toEqual(run());
  });
});
