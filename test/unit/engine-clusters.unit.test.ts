import { describe, expect, it } from 'vitest';
import { createIdentifierMachine, startingSnapshot } from '../../actors/identifier.machine.ts';
import type { Buffered } from '../../actors/types.ts';
import { ActorSystem } from '../../src/engine/actor-system.ts';
import { Clusters, clusterState } from '../../src/engine/clusters.ts';
import { MemorySnapshotStore } from '../../src/engine/snapshot-store.ts';
import { ev } from '../helpers/events.ts';

const bounds = { maxEvents: 10, ttlMs: 1000 };
const item = (seq: number, time?: number): Buffered => ({ seq, event: ev(`e${seq}`, { cookie: 'c' }), time });

function clusters() {
  const released: string[] = [];
  const machine = createIdentifierMachine(bounds).provide({
    actions: { release: (_, { item, reason }) => released.push(`${item.event.id} ${reason}`), resolve: (_, { item, user }) => released.push(`${item.event.id} → ${user}`) },
  });
  const actors = new ActorSystem(machine, new MemorySnapshotStore(), 100);
  return { clusters: new Clusters(actors, machine, bounds, () => 'latest'), actors, released };
}

describe('clusters', () => {
  it('reads members and deadline from a persisted identifier snapshot', () => {
    const machine = createIdentifierMachine(bounds);
    const snapshot = startingSnapshot(machine, { key: 'cookie:a', members: ['cookie:a', 'device_id:d'], policy: 'latest', first: item(1, 500) }, bounds);
    const persisted = JSON.parse(JSON.stringify(machine.getPersistedSnapshot(snapshot)));
    const { members, deadline } = clusterState(persisted);
    expect({ members, deadline }).toEqual({ members: ['cookie:a', 'device_id:d'], deadline: 1500 });
  });

  it('joins clusters that meet into the largest, and forgets one once linked', () => {
    const { clusters: c, released } = clusters();
    c.buffer(item(1), ['cookie:a', 'device_id:a'], 0);
    c.buffer(item(2), ['cookie:b'], 0);
    c.buffer(item(3), ['cookie:b', 'device_id:a', 'anonymous_id:x'], 0);
    expect(['cookie:a', 'device_id:a', 'cookie:b', 'anonymous_id:x'].map((key) => c.root(key))).toEqual(Array(4).fill('cookie:a'));
    expect([...c.members('cookie:a')].sort()).toEqual(['anonymous_id:x', 'cookie:a', 'cookie:b', 'device_id:a']);
    expect(c.size).toBe(4);
    c.link('cookie:a', { type: 'LINK', user: 'db_id:1', seq: 4, eventId: 'l', watermark: 0 });
    expect(released).toEqual(['e1 → db_id:1', 'e2 → db_id:1', 'e3 → db_id:1']);
    expect(c.size).toBe(0);
    expect(c.root('cookie:b')).toBeUndefined();
  });

  it('knows which buffers a time passes, and expires them when the watermark gets there', () => {
    const { clusters: c, released } = clusters();
    c.buffer(item(1, 100), ['cookie:a'], 100);
    c.buffer(item(2, 300), ['cookie:b'], 300);
    c.buffer(item(3), ['cookie:untimed'], 300);
    expect(c.anyDueBefore(1100)).toBe(false); // exactly ttl old is still held
    expect([...c.dueBefore(1200)]).toEqual(['cookie:a']);
    c.expire(1200);
    expect(released).toEqual(['e1 expired']);
    expect(c.root('cookie:a')).toBeUndefined(); // nothing left: the cluster dissolved
    expect([...c.dueBefore(5000)]).toEqual(['cookie:b']);
  });
});
