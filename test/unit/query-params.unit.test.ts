/**
 * The query API's parameters as typed queries: filters, inclusive time bounds where a date means
 * the whole UTC day, orders, limits refused (never clamped) above 1000, cursors bound to their
 * list, order and filters, and a 400-shaped error naming the parameter and quoting the value for
 * anything else.
 */
import { describe, expect, it } from 'vitest';
import { XrefError } from '../../src/domain/errors.ts';
import {
  checkIdentifier,
  checkUser,
  encodeCursor,
  parseEventsQuery,
  parseRecordsQuery,
  parseTimeBound,
} from '../../src/projection/query-params.ts';

const context = { internal: ['db_id', 'user_id'] };
const events = (raw: Record<string, unknown>) => parseEventsQuery(raw, context);

/** The XrefError `run` throws: INVALID_ARGUMENT naming `field`. */
function refused(run: () => unknown, field: string): XrefError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(XrefError);
  const error = caught as XrefError;
  expect(error.code).toBe('XREF_INVALID_ARGUMENT');
  expect(error.field).toBe(field);
  expect(error.message).toContain(field);
  return error;
}

describe('GET /v1/events parameters', () => {
  it('no parameters: newest first, 100 per page, no wait', () => {
    expect(events({})).toEqual({ page: { filter: {}, order: 'desc', limit: 100 }, waitMs: 2000 });
  });

  it('every filter, typed; user and identifier split at the first colon', () => {
    const query = events({
      session_id: 's-1',
      category: 'click',
      name: 'pageview',
      source: 'web shop',
      user: 'db_id:42:a',
      identifier: 'cookie:c:1',
      limit: '1000',
      min_seq: '7',
      wait_ms: '10000',
    });
    expect(query).toEqual({
      page: {
        filter: { sessionId: 's-1', category: 'click', name: 'pageview', source: 'web shop', user: { kind: 'db_id', id: '42:a' }, identifier: { kind: 'cookie', value: 'c:1' } },
        order: 'asc',
        limit: 1000,
      },
      minSeq: 7,
      waitMs: 10000,
    });
  });

  it('a session reads ascending unless told; everything else newest first unless order=asc', () => {
    expect(events({ session_id: 's' }).page.order).toBe('asc');
    expect(events({ session_id: 's', order: 'desc' }).page.order).toBe('desc');
    expect(events({ category: 'c' }).page.order).toBe('desc');
    expect(events({ order: 'asc' }).page.order).toBe('asc');
    expect(refused(() => events({ order: 'up' }), 'order').message).toBe('order must be asc or desc, got "up"');
  });

  it('limit: 1 to 1000; above is a 400, never a clamp; 0, negative, fractions and words are 400s', () => {
    expect(events({ limit: '1' }).page.limit).toBe(1);
    expect(refused(() => events({ limit: '1001' }), 'limit').message).toBe('limit must be at most 1000, got "1001": ask for the next page with the cursor of the answer');
    for (const bad of ['0', '-5', '2.5', 'ten', '1e3', ' 5']) expect(refused(() => events({ limit: bad }), 'limit').message).toContain(JSON.stringify(bad));
  });

  it('an unknown parameter, one given twice, or an empty one is refused naming it and quoting the value', () => {
    const unknown = refused(() => events({ sessionid: 'abc' }), 'sessionid');
    expect(unknown.message).toBe('unknown parameter "sessionid" (value "abc"): the parameters are session_id, category, name, source, user, identifier, after, before, order, limit, cursor, min_seq, wait_ms');
    expect(refused(() => events({ category: ['a', 'b'] }), 'category').message).toBe('category must be given once, got 2 values ["a","b"]');
    expect(refused(() => events({ name: '' }), 'name').message).toBe('name must not be empty, got ""');
  });

  it('user must be <internal kind>:<id>; identifier <kind>:<value>', () => {
    expect(refused(() => events({ user: '42' }), 'user').message).toBe('user must be <kind>:<id> (e.g. db_id:42), got "42"');
    expect(refused(() => events({ user: 'db_id:' }), 'user').message).toContain('"db_id:"');
    expect(refused(() => events({ user: 'cookie:c1' }), 'user').message).toMatch(/^the kind of user must be an internal kind \(db_id, user_id\), got "cookie": users are known by their internal ids/);
    expect(refused(() => events({ identifier: 'c1' }), 'identifier').message).toBe('identifier must be <kind>:<value> (e.g. cookie:c-81f2), got "c1"');
    expect(refused(() => events({ identifier: 'a b:c1' }), 'identifier').message).toContain('"a b:c1"');
  });

  it('min_seq: a non-negative integer; wait_ms at most 10000 and only with min_seq', () => {
    expect(events({ min_seq: '0' }).minSeq).toBe(0);
    expect(refused(() => events({ min_seq: '-1' }), 'min_seq').message).toContain('"-1"');
    expect(refused(() => events({ min_seq: '3', wait_ms: '10001' }), 'wait_ms').message).toBe('wait_ms must be at most 10000, got "10001"');
    expect(refused(() => events({ wait_ms: '100' }), 'wait_ms').message).toBe('wait_ms is how long to wait for min_seq, and goes with it: got wait_ms "100" without min_seq');
  });
});

describe('time bounds', () => {
  it('a date alone is the whole UTC day: after from its first millisecond, before through its last', () => {
    expect(parseTimeBound('after', '2021-06-01', 'after')).toBe(Date.parse('2021-06-01T00:00:00.000Z'));
    expect(parseTimeBound('before', '2021-05-20', 'before')).toBe(Date.parse('2021-05-20T23:59:59.999Z'));
    expect(events({ after: '2021-05-20', before: '2021-05-20' }).page.filter).toEqual({ afterMs: Date.parse('2021-05-20T00:00:00.000Z'), beforeMs: Date.parse('2021-05-20T23:59:59.999Z') });
  });

  it('ISO 8601 times with a zone, to the millisecond', () => {
    expect(parseTimeBound('after', '2021-06-01T09:30:00Z', 'after')).toBe(Date.parse('2021-06-01T09:30:00Z'));
    expect(parseTimeBound('before', '2021-06-01T09:30:00.123+02:00', 'before')).toBe(Date.parse('2021-06-01T07:30:00.123Z'));
    expect(parseTimeBound('before', '2021-06-01T09:30Z', 'before')).toBe(Date.parse('2021-06-01T09:30:00Z'));
  });

  it('anything else is refused naming the bound: no zone, no such day or time, words, epoch numbers', () => {
    for (const bad of ['2021-06-01T09:30:00', '2021-02-30', '2021-13-01', '2021-06-01T24:00:00Z', 'yesterday', '1622505600000', '2021-6-1']) {
      expect(refused(() => events({ after: bad }), 'after').message).toContain(JSON.stringify(bad));
    }
    expect(refused(() => events({ before: 'soon' }), 'before').message).toBe(
      'before must be an ISO 8601 time with a zone (2021-06-01T09:30:00Z) or a date (2021-06-01, the whole day in UTC), got "soon"',
    );
  });

  it('after later than before is refused', () => {
    expect(refused(() => events({ after: '2021-06-02', before: '2021-06-01' }), 'after').message).toBe('after must not be later than before, got after "2021-06-02" and before "2021-06-01"');
  });
});

describe('cursors', () => {
  const first = events({ category: 'click', after: '2024-01-01' });
  const cursor = encodeCursor('events', first.page, { timeMs: 1_700_000_000_000, seq: 41 });

  it('is opaque base64url and gives back the keyset it was made at', () => {
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(events({ category: 'click', after: '2024-01-01', cursor }).page.from).toEqual({ timeMs: 1_700_000_000_000, seq: 41 });
    // the limit may change from page to page
    expect(events({ category: 'click', after: '2024-01-01', cursor, limit: '7' }).page).toMatchObject({ from: { seq: 41 }, limit: 7 });
  });

  it('with other filters, another order or on another list it is refused naming cursor', () => {
    expect(refused(() => events({ category: 'form', after: '2024-01-01', cursor }), 'cursor').message).toMatch(/was made for other filters: page on with the filters it was made for, or start again without a cursor$/);
    expect(refused(() => events({ category: 'click', cursor }), 'cursor').message).toContain('other filters');
    expect(refused(() => events({ category: 'click', after: '2024-01-01', order: 'asc', cursor }), 'cursor').message).toMatch(/was made for order=desc, not order=asc/);
    expect(refused(() => parseRecordsQuery('errors', { cursor }), 'cursor').message).toMatch(/pages \/v1\/events, not \/v1\/errors$/);
  });

  it('a cursor that is not one is refused quoting it', () => {
    for (const bad of ['abc', 'not a cursor', Buffer.from('{"t":1}').toString('base64url'), Buffer.from('[1,2]').toString('base64url')]) {
      expect(refused(() => events({ cursor: bad }), 'cursor').message).toBe(`cursor must be the "next" of an earlier answer, unchanged, got ${JSON.stringify(bad)}`);
    }
  });

  it('the same filters built in another key order make the same cursor', () => {
    const a = encodeCursor('events', { filter: { category: 'c', name: 'n' }, order: 'asc', limit: 5 }, { timeMs: 1, seq: 1 });
    const b = encodeCursor('events', { filter: { name: 'n', category: 'c' }, order: 'asc', limit: 9 }, { timeMs: 1, seq: 1 });
    expect(a).toBe(b);
  });
});

describe('record lists: /v1/unmatched, /v1/audit, /v1/errors', () => {
  it('reason, kind, bounds, order (newest first by default), limit', () => {
    expect(parseRecordsQuery('unmatched', {})).toEqual({ filter: {}, order: 'desc', limit: 100 });
    expect(parseRecordsQuery('audit', { reason: 'relink', kind: 'cookie', after: '2024-01-02', order: 'asc', limit: '5' })).toEqual({
      filter: { reason: 'relink', kind: 'cookie', afterMs: Date.parse('2024-01-02T00:00:00Z') },
      order: 'asc',
      limit: 5,
    });
    expect(parseRecordsQuery('errors', { kind: 'engine' }).filter).toEqual({ kind: 'engine' });
  });

  it('refuses what is not a filter of theirs', () => {
    expect(refused(() => parseRecordsQuery('errors', { kind: 'cookie' }), 'kind').message).toBe('kind of /v1/errors is where the input was rejected and must be one of http, publish, engine, got "cookie"');
    expect(refused(() => parseRecordsQuery('unmatched', { kind: 'a.b' }), 'kind').message).toContain('"a.b"');
    expect(refused(() => parseRecordsQuery('audit', { reason: 'no such' }), 'reason').message).toContain('"no such"');
    expect(refused(() => parseRecordsQuery('audit', { session_id: 's' }), 'session_id').message).toMatch(/^unknown parameter "session_id" \(value "s"\): the parameters are reason, kind, after, before, order, limit, cursor$/);
    expect(refused(() => parseRecordsQuery('errors', { limit: '1001' }), 'limit').message).toContain('at most 1000');
  });
});

describe('path parts', () => {
  it('a user is an internal kind and an id', () => {
    expect(checkUser('kind', 'db_id', '42', context)).toEqual({ kind: 'db_id', id: '42' });
    expect(refused(() => checkUser('kind', 'cookie', 'c1', context), 'kind').message).toMatch(/^kind must be an internal kind \(db_id, user_id\), got "cookie"/);
  });

  it('an identifier is a kind name and a value', () => {
    expect(checkIdentifier('cookie', 'a/b c')).toEqual({ kind: 'cookie', value: 'a/b c' });
    expect(refused(() => checkIdentifier('coo kie', 'x'), 'kind').message).toBe('kind must match [A-Za-z0-9_-]+, got "coo kie"');
    expect(refused(() => checkIdentifier('cookie', ''), 'value').message).toBe('value must not be empty, got ""');
  });
});
