import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateEvent } from '../../src/domain/envelope.ts';
import { XrefError } from '../../src/domain/errors.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { SEGMENT_TYPES, type SegmentRequest, aliasIds, eventTimestamp, parseSegmentTime, segmentToEvent } from '../../src/http/segment.ts';

const limits = defaultLimits();
const RECEIVED = Date.parse('2024-05-01T12:00:00.000Z');
const request: SegmentRequest = { receivedAt: RECEIVED };
const options = { userKind: 'user_id', limits, newId: () => 'generated-id' };
const map = (raw: unknown, type?: (typeof SEGMENT_TYPES)[number], around: SegmentRequest = request, opts = options) => segmentToEvent(raw, type, around, opts);

function failure(run: () => unknown): XrefError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(XrefError);
    return error as XrefError;
  }
  throw new Error('expected an XrefError');
}

describe('Segment → envelope mapping', () => {
  it('track: messageId → id, event → name, properties → data, context → context, both ids', () => {
    const event = map(
      {
        type: 'track',
        messageId: 'm-1',
        event: 'Order Completed',
        anonymousId: 'anon-1',
        userId: 'u-1',
        properties: { total: 12.5 },
        context: { ip: '1.2.3.4' },
        timestamp: '2024-05-01T11:00:00.000Z',
        integrations: { All: true },
        _metadata: { nodeVersion: '20' },
        writeKey: 'secret-key',
      },
      undefined,
    );
    expect(event).toEqual({
      id: 'm-1',
      name: 'Order Completed',
      timestamp: '2024-05-01T11:00:00.000Z',
      ids: { anonymous_id: 'anon-1', user_id: 'u-1' },
      data: { total: 12.5 },
      context: { ip: '1.2.3.4' },
    });
    expect(JSON.stringify(event)).not.toContain('secret-key');
  });

  it('the route type wins over the body type; a batch message needs a known type', () => {
    expect(map({ type: 'identify', event: 'Clicked', userId: 'u' }, 'track').name).toBe('Clicked');
    const error = failure(() => map({ type: 'Track', event: 'x', userId: 'u' }));
    expect(error.field).toBe('type');
    expect(error.message).toContain('must be one of track, identify, page, screen, group, alias');
    expect(failure(() => map({ event: 'x', userId: 'u' })).field).toBe('type');
  });

  it('userId maps to the configured internal kind; integer ids become strings; null or "" is absent', () => {
    expect(map({ event: 'e', userId: 42 }, 'track', request, { ...options, userKind: 'account_id' }).ids).toEqual({ account_id: '42' });
    expect(map({ event: 'e', userId: null, anonymousId: 7 }, 'track').ids).toEqual({ anonymous_id: '7' });
    expect(map({ event: 'e', userId: '', anonymousId: 'a' }, 'track').ids).toEqual({ anonymous_id: 'a' });
  });

  it('a message with neither userId nor anonymousId is refused, naming both fields', () => {
    for (const raw of [{ event: 'e' }, { event: 'e', userId: null, anonymousId: '' }]) {
      const error = failure(() => map(raw, 'track'));
      expect(error.code).toBe('XREF_INVALID_EVENT');
      expect(error.field).toBe('userId');
      expect(error.message).toMatch(/userId or anonymousId is required/);
    }
  });

  it('identify: name identify, traits → data, links anonymousId and userId by carrying both', () => {
    expect(map({ anonymousId: 'a-1', userId: 'u-1', traits: { email: 'x@y.z' } }, 'identify')).toMatchObject({
      name: 'identify',
      ids: { anonymous_id: 'a-1', user_id: 'u-1' },
      data: { email: 'x@y.z' },
    });
    expect(map({ anonymousId: 'a-1' }, 'identify')).toMatchObject({ name: 'identify', ids: { anonymous_id: 'a-1' } });
  });

  it('page and screen: the type is the name, the page name goes to data.name, category to category', () => {
    expect(map({ anonymousId: 'a', name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } }, 'page')).toMatchObject({
      name: 'page',
      category: 'Docs',
      data: { path: '/pricing', name: 'Pricing' },
    });
    expect(map({ anonymousId: 'a' }, 'screen')).not.toHaveProperty('data');
    expect(map({ anonymousId: 'a', name: 'Home' }, 'screen')).toMatchObject({ name: 'screen', data: { name: 'Home' } });
  });

  it('group: name group, groupId in data beside the traits; groupId is required', () => {
    expect(map({ userId: 'u', groupId: 99, traits: { plan: 'pro' } }, 'group')).toMatchObject({ name: 'group', ids: { user_id: 'u' }, data: { plan: 'pro', groupId: '99' } });
    expect(failure(() => map({ userId: 'u' }, 'group')).field).toBe('groupId');
  });

  it('alias: previousId (usually the anonymousId) → anonymous_id, linked to userId', () => {
    expect(map({ previousId: 'anon-9', userId: 'u-9' }, 'alias')).toMatchObject({ name: 'alias', ids: { anonymous_id: 'anon-9', user_id: 'u-9' } });
    expect(map({ previousId: 'anon-9', anonymousId: 'anon-9', userId: 'u-9' }, 'alias').ids).toEqual({ anonymous_id: 'anon-9', user_id: 'u-9' });
  });

  it('alias: a previousId other than the anonymousId is an earlier user id → previous_id (third-party: never merges users)', () => {
    expect(map({ previousId: 'old-user', anonymousId: 'anon-1', userId: 'new-user' }, 'alias').ids).toEqual({
      anonymous_id: 'anon-1',
      previous_id: 'old-user',
      user_id: 'new-user',
    });
    expect(aliasIds('same', 'same', undefined, 'user_id')).toEqual({ user_id: 'same' });
    expect(failure(() => map({ userId: 'u' }, 'alias')).field).toBe('previousId');
    expect(failure(() => map({ previousId: 'p', anonymousId: 'a' }, 'alias')).field).toBe('userId');
  });

  it('messageId absent → a generated id (a random UUID by default)', () => {
    expect(map({ event: 'e', userId: 'u' }, 'track').id).toBe('generated-id');
    const { id } = segmentToEvent({ event: 'e', userId: 'u' }, 'track', request, { userKind: 'user_id', limits });
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(map({ event: 'e', userId: 'u', messageId: 17 }, 'track').id).toBe('17');
  });

  it('the batch context sits under each message context', () => {
    const around = { receivedAt: RECEIVED, context: { library: { name: 'x' }, ip: '1.1.1.1' } };
    expect(map({ type: 'track', event: 'e', userId: 'u', context: { ip: '2.2.2.2' } }, undefined, around).context).toEqual({ library: { name: 'x' }, ip: '2.2.2.2' });
  });

  it('wrong types are refused naming the Segment field and quoting the value', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ event: 'e', userId: { id: 1 } }, 'userId'],
      [{ event: 'e', userId: 1.5 }, 'userId'],
      [{ event: 'e', anonymousId: true }, 'anonymousId'],
      [{ event: 'e', userId: 'u', properties: [1, 2] }, 'properties'],
      [{ event: 'e', userId: 'u', context: 'ctx' }, 'context'],
      [{ event: 42, userId: 'u' }, 'event'],
      [{ userId: 'u' }, 'event'],
      [{ event: 'e', userId: 'u', messageId: { a: 1 } }, 'messageId'],
      [{ event: 'e', userId: 'u', timestamp: 'yesterday' }, 'timestamp'],
      [{ event: 'e', userId: 'u', timestamp: 1714560000000 }, 'timestamp'],
      [{ event: 'e', userId: 'u', sentAt: '2024-13-45T99:00:00Z', originalTimestamp: '2024-05-01T00:00:00Z' }, 'sentAt'],
    ];
    for (const [raw, field] of cases) {
      const error = failure(() => map(raw, 'track'));
      expect(error.field, JSON.stringify(raw)).toBe(field);
      expect(error.message.startsWith(field), error.message).toBe(true);
      expect(error.message).toMatch(/, got /);
    }
    expect(failure(() => map(5, 'track')).message).toBe('value must be a JSON object (a Segment message), got 5');
  });

  it('ids over the length limit are refused with the limit named', () => {
    const error = failure(() => map({ event: 'e', userId: 'x'.repeat(300) }, 'track'));
    expect(error.code).toBe('XREF_LIMIT_EXCEEDED');
    expect(error.field).toBe('userId');
    expect(error.message).toBe('userId is 300 characters, over the limit of 256 characters');
  });
});

describe('event time (timestamp, sentAt, originalTimestamp, receivedAt)', () => {
  const at = (iso: string) => Date.parse(iso);

  it('timestamp when given (normalized to UTC), even beside sentAt and originalTimestamp', () => {
    expect(eventTimestamp({ timestamp: '2024-05-01T13:00:00+02:00', sentAt: '2024-05-01T11:00:05Z', originalTimestamp: '2024-05-01T11:00:00Z' }, request)).toBe(
      '2024-05-01T11:00:00.000Z',
    );
  });

  it('else receivedAt - (sentAt - originalTimestamp): the client clock skew is removed', () => {
    // the client clock is 1 h ahead; the event happened 5 s before the batch was sent
    const msg = { originalTimestamp: '2024-05-01T12:59:55.000Z', sentAt: '2024-05-01T13:00:00.000Z' };
    expect(eventTimestamp(msg, request)).toBe('2024-05-01T11:59:55.000Z');
    // the batch's sentAt serves a message without its own
    expect(eventTimestamp({ originalTimestamp: msg.originalTimestamp }, { ...request, sentAt: msg.sentAt })).toBe('2024-05-01T11:59:55.000Z');
  });

  it('else receivedAt', () => {
    expect(eventTimestamp({}, request)).toBe('2024-05-01T12:00:00.000Z');
    expect(eventTimestamp({ originalTimestamp: '2020-01-01T00:00:00Z' }, request)).toBe('2024-05-01T12:00:00.000Z');
    expect(eventTimestamp({ sentAt: '2020-01-01T00:00:00Z', timestamp: null }, request)).toBe('2024-05-01T12:00:00.000Z');
  });

  it('property: the corrected time keeps the client-side delay between the event and the send', () => {
    const ms = fc.integer({ min: at('2000-01-01T00:00:00Z'), max: at('2100-01-01T00:00:00Z') });
    fc.assert(
      fc.property(ms, fc.integer({ min: -86_400_000, max: 86_400_000 }), fc.integer({ min: 0, max: 3_600_000 }), (receivedAt, skew, delay) => {
        const sentAt = receivedAt + skew; // the client's clock when it sent
        const original = sentAt - delay; // the client's clock when the event happened
        const iso = eventTimestamp({ sentAt: new Date(sentAt).toISOString(), originalTimestamp: new Date(original).toISOString() }, { receivedAt });
        expect(Date.parse(iso)).toBe(receivedAt - delay);
      }),
    );
  });

  it('ISO 8601 forms: a zone offset without colon, no zone (UTC), a date only', () => {
    expect(parseSegmentTime('t', '2024-05-01T12:00:00+0200')).toBe(at('2024-05-01T10:00:00Z'));
    expect(parseSegmentTime('t', '2024-05-01T12:00:00')).toBe(at('2024-05-01T12:00:00Z'));
    expect(parseSegmentTime('t', '2024-05-01')).toBe(at('2024-05-01T00:00:00Z'));
    expect(parseSegmentTime('t', '')).toBeUndefined();
    expect(() => parseSegmentTime('t', '01/05/2024')).toThrow(/t must be an ISO 8601 date-time/);
  });
});

describe('every mapped message is a valid envelope', () => {
  const id = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 2 ** 40 }));
  const message = fc.record(
    {
      type: fc.constantFrom(...SEGMENT_TYPES),
      messageId: fc.string({ minLength: 1, maxLength: 40 }),
      userId: id,
      anonymousId: id,
      previousId: id,
      groupId: id,
      event: fc.string({ minLength: 1, maxLength: 20 }),
      name: fc.string({ maxLength: 20 }),
      category: fc.string({ maxLength: 20 }),
      properties: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      traits: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      timestamp: fc.date({ min: new Date('1990-01-01'), max: new Date('2090-01-01'), noInvalidDate: true }).map((d) => d.toISOString()),
    },
    { requiredKeys: ['type'] },
  );

  it('maps to an event validateEvent accepts, or fails with an XrefError', () => {
    fc.assert(
      fc.property(message, (raw) => {
        let event;
        try {
          event = map(raw);
        } catch (error) {
          expect(error).toBeInstanceOf(XrefError);
          return;
        }
        const stored = JSON.parse(JSON.stringify(event)) as unknown;
        expect(validateEvent(stored, limits)).toEqual(stored);
        if (raw.userId !== undefined && raw.userId !== '') expect(event.ids.user_id).toBe(String(raw.userId));
      }),
      { numRuns: 2000 },
    );
  });
});
