import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { type IdentifierInput, createIdentifierMachine, linkedSnapshot, startingSnapshot } from '../../actors/identifier.machine.ts';
import type { AuditFact, Buffered } from '../../actors/types.ts';
import { createUserMachine } from '../../actors/user.machine.ts';
import { ev } from '../helpers/events.ts';

/** Restoring takes no input; xstate's types ask for one whenever the machine declares it. */
const fromSnapshot = <T>(snapshot: unknown) => ({ snapshot, input: undefined }) as unknown as T;

const item = (seq: number, time?: number): Buffered => ({ seq, event: ev(`e${seq}`, { cookie: 'c' }), time });

function identifier(bounds = { maxEvents: 3, ttlMs: 1000 }) {
  const effects: string[] = [];
  const machine = createIdentifierMachine(bounds).provide({
    actions: {
      resolve: (_, { item, user }) => effects.push(`resolve ${item.event.id} → ${user}`),
      release: (_, { item, reason }) => effects.push(`release ${item.event.id} (${reason})`),
      audit: (_, fact: AuditFact) => effects.push(`audit ${fact.reason} ${fact.identifier} ${fact.user}`),
    },
  });
  return { machine, effects };
}

describe('identifier machine', () => {
  it('buffers in log order and flushes once on LINK', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(2) } }).start();
    actor.send({ type: 'BUFFER', item: item(1), watermark: 0 });
    actor.send({ type: 'LINK', user: 'db_id:1', seq: 3, eventId: 'l', watermark: 0 });
    actor.send({ type: 'LINK', user: 'db_id:1', seq: 4, eventId: 'l2', watermark: 0 });
    expect(effects).toEqual(['resolve e1 → db_id:1', 'resolve e2 → db_id:1']);
    expect(actor.getSnapshot().value).toBe('linked');
    expect(actor.getSnapshot().context.buffer).toEqual([]);
  });

  it('releases the oldest on overflow and keeps its deadline as an absolute event time', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 100) } }).start();
    expect(actor.getSnapshot().context.deadline).toBe(1100);
    for (const seq of [2, 3, 4]) actor.send({ type: 'BUFFER', item: item(seq, 100 + seq), watermark: 104 });
    expect(effects).toEqual(['release e1 (overflow)']);
    expect(actor.getSnapshot().context.deadline).toBe(1102);
  });

  it('expires by watermark and dissolves when nothing is left', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 0) } }).start();
    actor.send({ type: 'BUFFER', item: item(2, 500), watermark: 500 });
    actor.send({ type: 'WATERMARK', watermark: 1000 });
    expect(effects).toEqual([]); // exactly ttl old is still held
    actor.send({ type: 'WATERMARK', watermark: 1001 });
    expect(effects).toEqual(['release e1 (expired)']);
    actor.send({ type: 'WATERMARK', watermark: 2000 });
    expect(actor.getSnapshot().status).toBe('done');
  });

  it('survives a snapshot round-trip with its deadline', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 0) } }).start();
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
    actor.stop();
    const restored = createActor(machine, fromSnapshot(persisted)).start();
    expect(restored.getSnapshot().context.deadline).toBe(1000);
    restored.send({ type: 'WATERMARK', watermark: 5000 });
    expect(effects).toEqual(['release e1 (expired)']);
  });

  it('restored under a longer ttl (the config changed since its snapshot): a watermark past the old deadline keeps the item and moves the deadline to the new ttl', () => {
    const before = identifier({ maxEvents: 3, ttlMs: 1000 });
    const actor = createActor(before.machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 0) } }).start();
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
    const after = identifier({ maxEvents: 3, ttlMs: 10_000 });
    const restored = createActor(after.machine, fromSnapshot(persisted)).start();
    restored.send({ type: 'WATERMARK', watermark: 5000 });
    expect(after.effects).toEqual([]);
    expect(restored.getSnapshot().context.deadline).toBe(10_000);
    restored.send({ type: 'WATERMARK', watermark: 10_001 });
    expect(after.effects).toEqual(['release e1 (expired)']);
  });

  it.each([
    ['latest', 'db_id:2', ['audit relink cookie:c db_id:2']],
    ['first', 'db_id:1', ['audit conflict cookie:c db_id:1']],
  ] as const)('a claim by another user under %s', (policy, owner, audits) => {
    const { machine, effects } = identifier();
    const linked = machine.resolveState({ value: 'linked', context: { key: 'cookie:c', members: ['cookie:c'], buffer: [], deadline: null, user: 'db_id:1', policy } });
    const actor = createActor(machine, fromSnapshot(linked)).start();
    actor.send({ type: 'LINK', user: 'db_id:2', seq: 9, eventId: 'l2', watermark: 0 });
    expect(actor.getSnapshot().context.user).toBe(owner);
    expect(effects).toEqual(audits);
  });

  it('is exact however late the wake-up: what the watermark passed expires, never flushes', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 0) } }).start();
    actor.send({ type: 'BUFFER', item: item(2, 900), watermark: 900 });
    actor.send({ type: 'LINK', user: 'db_id:1', seq: 3, eventId: 'l', watermark: 1500 });
    expect(effects).toEqual(['release e1 (expired)', 'resolve e2 → db_id:1']);
  });

  it('releases everything as unlinked on GIVE_UP', () => {
    const { machine, effects } = identifier();
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1) } }).start();
    actor.send({ type: 'GIVE_UP', watermark: 0 });
    expect(effects).toEqual(['release e1 (unlinked)']);
    expect(actor.getSnapshot().status).toBe('done');
  });
});

describe('identifier snapshots built from data', () => {
  const bounds = { maxEvents: 3, ttlMs: 1000 };
  const machine = createIdentifierMachine(bounds);

  it.each([
    ['a timed first event', { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1, 100) }],
    ['a first event with no time', { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1) }],
    ['several members, policy first', { key: 'cookie:c', members: ['cookie:c', 'device_id:d', 'anonymous_id:a'], policy: 'first', first: item(7, 0) }],
  ] as [string, IdentifierInput][])('startingSnapshot is the initial snapshot of the machine: %s', (_, input) => {
    const actor = createActor(machine, { input });
    const built = startingSnapshot(machine, input, bounds);
    expect(machine.getPersistedSnapshot(built)).toEqual(actor.getPersistedSnapshot());
    expect(built.hasTag('buffering')).toBe(actor.getSnapshot().hasTag('buffering'));
    expect(built.status).toBe(actor.getSnapshot().status);
  });

  it('the deadline of a first event with no time is null, and its cluster still waits', () => {
    const built = startingSnapshot(machine, { key: 'cookie:c', members: ['cookie:c'], policy: 'latest', first: item(1) }, bounds);
    expect(built.context.deadline).toBeNull();
    expect(built.value).toBe('buffering');
  });

  it.each(['latest', 'first'] as const)('linkedSnapshot is where a one-member cluster goes on LINK (policy %s)', (policy) => {
    const actor = createActor(machine, { input: { key: 'cookie:c', members: ['cookie:c'], policy, first: item(1) } }).start();
    actor.send({ type: 'LINK', user: 'db_id:1', seq: 2, eventId: 'l', watermark: 0 });
    expect(machine.getPersistedSnapshot(linkedSnapshot(machine, 'cookie:c', 'db_id:1', policy))).toEqual(actor.getPersistedSnapshot());
  });
});

describe('user machine', () => {
  it('counts linked identifiers per kind and refuses past the cap, audited', () => {
    const audits: AuditFact[] = [];
    const machine = createUserMachine({ device_id: 1 }).provide({ actions: { audit: (_, fact) => audits.push(fact) } });
    const actor = createActor(machine, { input: { key: 'db_id:1' } }).start();
    const link = (identifier: string) => {
      actor.send({ type: 'LINK', identifier, kind: identifier.split(':')[0]!, seq: 1, eventId: 'e' });
      return actor.getSnapshot().context.decision;
    };
    expect(link('device_id:a')).toBe('accepted');
    expect(link('cookie:x')).toBe('accepted');
    expect(link('device_id:b')).toBe('refused');
    expect(audits).toEqual([{ reason: 'refused', cause: 'cap', identifier: 'device_id:b', user: 'db_id:1', seq: 1, eventId: 'e' }]);
    actor.send({ type: 'UNLINK', kind: 'device_id' });
    expect(link('device_id:b')).toBe('accepted');
    expect(actor.getSnapshot().context.linked).toEqual({ device_id: 1, cookie: 1 });
  });
});
