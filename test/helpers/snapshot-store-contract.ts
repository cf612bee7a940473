/**
 * One contract for every SnapshotStore adapter (the in-memory one, and the service's over a state
 * store, in JetStream KV or in memory): run it against each, so that passivated actors come back
 * the same whichever store kept them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createUserMachine } from '../../actors/user.machine.ts';
import { XrefError } from '../../src/domain/errors.ts';
import { ActorSystem } from '../../src/engine/actor-system.ts';
import type { SnapshotStore } from '../../src/engine/snapshot-store.ts';
import type { StateStore } from '../../src/engine/state-store.ts';
import { KvSnapshotStore } from '../../src/nats/state-store.ts';

export interface SnapshotStoreFixture {
  /** The store under test, empty. */
  readonly store: SnapshotStore;
  /**
   * For a store over the engine's state: a state store over the fixture's state, as a (re)started
   * engine opens it (nothing loaded yet). `store` is then a KvSnapshotStore of users over one.
   */
  openState?(): Promise<StateStore>;
  close(): Promise<void>;
}

const link = (kind: string, seq: number) => ({ type: 'LINK' as const, identifier: `${kind}:${seq}`, kind, seq, eventId: `e${seq}` });

/** Users of the ActorSystem, at most one live: the others wait in the store. */
const usersOver = (store: SnapshotStore) => new ActorSystem(createUserMachine({}), store, 1);

export function snapshotStoreContract(name: string, make: () => Promise<SnapshotStoreFixture>, options: { overStateStore?: boolean } = {}): void {
  describe(`SnapshotStore contract: ${name}`, () => {
    let fixture: SnapshotStoreFixture;
    beforeEach(async () => {
      fixture = await make();
    });
    afterEach(async () => {
      await fixture.close();
    });

    it('an empty store holds nothing', () => {
      const { store } = fixture;
      expect(store.size).toBe(0);
      expect([...store.keys()]).toEqual([]);
      expect(store.has('db_id:u1')).toBe(false);
      expect(store.get('db_id:u1')).toBeUndefined();
    });

    it('keeps a snapshot per address until it is deleted; a second set replaces the first', () => {
      const { store } = fixture;
      store.set('db_id:u1', { v: 1 });
      store.set('db_id:u2', { v: 2 });
      store.set('db_id:u1', { v: 3 });
      expect(store.size).toBe(2);
      expect([...store.keys()].sort()).toEqual(['db_id:u1', 'db_id:u2']);
      expect(store.has('db_id:u1')).toBe(true);
      expect(store.get('db_id:u1')).toEqual({ v: 3 });
      store.delete('db_id:u1');
      store.delete('db_id:never');
      expect(store.has('db_id:u1')).toBe(false);
      expect(store.get('db_id:u1')).toBeUndefined();
      expect([...store.keys()]).toEqual(['db_id:u2']);
      expect(store.size).toBe(1);
    });

    it('an actor passivated into it wakes from it on its next message, as it was', () => {
      const { store } = fixture;
      const users = usersOver(store);
      users.spawn('db_id:u1', { key: 'db_id:u1' });
      users.send('db_id:u1', link('cookie', 1));
      users.spawn('db_id:u2', { key: 'db_id:u2' });
      // u1 is the least recently used: passivated
      expect([...store.keys()]).toEqual(['db_id:u1']);
      expect(store.get('db_id:u1')).toMatchObject({ context: { key: 'db_id:u1', linked: { cookie: 1 } } });

      expect(users.send('db_id:u1', link('cookie', 2)).context.linked).toEqual({ cookie: 2 });
      expect([...store.keys()]).toEqual(['db_id:u2']);
      expect(store.has('db_id:u1')).toBe(false);
      expect(users.addresses().sort()).toEqual(['db_id:u1', 'db_id:u2']);
    });

    if (!options.overStateStore) return;

    /** The fixture's state store, loaded, with the store of passivated users a started engine makes over it. */
    async function started() {
      const state = await fixture.openState!();
      const loaded = await state.load();
      return { state, loaded, store: new KvSnapshotStore('u', state, loaded.userAddresses) };
    }

    /** Writes what the users changed as the next checkpoint, then tells the store it is durable. */
    async function checkpoint(state: StateStore, store: KvSnapshotStore, users: ActorSystem<ReturnType<typeof createUserMachine>>, seq: number) {
      const changes = users.takeChanges();
      await state.write({ seq, watermark: seq, links: new Map(), identifiers: [], users: changes });
      store.written(changes);
      return changes;
    }

    it('passivated → checkpoint written → let go of memory → prefetched → wakes as it was', async () => {
      const { state, store } = await started();
      const users = usersOver(store);
      users.spawn('db_id:u1', { key: 'db_id:u1' });
      users.send('db_id:u1', link('cookie', 1));
      users.spawn('db_id:u2', { key: 'db_id:u2' });
      await checkpoint(state, store, users, 1);

      // still passivated here, but its snapshot is in the state store only
      expect(store.has('db_id:u1')).toBe(true);
      expect(store.get('db_id:u1')).toBeUndefined();
      expect([...store.keys()]).toEqual(['db_id:u1']);
      expect(store.size).toBe(1);
      expect(users.isReady('db_id:u1')).toBe(false);

      await store.prefetch(['db_id:u1', 'db_id:u2', 'db_id:never']);
      expect(users.isReady('db_id:u1')).toBe(true);
      expect(users.send('db_id:u1', link('cookie', 2)).context.linked).toEqual({ cookie: 2 });
      expect(store.has('db_id:u1')).toBe(false);
    });

    it('an actor passivated again before the checkpoint is durable keeps its newer snapshot in memory', async () => {
      const { state, store } = await started();
      const users = usersOver(store);
      users.spawn('db_id:u1', { key: 'db_id:u1' });
      users.spawn('db_id:u2', { key: 'db_id:u2' });
      const changes = users.takeChanges();
      const writing = state.write({ seq: 1, watermark: 1, links: new Map(), identifiers: [], users: changes });
      // meanwhile u1 comes back, changes, and is passivated again
      users.send('db_id:u1', link('cookie', 1));
      users.spawn('db_id:u3', { key: 'db_id:u3' });
      await writing;
      store.written(changes);
      expect(store.get('db_id:u1')).toMatchObject({ context: { linked: { cookie: 1 } } });
      expect(users.send('db_id:u1', link('cookie', 2)).context.linked).toEqual({ cookie: 2 });
    });

    it('a restarted engine finds the passivated actors of the last checkpoint and loads them when asked', async () => {
      const before = await started();
      const users = usersOver(before.store);
      users.spawn('db_id:u1', { key: 'db_id:u1' });
      users.send('db_id:u1', link('cookie', 1));
      users.passivateAll();
      await checkpoint(before.state, before.store, users, 7);

      const { loaded, store } = await started();
      expect(loaded.userAddresses).toEqual(['db_id:u1']);
      expect(store.has('db_id:u1')).toBe(true);
      expect(store.get('db_id:u1')).toBeUndefined();
      await store.prefetch(['db_id:u1']);
      const again = usersOver(store);
      expect(again.send('db_id:u1', link('cookie', 2)).context.linked).toEqual({ cookie: 2 });
    });

    it('a passivated actor with no snapshot in the state store fails its prefetch, naming it', async () => {
      const state = await fixture.openState!();
      await state.load();
      const store = new KvSnapshotStore('u', state, ['db_id:ghost']);
      const prefetch = store.prefetch(['db_id:ghost']);
      await expect(prefetch).rejects.toBeInstanceOf(XrefError);
      await expect(prefetch).rejects.toMatchObject({ code: 'XREF_INTERNAL', message: expect.stringContaining('"db_id:ghost"') });
      expect(store.get('db_id:ghost')).toBeUndefined();
    });
  });
}
