import { describe, expect, it } from 'vitest';
import { defaultConfig, resolveConfig } from '../../src/domain/config.ts';
import { InvalidConfigError } from '../../src/domain/errors.ts';

describe('config', () => {
  it('has documented defaults from one function, frozen', () => {
    const config = defaultConfig();
    expect(config).toEqual({
      internal: ['db_id', 'user_id'],
      relink: {},
      maxIdsPerUser: {},
      buffer: { maxEvents: 1000, ttlMs: 7 * 24 * 3600 * 1000 },
      junkValues: [],
      junkPattern: undefined,
      schemas: {},
      unknownTypes: 'accept',
      maxFutureMs: 300_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.buffer)).toBe(true);
    expect(() => {
      (config.internal as string[]).push('x');
    }).toThrow();
  });

  it('accepts every key of the config file', () => {
    const config = resolveConfig({
      internal: ['account'],
      relink: { cookie: 'first' },
      maxIdsPerUser: { device_id: 3 },
      buffer: { maxEvents: 10 },
      junkValues: ['test'],
      junkPattern: '^tmp-',
      schemas: { purchase: { type: 'object' } },
      unknownTypes: 'reject',
      maxFutureMs: 0,
    });
    expect(config.internal).toEqual(['account']);
    expect(config.buffer).toEqual({ maxEvents: 10, ttlMs: 7 * 24 * 3600 * 1000 });
  });

  it.each([
    [{ colour: 1 }, /config colour is not a config key/],
    [{ internal: [] }, /config internal must be a non-empty array/],
    [{ internal: ['a.b'] }, /config internal\[0\] must match/],
    [{ relink: { cookie: 'newest' } }, /config relink.cookie must be "latest" or "first", got "newest"/],
    [{ maxIdsPerUser: { cookie: 0 } }, /config maxIdsPerUser.cookie must be a positive integer, got 0/],
    [{ buffer: { maxEvents: -1 } }, /config buffer.maxEvents must be a positive integer, got -1/],
    [{ buffer: { size: 3 } }, /config buffer.size is not a buffer key/],
    [{ junkValues: 'null' }, /config junkValues must be an array of strings/],
    [{ junkPattern: '(' }, /config junkPattern is not a valid regular expression/],
    [{ schemas: [] }, /config schemas must be an object of event type/],
    [{ schemas: { '': {} } }, /config schemas key must be an event name, or category\/name, got ""/],
    [{ schemas: { purchase: 'object' } }, /config schemas.purchase must be a JSON Schema \(an object, or true \/ false\), got "object"/],
    [{ unknownTypes: 'drop' }, /config unknownTypes must be "accept" or "reject", got "drop"/],
    [{ maxFutureMs: -1 }, /config maxFutureMs must be a non-negative integer \(milliseconds\), got -1/],
    [[], /config \(root\) must be a JSON object/],
  ])('rejects %j with a clear message', (input, message) => {
    expect(() => resolveConfig(input)).toThrow(InvalidConfigError);
    expect(() => resolveConfig(input)).toThrow(message);
  });
});
