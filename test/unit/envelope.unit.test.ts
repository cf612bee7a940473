import { describe, expect, it } from 'vitest';
import { validateEvent } from '../../src/domain/envelope.ts';
import { InvalidEventError, LimitExceededError } from '../../src/domain/errors.ts';
import { defaultLimits } from '../../src/domain/limits.ts';

const limits = defaultLimits();
const ok = { id: 'e1', ids: { cookie: 'abc' } };

function errorOf(raw: unknown) {
  try {
    validateEvent(raw, limits);
  } catch (error) {
    return error as Error & { field?: string; code?: string };
  }
  throw new Error('expected a validation error');
}

describe('event envelope', () => {
  it('accepts the full envelope (every field of docs/architecture.md)', () => {
    const full = {
      id: '9b1f',
      name: 'pageview',
      timestamp: '2021-01-01T09:15:29.243Z',
      ids: { cookie: 'nice_page_visitor', db_id: '123' },
      category: 'click',
      session_id: 'e2085be5',
      data: { path: '/' },
      context: { user_agent: 'x' },
    };
    expect(validateEvent(full, limits)).toEqual(full);
  });

  it('turns integer identifier values into their decimal string', () => {
    expect(validateEvent({ id: 'e', ids: { db_id: 123 } }, limits).ids).toEqual({ db_id: '123' });
  });

  it.each([
    [{ ids: { cookie: 'a' } }, 'id', /id is required/],
    [{ id: '', ids: { cookie: 'a' } }, 'id', /non-empty string, got ""/],
    [{ id: 'e' }, 'ids', /ids is required/],
    [{ id: 'e', ids: {} }, 'ids', /at least one identifier/],
    [{ id: 'e', ids: { cookie: 1.5 } }, 'ids.cookie', /string or an integer, got 1.5/],
    [{ id: 'e', ids: { cookie: null } }, 'ids.cookie', /got null/],
    [{ id: 'e', ids: { 'bad kind': 'x' } }, 'ids kind', /"bad kind"/],
    [{ ...ok, timestamp: 'yesterday' }, 'timestamp', /ISO 8601.*"yesterday"/],
    [{ ...ok, timestamp: 1609459200000 }, 'timestamp', /1609459200000/],
    [{ ...ok, data: [1] }, 'data', /JSON object/],
    [{ ...ok, name: 3 }, 'name', /got 3/],
    [{ ...ok, colour: 'red' }, 'colour', /not an envelope field/],
    ['just a string', 'event', /JSON object, got "just a string"/],
  ])('rejects %j naming the field and value', (raw, field, message) => {
    const error = errorOf(raw);
    expect(error).toBeInstanceOf(InvalidEventError);
    expect(error.code).toBe('XREF_INVALID_EVENT');
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('enforces the size limits, naming the limit', () => {
    const big = errorOf({ ...ok, data: { blob: 'x'.repeat(33 * 1024) } });
    expect(big).toBeInstanceOf(LimitExceededError);
    expect(big.message).toMatch(/event is \d+ bytes, over the limit of 32768 bytes/);
    const longId = errorOf({ id: 'e', ids: { cookie: 'x'.repeat(257) } });
    expect(longId.field).toBe('ids.cookie');
    expect(longId.message).toMatch(/257 characters, over the limit of 256/);
    const longKind = errorOf({ id: 'e', ids: { ['k'.repeat(65)]: 'x' } });
    expect(longKind.message).toMatch(/over the limit of 64 characters/);
  });
});
