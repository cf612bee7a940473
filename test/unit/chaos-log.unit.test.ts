import { describe, expect, it } from 'vitest';
import { validateEvent } from '../../src/domain/envelope.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { groupEvents } from '../../src/group.ts';
import { chaosLog } from '../helpers/chaos-log.ts';

const count = (values: string[]) => {
  const out: Record<string, number> = {};
  for (const value of values) out[value] = (out[value] ?? 0) + 1;
  return out;
};

describe('chaosLog', () => {
  const started = performance.now();
  const log = chaosLog({ seed: 1 });
  const report = groupEvents(log.events, log.config);
  const elapsed = performance.now() - started;

  it('is deterministic: the same seed gives the same log, another seed another one', () => {
    const again = chaosLog({ seed: 1 });
    expect(JSON.stringify(again)).toBe(JSON.stringify(log));
    expect(again).toEqual(log);
    const other = chaosLog({ seed: 2 });
    expect(other.events).not.toEqual(log.events);
    expect(other.config).toEqual(log.config);
  });

  it('has the default size and scales with the options', () => {
    expect(log.events).toHaveLength(22_000);
    expect(chaosLog({ seed: 3, events: 3_000, users: 80 }).events).toHaveLength(3_000);
  });

  it('holds only valid envelopes, timestamps included', () => {
    const limits = defaultLimits();
    const bad: unknown[] = [];
    for (const raw of log.events) {
      try {
        validateEvent(raw, limits);
        if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(raw.timestamp as string)) bad.push(raw);
      } catch (error) {
        bad.push({ raw, error });
      }
    }
    expect(bad).toEqual([]);
    expect(report.rejected).toEqual([]);
  });

  it('repeats event ids, carries integer ids and runs some clocks late', () => {
    const ids = count(log.events.map((e) => e.id as string));
    expect(Object.values(ids).filter((n) => n > 1).length).toBeGreaterThan(100);
    const byId = new Map<string, string[]>();
    for (const event of log.events) byId.set(event.id as string, [...(byId.get(event.id as string) ?? []), JSON.stringify(event)]);
    const repeated = [...byId.values()].filter((list) => list.length > 1);
    expect(repeated.some((list) => new Set(list).size === 1)).toBe(true); // redelivered as is
    expect(repeated.some((list) => new Set(list).size > 1)).toBe(true); // an id reused for other content
    expect(log.events.some((e) => typeof (e.ids as Record<string, unknown>).db_id === 'number')).toBe(true);
    const times = log.events.map((e) => Date.parse(e.timestamp as string));
    const late = times.filter((t, i) => i > 0 && t < times[i - 1]!).length;
    expect(late).toBeGreaterThan(log.events.length * 0.02);
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(2 * 24 * 3_600_000);
  });

  it('spreads over about 2.3k third-party identifiers of three kinds and ~560 users', () => {
    const identifiers = new Set<string>();
    for (const event of log.events) {
      for (const [kind, value] of Object.entries(event.ids as Record<string, unknown>)) if (kind !== 'db_id') identifiers.add(`${kind}:${value}`);
    }
    expect(identifiers.size).toBeGreaterThan(2_000);
    expect(identifiers.size).toBeLessThan(2_600);
    expect(Object.keys(count([...identifiers].map((key) => key.split(':')[0]!))).sort()).toEqual(['anonymous_id', 'cookie', 'device']);
    expect(Object.keys(report.groups.db_id ?? {}).length).toBeGreaterThan(500);
  });

  it('shows every hard case when grouped with its config', () => {
    const unmatched = count(report.unmatched.map((u) => u.reason));
    for (const reason of ['overflow', 'expired', 'junk', 'unlinked']) expect(unmatched[reason], reason).toBeGreaterThan(0);
    const audit = count(report.audit.map((a) => (a.cause === undefined ? a.reason : `${a.reason}:${a.cause}`)));
    for (const reason of ['link', 'relink', 'conflict', 'refused:cap', 'refused:junk']) expect(audit[reason], reason).toBeGreaterThan(0);
    // a second user's login with a cookie keeps it with the first one (relink `first` for cookies)
    expect(report.audit.some((a) => a.reason === 'conflict' && a.identifier.kind === 'cookie')).toBe(true);
    // devices move to the newest user (the default `latest`)
    expect(report.audit.some((a) => a.reason === 'relink' && a.identifier.kind === 'device')).toBe(true);
    expect(report.unmatched.length).toBeLessThan(log.events.length * 0.15);
  });

  it('has anonymous activity and chains that reach their user once a login comes', () => {
    // where each identifier was first seen beside a user's db_id
    const loggedIn = new Map<string, number>();
    log.events.forEach((event, i) => {
      const ids = event.ids as Record<string, unknown>;
      if (ids.db_id === undefined) return;
      for (const [kind, value] of Object.entries(ids)) {
        const key = `${ids.db_id}|${kind}:${value}`;
        if (kind !== 'db_id' && !loggedIn.has(key)) loggedIn.set(key, i);
      }
    });
    const position = new Map<string, number>();
    log.events.forEach((event, i) => position.has(event.id as string) || position.set(event.id as string, i));
    const flushed = { alone: 0, chained: 0 };
    for (const [user, kinds] of Object.entries(report.groups.db_id ?? {})) {
      for (const [kind, values] of Object.entries(kinds)) {
        if (kind === 'db_id') continue;
        for (const events of Object.values(values)) {
          for (const event of events) {
            const keys = Object.entries(event.ids).map(([k, v]) => `${k}:${v}`);
            const login = Math.min(...keys.map((key) => loggedIn.get(`${user}|${key}`) ?? Infinity));
            if (event.ids.db_id === undefined && Number.isFinite(login) && position.get(event.id)! < login) flushed[keys.length > 1 ? 'chained' : 'alone']++;
          }
        }
      }
    }
    expect(flushed.alone).toBeGreaterThan(500);
    expect(flushed.chained).toBeGreaterThan(100);
  });

  it('shows every hard case at a small size too', () => {
    const small = chaosLog({ seed: 4, events: 3_000, users: 80 });
    const grouped = groupEvents(small.events, small.config);
    expect(new Set(grouped.unmatched.map((u) => u.reason))).toEqual(new Set(['overflow', 'expired', 'junk', 'unlinked']));
    expect(new Set(grouped.audit.map((a) => (a.cause === undefined ? a.reason : `${a.reason}:${a.cause}`)))).toEqual(
      new Set(['link', 'relink', 'conflict', 'refused:cap', 'refused:junk']),
    );
  });

  it('generates and groups the default size quickly', () => {
    expect(elapsed).toBeLessThan(3_000);
  });
});
