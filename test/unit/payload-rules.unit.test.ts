import { describe, expect, it } from 'vitest';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { InvalidConfigError, XrefError } from '../../src/domain/errors.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { PayloadError, payloadRules } from '../../src/domain/payload-rules.ts';
import { groupEvents } from '../../src/group.ts';
import { StoredInput } from '../../src/runtime/input-log.ts';
import { decodeInput, inputDecoder } from '../../src/service/input.ts';

const PRICE = { type: 'object', required: ['price'], properties: { price: { type: 'number' } } };
const SKU = { type: 'object', required: ['sku'], properties: { sku: { type: 'string', minLength: 3 } } };

const rules = (config: ConfigInput) => payloadRules(resolveConfig(config));
const ev = (extra: Partial<XrefEvent> = {}): XrefEvent => ({ id: 'e1', ids: { cookie: 'c1' }, ...extra });

/** What `check` threw, or undefined. */
function refusal(fn: () => void): PayloadError | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(PayloadError);
    return error as PayloadError;
  }
}

describe('payload rules: schemas per event type', () => {
  it('checks data against the schema of its name; an event without data is checked as {}', () => {
    const r = rules({ schemas: { purchase: PRICE } });
    expect(refusal(() => r.check(ev({ name: 'purchase', data: { price: 12 } })))).toBeUndefined();
    const wrongType = refusal(() => r.check(ev({ name: 'purchase', data: { price: '12' } })))!;
    expect(wrongType.code).toBe('XREF_SCHEMA_VIOLATION');
    expect(wrongType.field).toBe('data.price');
    expect(wrongType.value).toBe('12');
    expect(wrongType.message).toBe('data.price must be number, got "12" (schema purchase)');
    const missing = refusal(() => r.check(ev({ name: 'purchase' })))!;
    expect(missing.field).toBe('data.price');
    expect(missing.message).toBe('data.price is required, got undefined (schema purchase)');
  });

  it('the more specific key wins: category/name over name', () => {
    const r = rules({ schemas: { purchase: PRICE, 'shop/purchase': SKU } });
    expect(r.schemaKey({ name: 'purchase', category: 'shop' })).toBe('shop/purchase');
    expect(r.schemaKey({ name: 'purchase', category: 'other' })).toBe('purchase');
    expect(r.schemaKey({ name: 'purchase' })).toBe('purchase');
    expect(r.schemaKey({ category: 'shop' })).toBeUndefined();
    // in shop, the sku schema applies (and not the price one)
    expect(refusal(() => r.check(ev({ name: 'purchase', category: 'shop', data: { sku: 'abc' } })))).toBeUndefined();
    expect(refusal(() => r.check(ev({ name: 'purchase', category: 'shop', data: { price: 1 } })))!.message).toBe(
      'data.sku is required, got undefined (schema shop/purchase)',
    );
    expect(refusal(() => r.check(ev({ name: 'purchase', category: 'web', data: { sku: 'abc' } })))!.message).toMatch(/\(schema purchase\)$/);
  });

  it('names nested fields by a dotted path, additional properties by their name, enums by their values', () => {
    const r = rules({
      schemas: {
        cart: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: { 'q/ty': { type: 'integer', minimum: 1 } } } } } },
        closed: { type: 'object', additionalProperties: false, properties: { a: {} } },
        colour: { type: 'object', properties: { c: { enum: ['red', 'blue'] } } },
      },
    });
    const nested = refusal(() => r.check(ev({ name: 'cart', data: { items: [{ 'q/ty': 2 }, { 'q/ty': 0 }] } })))!;
    expect([nested.field, nested.value, nested.message]).toEqual(['data.items.1.q/ty', 0, 'data.items.1.q/ty must be >= 1, got 0 (schema cart)']);
    const extra = refusal(() => r.check(ev({ name: 'closed', data: { a: 1, b: [2] } })))!;
    expect([extra.field, extra.value, extra.message]).toEqual(['data.b', [2], 'data.b is not allowed (additionalProperties), got [2] (schema closed)']);
    expect(refusal(() => r.check(ev({ name: 'colour', data: { c: 'green' } })))!.message).toBe('data.c must be one of ["red","blue"], got "green" (schema colour)');
  });

  it('unknownTypes: accept (default) lets a type without a schema through; reject refuses it, naming the known types', () => {
    expect(refusal(() => rules({ schemas: { purchase: PRICE } }).check(ev({ name: 'pageview' })))).toBeUndefined();
    const strict = rules({ schemas: { purchase: PRICE, 'shop/refund': true }, unknownTypes: 'reject' });
    const unknown = refusal(() => strict.check(ev({ name: 'pageview' })))!;
    expect([unknown.code, unknown.field, unknown.value]).toEqual(['XREF_UNKNOWN_EVENT_TYPE', 'name', 'pageview']);
    expect(unknown.message).toBe('name "pageview" has no schema, and unknownTypes is "reject" (known: purchase, shop/refund)');
    expect(refusal(() => strict.check(ev({ name: 'refund', category: 'web' })))!.message).toMatch(/^name "refund" \(category "web"\) has no schema/);
    expect(refusal(() => strict.check(ev({})))!.message).toBe('name is missing, and unknownTypes "reject" takes only events with a schema (known: purchase, shop/refund)');
    expect(refusal(() => strict.check(ev({ name: 'refund', category: 'shop' })))).toBeUndefined();
    expect(refusal(() => rules({ unknownTypes: 'reject' }).check(ev({ name: 'x' })))!.message).toMatch(/\(known: none\)$/);
  });

  it('a schema that does not compile is a config error naming schemas.<key> and the reason', () => {
    for (const [schema, reason] of [
      [{ type: 'objekt' }, /data\/type must be equal to one of the allowed values/],
      [{ type: 'object', properties: { a: { typo: 1 } } }, /unknown keyword: "typo"/],
      [{ type: 'string', pattern: '(' }, /Invalid regular expression/],
    ] as const) {
      expect(() => resolveConfig({ schemas: { fine: PRICE, 'shop/broken': schema } })).toThrow(InvalidConfigError);
      expect(() => resolveConfig({ schemas: { fine: PRICE, 'shop/broken': schema } })).toThrow(/^config schemas\.shop\/broken is not a valid JSON Schema \(/);
      expect(() => resolveConfig({ schemas: { 'shop/broken': schema } })).toThrow(reason);
    }
  });

  it('compiles once per config, and leaves the caller\'s schema objects unfrozen', () => {
    const mine = structuredClone(PRICE);
    const config = resolveConfig({ schemas: { purchase: mine } });
    expect(payloadRules(config)).toBe(payloadRules(config));
    expect(Object.isFrozen(mine)).toBe(false);
    expect(Object.isFrozen(config.schemas.purchase)).toBe(true);
  });
});

describe('payload rules: the future check', () => {
  const arrival = Date.parse('2024-05-01T12:00:00.000Z');
  const at = (ms: number) => ev({ timestamp: new Date(arrival + ms).toISOString() });

  it('accepts a timestamp up to maxFutureMs ahead of the arrival, refuses 1 ms more, saying by how much', () => {
    const r = rules({ maxFutureMs: 60_000 });
    expect(refusal(() => r.check(at(60_000), arrival))).toBeUndefined();
    expect(refusal(() => r.check(at(59_999), arrival))).toBeUndefined();
    expect(refusal(() => r.check(at(-86_400_000), arrival))).toBeUndefined();
    const ahead = refusal(() => r.check(at(60_001), arrival))!;
    expect([ahead.code, ahead.field, ahead.value]).toEqual(['XREF_FUTURE_TIMESTAMP', 'timestamp', '2024-05-01T12:01:00.001Z']);
    expect(ahead.message).toBe('timestamp "2024-05-01T12:01:00.001Z" is 60001 ms ahead of its arrival, over maxFutureMs 60000');
  });

  it('defaults to 5 minutes; no arrival (offline) or no timestamp: nothing to check', () => {
    const r = rules({});
    expect(refusal(() => r.check(at(300_000), arrival))).toBeUndefined();
    expect(refusal(() => r.check(at(300_001), arrival))!.code).toBe('XREF_FUTURE_TIMESTAMP');
    expect(refusal(() => r.check(at(10 * 365 * 86_400_000)))).toBeUndefined();
    expect(refusal(() => r.check(ev(), arrival))).toBeUndefined();
  });
});

describe('the offline Grouper applies schemas and unknownTypes (not the future check)', () => {
  it('reports refused events by index and never groups them', () => {
    const events = [
      { id: 'a', name: 'purchase', ids: { user_id: 'u1', cookie: 'c1' }, data: { price: 3 } },
      { id: 'b', name: 'purchase', ids: { user_id: 'u1' }, data: { price: 'free' } },
      { id: 'c', name: 'pageview', ids: { user_id: 'u1' } },
      { id: 'd', name: 'purchase', ids: { user_id: 'u1' }, timestamp: '2999-01-01T00:00:00Z', data: { price: 1 } },
    ];
    const report = groupEvents(events, { schemas: { purchase: PRICE }, unknownTypes: 'reject' });
    expect(report.rejected.map((r) => [r.index, r.error.code, r.error.field])).toEqual([
      [1, 'XREF_SCHEMA_VIOLATION', 'data.price'],
      [2, 'XREF_UNKNOWN_EVENT_TYPE', 'name'],
    ]);
    expect(report.rejected[0]!.error).toBeInstanceOf(XrefError);
    const grouped = Object.values(report.groups.user_id!.u1!).flatMap((byValue) => Object.values(byValue).flat());
    expect(grouped.map((e) => e.id).sort()).toEqual(['a', 'd']);
  });
});

describe('decodeInput with the payload rules (the engine, and any reader of XREF_IN)', () => {
  const published = Date.parse('2024-05-01T12:00:00.000Z');
  const input = (seq: number, value: unknown) => new StoredInput(seq, 'xref.in.web', Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), published);
  const decode = inputDecoder(resolveConfig({ schemas: { purchase: PRICE }, maxFutureMs: 1000 }));

  it('accepts what the rules accept, with its time', () => {
    const event = { id: 'ok', name: 'purchase', ids: { c: '1' }, data: { price: 1 } };
    // nothing normalised: the message's own text comes with it (the read model stores it as it is)
    expect(decode(input(1, event))).toEqual({ event, time: published, json: JSON.stringify(event) });
    // an integer identifier becomes its string: the event is not the text any more
    expect(decode(input(3, { ...event, ids: { c: 1 } }))).toEqual({ event, time: published });
    expect(decode(input(2, { id: 'soon', ids: { c: '1' }, timestamp: '2024-05-01T12:00:01.000Z' }))).toMatchObject({ time: published + 1000 });
  });

  it('a violation becomes an error record on xref.errors.<reason>, id rejectedId(seq), at the publish time', () => {
    const raw = { id: 'bad', name: 'purchase', ids: { c: '1' }, data: { price: 'x' } };
    const decoded = decode(input(7, raw));
    if (!('rejected' in decoded)) throw new Error('expected a rejection');
    expect(decoded.rejected.subject).toBe('xref.errors.schema_violation');
    expect(decoded.rejected.msgId).toBe('in-7:rejected');
    expect(JSON.parse(decoded.rejected.payload)).toEqual(decoded.record);
    expect(decoded.record).toEqual({
      id: 'in-7:rejected',
      reason: 'schema_violation',
      code: 'XREF_SCHEMA_VIOLATION',
      message: 'data.price must be number, got "x" (schema purchase)',
      field: 'data.price',
      value: '"x"',
      origin: 'engine',
      source: 'xref.in.web',
      at: '2024-05-01T12:00:00.000Z',
      raw: JSON.stringify(raw),
      seq: 7,
      eventId: 'bad',
    });
  });

  it('a timestamp too far ahead of the publish time, bad JSON, a bad envelope: each its reason', () => {
    const reason = (value: unknown) => {
      const decoded = decode(input(3, value));
      return 'rejected' in decoded ? [decoded.record.reason, decoded.record.field, decoded.rejected.subject] : 'accepted';
    };
    expect(reason({ id: 'f', ids: { c: '1' }, timestamp: '2024-05-01T12:00:01.001Z' })).toEqual(['future_timestamp', 'timestamp', 'xref.errors.future_timestamp']);
    expect(reason('{"id":')).toEqual(['invalid_json', undefined, 'xref.errors.invalid_json']);
    expect(reason({ id: 'x', ids: {} })).toEqual(['invalid_event', 'ids', 'xref.errors.invalid_event']);
    // without rules (no config given), only the envelope
    expect('event' in decodeInput(input(4, { id: 'f', ids: { c: '1' }, timestamp: '2999-01-01T00:00:00Z' }), defaultLimits())).toBe(true);
  });
});
