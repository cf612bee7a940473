import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { msgIdHeaderValue } from '../../src/nats/publisher.ts';

describe('Nats-Msg-Id header values', () => {
  it('keeps an id that is safe in a header as it is', () => {
    expect(msgIdHeaderValue('ev-1:db_id.42')).toBe('ev-1:db_id.42');
  });

  it('escapes line breaks, the escape character and spaces at either end', () => {
    expect(msgIdHeaderValue('a\nb')).toBe('a%000ab');
    expect(msgIdHeaderValue(' a ')).toBe('%0020a%0020');
    expect(msgIdHeaderValue('100%')).toBe('100%0025');
  });

  it('never maps two ids to one value, and the value always fits in a header', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', ' ', '%', '\n', '\r', '0', '\t') }), fc.string({ unit: fc.constantFrom('a', ' ', '%', '\n', '\r', '0', '\t') }), (a, b) => {
        const va = msgIdHeaderValue(a);
        if (a !== b) expect(va).not.toBe(msgIdHeaderValue(b));
        expect(va).not.toMatch(/[\r\n]/);
        if (va.length > 0) expect(va.trim()).toBe(va);
      }),
    );
  });
});
