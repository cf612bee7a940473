import { describe, expect, it } from 'vitest';
import { createUserMachine } from '../../actors/user.machine.ts';
import { ActorSystem } from '../../src/engine/actor-system.ts';
import { MemorySnapshotStore } from '../../src/engine/snapshot-store.ts';

describe('actor system', () => {
  it('keeps at most maxLive actors, passivates the least recently used and restores it on its next message', () => {
    const store = new MemorySnapshotStore();
    const system = new ActorSystem(createUserMachine({}), store, 2);
    for (const user of ['u:1', 'u:2', 'u:3']) system.spawn(user, { key: user });
    expect(system.liveCount).toBe(2);
    expect(store.size).toBe(1);
    expect([...store.keys()]).toEqual(['u:1']);

    system.send('u:1', { type: 'LINK', identifier: 'cookie:a', kind: 'cookie', seq: 1, eventId: 'e' });
    expect(system.peek('u:1')?.context.linked).toEqual({ cookie: 1 });
    expect([...store.keys()]).toEqual(['u:2']); // u:1 came back, u:2 was the oldest
    expect(system.addresses().sort()).toEqual(['u:1', 'u:2', 'u:3']);

    system.passivateAll();
    expect(system.liveCount).toBe(0);
    expect(system.send('u:1', { type: 'LINK', identifier: 'cookie:b', kind: 'cookie', seq: 2, eventId: 'f' }).context.linked).toEqual({ cookie: 2 });
  });

  it('forgets an actor everywhere', () => {
    const system = new ActorSystem(createUserMachine({}), new MemorySnapshotStore(), 1);
    system.spawn('u:1', { key: 'u:1' });
    system.spawn('u:2', { key: 'u:2' });
    system.forget('u:1');
    system.forget('u:2');
    expect(system.has('u:1') || system.has('u:2')).toBe(false);
    expect(() => system.send('u:1', { type: 'UNLINK', kind: 'x' })).toThrow(/no actor at address "u:1"/);
  });
});
