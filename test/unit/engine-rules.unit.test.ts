import { describe, expect, it } from 'vitest';
import { groupEvents } from '../../src/group.ts';
import { DAY, ev, idsOf } from '../helpers/events.ts';

const permutations = <T>(items: T[]): T[][] =>
  items.length <= 1 ? [items] : items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));

describe('the pygrouper example', () => {
  const e0 = ev('e0', { db_id: 123, cookie: 'X' });
  const e1 = ev('e1', { cookie: 'X' });
  const e2 = ev('e2', { cookie: 'X' });

  it.each(permutations([e0, e1, e2]).map((order) => [order.map((e) => e.id).join(','), order]))('groups %s the same way', (_, order) => {
    const { groups, unmatched } = groupEvents(order);
    const sorted = (ids: string[]) => [...ids].sort();
    expect(Object.keys(groups)).toEqual(['db_id']);
    expect(Object.keys(groups.db_id!)).toEqual(['123']);
    const user = groups.db_id!['123']!;
    expect(sorted(user.cookie!.X!.map((e) => e.id))).toEqual(['e1', 'e2']);
    expect(user.db_id!['123']!.map((e) => e.id)).toEqual(['e0']);
    expect(unmatched).toEqual([]);
  });

  it('keeps log order inside a list, flushed events included', () => {
    const { groups } = groupEvents([e1, e0, e2]);
    expect(groups.db_id!['123']!.cookie!.X!.map((e) => e.id)).toEqual(['e1', 'e2']);
  });
});

describe('identity rules', () => {
  it('link: an event with an internal id links its third-party ids and is grouped under the user', () => {
    const { groups, audit } = groupEvents([ev('l', { user_id: 'u1', cookie: 'c', device_id: 'd' }), ev('a', { device_id: 'd' })]);
    expect(idsOf(groups)).toEqual({ 'user_id:u1': { 'user_id:u1': ['l'], 'device_id:d': ['a'] } });
    expect(audit.filter((a) => a.reason === 'link').map((a) => `${a.identifier.kind}:${a.identifier.value}`)).toEqual(['cookie:c', 'device_id:d']);
  });

  it('buffer: unlinked events wait and are flushed to the user once, in log order', () => {
    const log = [ev('a', { cookie: 'c' }), ev('b', { cookie: 'c' }), ev('l', { db_id: 1, cookie: 'c' }), ev('l2', { db_id: 1, cookie: 'c' })];
    const { groups, unmatched } = groupEvents(log);
    expect(idsOf(groups)).toEqual({ 'db_id:1': { 'cookie:c': ['a', 'b'], 'db_id:1': ['l', 'l2'] } });
    expect(unmatched).toEqual([]);
  });

  it('bounds, count: a full buffer releases its oldest event to unmatched as overflow', () => {
    const log = [ev('a', { cookie: 'c' }), ev('b', { cookie: 'c' }), ev('c', { cookie: 'c' }), ev('l', { db_id: 1, cookie: 'c' })];
    const { groups, unmatched } = groupEvents(log, { buffer: { maxEvents: 2 } });
    expect(idsOf(groups)['db_id:1']!['cookie:c']).toEqual(['b', 'c']);
    expect(unmatched.map((u) => [u.event.id, u.reason, u.identifier])).toEqual([['a', 'overflow', { kind: 'cookie', value: 'c' }]]);
  });

  it('bounds, time: the watermark expires buffered events older than the TTL, in event time', () => {
    const log = [
      ev('old', { cookie: 'c' }, { minute: 0 }),
      ev('young', { cookie: 'c' }, { minute: 2 * DAY }),
      ev('other', { cookie: 'z' }, { minute: 8 * DAY }), // watermark moves past old + 7 days
      ev('l', { db_id: 1, cookie: 'c' }, { minute: 8 * DAY + 1 }),
    ];
    const { groups, unmatched } = groupEvents(log);
    expect(idsOf(groups)['db_id:1']!['cookie:c']).toEqual(['young']);
    expect(unmatched.map((u) => [u.event.id, u.reason])).toEqual([
      ['old', 'expired'],
      ['other', 'unlinked'],
    ]);
  });

  it('bounds, time: an event already older than the TTL on arrival is expired at once', () => {
    const { unmatched } = groupEvents([ev('new', { cookie: 'a' }, { minute: 10 * DAY }), ev('late', { cookie: 'b' }, { minute: 0 })]);
    expect(unmatched.find((u) => u.event.id === 'late')?.reason).toBe('expired');
  });

  it('bounds, time: events without a timestamp never expire offline', () => {
    const log = [ev('untimed', { cookie: 'c' }), ev('far', { cookie: 'z' }, { minute: 100 * DAY }), ev('l', { db_id: 1, cookie: 'c' })];
    expect(idsOf(groupEvents(log).groups)['db_id:1']!['cookie:c']).toEqual(['untimed']);
  });

  it('chains: ids seen together form a cluster; linking any member links the whole cluster', () => {
    const log = [
      ev('a', { cookie: 'c1' }),
      ev('b', { cookie: 'c1', device_id: 'd1' }),
      ev('c', { device_id: 'd1', anonymous_id: 'x1' }),
      ev('d', { anonymous_id: 'x2' }),
      ev('l', { db_id: 7, anonymous_id: 'x1' }),
      ev('e', { cookie: 'c1' }),
    ];
    const { groups, unmatched } = groupEvents(log);
    expect(idsOf(groups)).toEqual({
      'db_id:7': { 'db_id:7': ['l'], 'cookie:c1': ['a', 'b', 'e'], 'device_id:d1': ['c'] },
    });
    expect(unmatched.map((u) => u.event.id)).toEqual(['d']);
  });

  it('chains: a linked id seen with new ids links them and flushes their clusters', () => {
    const log = [ev('l', { db_id: 1, cookie: 'c' }), ev('a', { device_id: 'd', anonymous_id: 'x' }), ev('b', { cookie: 'c', device_id: 'd' }), ev('z', { anonymous_id: 'x' })];
    expect(idsOf(groupEvents(log).groups)).toEqual({
      'db_id:1': { 'db_id:1': ['l'], 'device_id:d': ['a'], 'cookie:c': ['b'], 'anonymous_id:x': ['z'] },
    });
  });

  it('internal ids never merge: a cluster reaching a second user joins nobody', () => {
    const log = [
      ev('l1', { db_id: 1, cookie: 'c1' }),
      ev('l2', { db_id: 2, cookie: 'c2' }),
      ev('x', { cookie: 'c1', device_id: 'd' }), // d joins user 1
      ev('y', { cookie: 'c2', device_id: 'd' }), // d is user 1's, c2 user 2's: conflict
      ev('z', { cookie: 'c2' }),
    ];
    const { groups, audit } = groupEvents(log);
    const doc = idsOf(groups);
    expect(Object.keys(doc).sort()).toEqual(['db_id:1', 'db_id:2']);
    expect(doc['db_id:2']!['cookie:c2']).toEqual(['z']);
    // y goes to the newest link (d, linked by x) and is audited as a conflict; nothing moved
    expect(doc['db_id:1']!['device_id:d']).toEqual(['y']);
    const conflict = audit.find((a) => a.reason === 'conflict')!;
    expect(conflict).toMatchObject({ identifier: { kind: 'cookie', value: 'c2' }, user: { kind: 'db_id', id: '2' }, claimedBy: { kind: 'db_id', id: '1' }, eventId: 'y' });
  });

  it('relink latest (default): the newest link wins from its event on, audited', () => {
    const log = [ev('l1', { db_id: 1, cookie: 'shared' }), ev('a', { cookie: 'shared' }), ev('l2', { db_id: 2, cookie: 'shared' }), ev('b', { cookie: 'shared' })];
    const { groups, audit } = groupEvents(log);
    expect(idsOf(groups)['db_id:1']!['cookie:shared']).toEqual(['a']);
    expect(idsOf(groups)['db_id:2']!['cookie:shared']).toEqual(['b']);
    expect(audit.find((r) => r.reason === 'relink')).toMatchObject({
      identifier: { kind: 'cookie', value: 'shared' },
      user: { kind: 'db_id', id: '2' },
      previous: { kind: 'db_id', id: '1' },
      eventId: 'l2',
    });
  });

  it('relink first: the identifier sticks to its first user, the claim is audited as a conflict', () => {
    const log = [ev('l1', { db_id: 1, cookie: 'c' }), ev('l2', { db_id: 2, cookie: 'c' }), ev('b', { cookie: 'c' })];
    const { groups, audit } = groupEvents(log, { relink: { cookie: 'first' } });
    expect(idsOf(groups)).toEqual({ 'db_id:1': { 'db_id:1': ['l1'], 'cookie:c': ['b'] }, 'db_id:2': { 'db_id:2': ['l2'] } });
    expect(audit.find((r) => r.reason === 'conflict')).toMatchObject({ user: { id: '1' }, claimedBy: { id: '2' }, eventId: 'l2' });
    expect(audit.some((r) => r.reason === 'relink')).toBe(false);
  });

  it('junk ids never link, are audited, and an event with nothing else is unmatched as junk', () => {
    const log = [
      ev('l', { db_id: 1, cookie: 'null' }),
      ev('a', { cookie: 'null' }),
      ev('b', { cookie: 'Anonymous ', device_id: 'd' }),
      ev('c', { db_id: '0', cookie: 'tmp-42' }),
      ev('m', { db_id: 2, cookie: 'tmp-42' }),
    ];
    const { groups, unmatched, audit } = groupEvents(log, { junkPattern: '^tmp-' });
    expect(idsOf(groups)).toEqual({ 'db_id:1': { 'db_id:1': ['l'] }, 'db_id:2': { 'db_id:2': ['m'] } });
    expect(unmatched.map((u) => [u.event.id, u.reason]).sort()).toEqual([
      ['a', 'junk'],
      ['b', 'unlinked'],
      ['c', 'junk'],
    ]);
    expect(audit.filter((r) => r.reason === 'refused').map((r) => [r.eventId, r.identifier.value, r.cause])).toEqual([
      ['l', 'null', 'junk'],
      ['b', 'Anonymous ', 'junk'],
      ['m', 'tmp-42', 'junk'],
    ]);
    expect(audit.some((r) => r.reason === 'link')).toBe(false);
  });

  it('junk: configured values are junk too', () => {
    const { unmatched } = groupEvents([ev('a', { cookie: 'TEST' })], { junkValues: ['test'] });
    expect(unmatched[0]?.reason).toBe('junk');
  });

  it('per-kind cap: the K+1th identifier of a kind is refused and audited', () => {
    const log = [
      ev('b1', { device_id: 'd3' }),
      ev('l1', { db_id: 1, device_id: 'd1' }),
      ev('l2', { db_id: 1, device_id: 'd2' }),
      ev('l3', { db_id: 1, device_id: 'd3', cookie: 'c' }),
      ev('after', { device_id: 'd3' }),
    ];
    const { groups, unmatched, audit } = groupEvents(log, { maxIdsPerUser: { device_id: 2 } });
    expect(idsOf(groups)['db_id:1']).toEqual({ 'db_id:1': ['l1', 'l2', 'l3'] });
    expect(audit.find((r) => r.reason === 'refused')).toMatchObject({ identifier: { value: 'd3' }, user: { id: '1' }, cause: 'cap', eventId: 'l3' });
    expect(audit.filter((r) => r.reason === 'link').map((r) => r.identifier.value)).toEqual(['d1', 'd2', 'c']);
    expect(unmatched.map((u) => u.event.id).sort()).toEqual(['after', 'b1']);
  });

  it('per-kind cap: a capped member of a linked cluster is refused once, audited once', () => {
    const log = [
      ev('m1', { db_id: 'u1', device: 'd1' }),
      ev('m2', { db_id: 'u1', device: 'd2' }),
      ev('m3', { cookie: 'c1', device: 'd3' }),
      ev('m4', { db_id: 'u1', cookie: 'c1', device: 'd3' }),
      ev('m5', { cookie: 'x', device: 'd4' }),
      ev('m6', { cookie: 'x', device: 'd5' }),
      ev('m7', { cookie: 'x', db_id: 'u1' }),
    ];
    const { audit } = groupEvents(log, { maxIdsPerUser: { device: 2 } });
    const ids = audit.map((r) => `${r.eventId}:${r.reason}:${r.identifier.kind}:${r.identifier.value}`);
    expect(ids.filter((id) => id.includes(':refused:'))).toEqual(['m4:refused:device:d3', 'm7:refused:device:d4', 'm7:refused:device:d5']);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('per-kind cap: a member refused in a chain met by a linked id is audited once', () => {
    const log = [
      ev('l1', { db_id: 'u1', device: 'd1', cookie: 'c' }),
      ev('b1', { cookie2: 'c2', device: 'd2' }),
      ev('m', { cookie: 'c', cookie2: 'c2', device: 'd2' }),
    ];
    const { audit } = groupEvents(log, { maxIdsPerUser: { device: 1 } });
    const ids = audit.map((r) => `${r.eventId}:${r.reason}:${r.identifier.kind}:${r.identifier.value}`);
    expect(ids.filter((id) => id.includes(':refused:'))).toEqual(['m:refused:device:d2']);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('per-kind cap: a relink away frees a place', () => {
    const log = [ev('l1', { db_id: 1, device_id: 'd1' }), ev('l2', { db_id: 2, device_id: 'd1' }), ev('l3', { db_id: 1, device_id: 'd2' })];
    const { audit } = groupEvents(log, { maxIdsPerUser: { device_id: 1 } });
    expect(audit.filter((r) => r.reason === 'refused')).toEqual([]);
    const decisions = (records: typeof audit) => records.map((r) => `${r.eventId} ${r.reason} ${r.identifier.value} ${r.user?.id}`);
    expect(decisions(audit)).toEqual(['l1 link d1 1', 'l2 relink d1 2', 'l3 link d2 1']);

    // the cap holds until then: user 1 is full before d1 moves away, and has a place after
    const full = ev('full', { db_id: 1, device_id: 'd0' });
    const capped = groupEvents([log[0]!, full, log[1]!, log[2]!], { maxIdsPerUser: { device_id: 1 } });
    expect(decisions(capped.audit)).toEqual(['l1 link d1 1', 'full refused d0 1', 'l2 relink d1 2', 'l3 link d2 1']);
    expect(capped.audit.find((r) => r.reason === 'refused')).toMatchObject({ cause: 'cap', identifier: { kind: 'device_id', value: 'd0' } });
  });

  it('dedup: the same event id twice changes nothing', () => {
    const a = ev('a', { cookie: 'c' });
    const l = ev('l', { db_id: 1, cookie: 'c' });
    const once = groupEvents([a, l]);
    const twice = groupEvents([a, a, l, l, a]);
    expect(twice.groups).toEqual(once.groups);
    // a duplicate still takes up a log position, so compare the decisions without positions
    const decisions = (audit: typeof once.audit) => audit.map(({ seq: _, ...rest }) => rest);
    expect(decisions(twice.audit)).toEqual(decisions(once.audit));
  });

  it('an event with several internal kinds is grouped under the first configured kind', () => {
    const { groups } = groupEvents([ev('l', { user_id: 'u', db_id: 5, cookie: 'c' })]);
    expect(idsOf(groups)).toEqual({ 'db_id:5': { 'db_id:5': ['l'] } });
  });

  it('"123" and 123 are the same user', () => {
    const { groups } = groupEvents([ev('a', { db_id: 123 }), ev('b', { db_id: '123' })]);
    expect(idsOf(groups)).toEqual({ 'db_id:123': { 'db_id:123': ['a', 'b'] } });
  });

  it('what is still buffered at the end of an offline run is unmatched as unlinked', () => {
    const { unmatched } = groupEvents([ev('a', { cookie: 'c' }), ev('b', { cookie: 'c' })]);
    expect(unmatched.map((u) => [u.event.id, u.reason])).toEqual([
      ['a', 'unlinked'],
      ['b', 'unlinked'],
    ]);
  });

  it('a bad event in a batch is reported by index and the good ones are kept', () => {
    const { groups, rejected } = groupEvents([ev('a', { db_id: 1 }), { id: 'bad' }, ev('b', { db_id: 1 })]);
    expect(idsOf(groups)['db_id:1']!['db_id:1']).toEqual(['a', 'b']);
    expect(rejected.map((r) => [r.index, r.error.field])).toEqual([[1, 'ids']]);
  });
});
