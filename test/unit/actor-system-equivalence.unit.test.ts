import { describe, expect, it } from 'vitest';
import { type AnyMachineSnapshot, type AnyStateMachine, type EventFrom, createActor } from 'xstate';
import { type IdentifierEvent, createIdentifierMachine, linkedSnapshot } from '../../actors/identifier.machine.ts';
import type { Buffered } from '../../actors/types.ts';
import { type UserEvent, createUserMachine } from '../../actors/user.machine.ts';
import { ActorSystem } from '../../src/engine/actor-system.ts';
import { MemorySnapshotStore } from '../../src/engine/snapshot-store.ts';
import { ev } from '../helpers/events.ts';

/**
 * The engine runs its machines through ActorSystem (one transition per message, no Actor object);
 * it must decide exactly what xstate's own `createActor(...).send(...)` decides.
 */

type Effect = [action: string, params: unknown];

const bounds = { maxEvents: 3, ttlMs: 1000 };
const item = (seq: number, time?: number): Buffered => ({ seq, event: ev(`e${seq}`, { cookie: 'c' }), time });

function identifierMachine(effects: Effect[]) {
  return createIdentifierMachine(bounds).provide({
    actions: {
      resolve: (_, params) => effects.push(['resolve', params]),
      release: (_, params) => effects.push(['release', params]),
      audit: (_, params) => effects.push(['audit', params]),
    },
  });
}

function userMachine(effects: Effect[]) {
  return createUserMachine({ device_id: 1 }).provide({ actions: { audit: (_, params) => effects.push(['audit', params]) } });
}

/** How both sides start: from an input, or from a persisted snapshot (a passivated actor, or one built from data). */
type Start = { input: unknown } | { persisted: unknown };

/**
 * Sends the same messages through xstate's actor and through ActorSystem, and compares after each
 * one the persisted snapshots, the tags and the actions run. `passivateAfter`: messages after
 * which the system's actor is passivated and its snapshot goes through JSON, as a KV store keeps it.
 */
function expectSameRun<M extends AnyStateMachine>(make: (effects: Effect[]) => M, start: Start, messages: EventFrom<M>[], passivateAfter: number[] = []) {
  const byXstate: Effect[] = [];
  const bySystem: Effect[] = [];
  const reference = make(byXstate);
  const actor = createActor(reference, ('input' in start ? { input: start.input } : { snapshot: start.persisted }) as never).start();

  const machine = make(bySystem);
  const store = new MemorySnapshotStore();
  const system = new ActorSystem(machine, store, 10);
  if ('input' in start) system.spawn('a', start.input as never);
  else store.set('a', start.persisted);

  const states: unknown[] = [];
  messages.forEach((message, i) => {
    actor.send(message);
    const after = system.send('a', message) as AnyMachineSnapshot;
    const expected = actor.getSnapshot() as AnyMachineSnapshot;
    expect(machine.getPersistedSnapshot(after)).toEqual(actor.getPersistedSnapshot());
    expect([...after.tags]).toEqual([...expected.tags]);
    expect(bySystem).toEqual(byXstate);
    states.push(after.value);
    if (passivateAfter.includes(i) && after.status !== 'done') {
      system.passivateAll();
      store.set('a', JSON.parse(JSON.stringify(store.get('a'))));
    }
  });
  actor.stop();
  return { effects: byXstate, states, status: (actor.getSnapshot() as AnyMachineSnapshot).status };
}

const cluster = (first: Buffered, policy: 'latest' | 'first' = 'latest') => ({ input: { key: 'cookie:c', members: ['cookie:c'], policy, first } });

describe('ActorSystem against xstate actors: identifier machine', () => {
  it('BUFFER, ABSORB and WATERMARK, then LINK and a claim on the linked identifier', () => {
    const messages: IdentifierEvent[] = [
      { type: 'BUFFER', item: item(1, 50), watermark: 100 },
      { type: 'BUFFER', item: item(4, 400), watermark: 400 },
      { type: 'BUFFER', item: item(5, 500), watermark: 500 }, // a fourth: the oldest overflows
      { type: 'ABSORB', members: ['device_id:d'], buffer: [item(3, 300), item(6)], watermark: 600 },
      { type: 'WATERMARK', watermark: 1150 }, // expires what is older than 150
      { type: 'WATERMARK', watermark: 1200 }, // nothing more to expire
      { type: 'LINK', user: 'db_id:1', seq: 9, eventId: 'l', watermark: 1350 }, // 300 expires, the rest flushes
      { type: 'LINK', user: 'db_id:1', seq: 10, eventId: 'l2', watermark: 1350 }, // same user: nothing to decide
      { type: 'LINK', user: 'db_id:2', seq: 11, eventId: 'l3', watermark: 1400 }, // a claim: relinked (latest)
    ];
    const run = expectSameRun(identifierMachine, cluster(item(2, 100)), messages, [1, 4, 6]);
    expect(run.states).toEqual([...Array(6).fill('buffering'), 'linked', 'linked', 'linked']);
    expect(run.effects.map(([action, params]) => `${action} ${(params as { item?: Buffered }).item?.event.id ?? (params as { reason: string }).reason}`)).toEqual([
      'release e1',
      'release e2',
      'release e3',
      'resolve e4',
      'resolve e5',
      'resolve e6',
      'audit relink',
    ]);
  });

  it.each(['latest', 'first'] as const)('a claim on a linked identifier restored from data, policy %s', (policy) => {
    const start = linkedSnapshot(createIdentifierMachine(bounds), 'cookie:c', 'db_id:1', policy);
    const persisted = JSON.parse(JSON.stringify(createIdentifierMachine(bounds).getPersistedSnapshot(start)));
    const run = expectSameRun(identifierMachine, { persisted }, [
      { type: 'LINK', user: 'db_id:2', seq: 7, eventId: 'c1', watermark: 0 },
      { type: 'LINK', user: 'db_id:3', seq: 8, eventId: 'c2', watermark: 0 },
    ]);
    expect(run.effects.map(([, params]) => (params as { reason: string }).reason)).toEqual(policy === 'latest' ? ['relink', 'relink'] : ['conflict', 'conflict']);
  });

  it('GIVE_UP releases everything and dissolves the cluster', () => {
    const run = expectSameRun(identifierMachine, cluster(item(1, 0)), [
      { type: 'BUFFER', item: item(2), watermark: 0 },
      { type: 'GIVE_UP', watermark: 1500 },
    ]);
    expect(run.status).toBe('done');
    expect(run.effects.map(([, params]) => (params as { reason: string }).reason)).toEqual(['expired', 'unlinked']);
  });

  it('a watermark past every buffered event dissolves the cluster', () => {
    const run = expectSameRun(identifierMachine, cluster(item(1, 0)), [{ type: 'BUFFER', item: item(2, 10), watermark: 10 }, { type: 'WATERMARK', watermark: 2000 }], [0]);
    expect(run.states).toEqual(['buffering', 'released']);
    expect(run.status).toBe('done');
  });
});

describe('ActorSystem against xstate actors: user machine', () => {
  it('LINK under the cap, over it (refused, audited), UNLINK, and LINK again', () => {
    const link = (identifier: string, seq: number): UserEvent => ({ type: 'LINK', identifier, kind: identifier.split(':')[0]!, seq, eventId: `e${seq}` });
    const run = expectSameRun(
      userMachine,
      { input: { key: 'db_id:1' } },
      [link('device_id:a', 1), link('cookie:x', 2), link('device_id:b', 3), { type: 'UNLINK', kind: 'device_id' }, link('device_id:b', 4), link('device_id:c', 5)],
      [2],
    );
    expect(run.effects).toEqual([
      ['audit', { reason: 'refused', cause: 'cap', identifier: 'device_id:b', user: 'db_id:1', seq: 3, eventId: 'e3' }],
      ['audit', { reason: 'refused', cause: 'cap', identifier: 'device_id:c', user: 'db_id:1', seq: 5, eventId: 'e5' }],
    ]);
  });
});
