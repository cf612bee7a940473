import { type Actor, type AnyMachineSnapshot, type AnyStateMachine, type EventFrom, type InputFrom, type SnapshotFrom, createActor } from 'xstate';
import type { SnapshotStore } from './snapshot-store.ts';

/**
 * The address/mailbox layer: top-level actors of one machine, kept in a registry keyed by address
 * (never children of one parent). At most `maxLive` stay in memory; the least recently used is
 * passivated into the snapshot store and restored on its next message. An actor that reaches a
 * final state is forgotten.
 */
export class ActorSystem<TMachine extends AnyStateMachine> {
  /** Live actors, least recently used first, with when each last had a message (wall clock). */
  private readonly live = new Map<string, { actor: Actor<TMachine>; usedAt: number }>();
  /** Addresses whose state changed since the last `takeChanges()`. */
  private readonly changed = new Set<string>();

  constructor(
    private readonly machine: TMachine,
    private readonly store: SnapshotStore,
    private readonly maxLive: number,
  ) {}

  /** Starts a new actor at `address` (replacing nothing: the address must be free). */
  spawn(address: string, input: InputFrom<TMachine>): SnapshotFrom<TMachine> {
    const actor = createActor(this.machine, { input });
    actor.start();
    return this.settle(address, actor);
  }

  /** Starts an actor at `address` from a snapshot, e.g. one built from data with `resolveState`. */
  restore(address: string, snapshot: SnapshotFrom<TMachine>): void {
    const actor = this.fromSnapshot(snapshot);
    actor.start();
    this.settle(address, actor);
  }

  has(address: string): boolean {
    return this.live.has(address) || this.store.has(address);
  }

  isLive(address: string): boolean {
    return this.live.has(address);
  }

  /** Live, or passivated with its snapshot in memory: a message to it needs no loading. */
  isReady(address: string): boolean {
    return this.live.has(address) || this.store.get(address) !== undefined;
  }

  /** The current snapshot of the actor at `address`, live or passivated. */
  peek(address: string): SnapshotFrom<TMachine> | undefined {
    return this.revive(address)?.getSnapshot();
  }

  /** Delivers one event and returns the snapshot it leads to. */
  send(address: string, event: EventFrom<TMachine>): SnapshotFrom<TMachine> {
    const actor = this.revive(address);
    if (actor === undefined) throw new Error(`no actor at address ${JSON.stringify(address)}`);
    actor.send(event);
    return this.settle(address, actor);
  }

  /** Stops the actor at `address` and forgets it, live or stored. */
  forget(address: string): void {
    this.live.get(address)?.actor.stop();
    this.live.delete(address);
    this.store.delete(address);
    this.changed.add(address);
  }

  /**
   * What changed since the last call: persisted snapshots, and null for forgotten actors. A
   * passivated actor whose snapshot a remote store already wrote and let go of is left out.
   */
  takeChanges(): Array<[address: string, snapshot: unknown]> {
    const out: Array<[string, unknown]> = [];
    for (const address of this.changed) {
      const entry = this.live.get(address);
      if (entry !== undefined) out.push([address, entry.actor.getPersistedSnapshot()]);
      else if (!this.store.has(address)) out.push([address, null]);
      else {
        const stored = this.store.get(address);
        if (stored !== undefined) out.push([address, stored]);
      }
    }
    this.changed.clear();
    return out;
  }

  /** Passivates every live actor that had no message for `idleMs` (wall clock). */
  passivateIdle(idleMs: number, now = Date.now()): number {
    let count = 0;
    for (const [address, { usedAt }] of this.live) {
      if (now - usedAt < idleMs) break; // insertion order = least recently used first
      this.passivate(address);
      count++;
    }
    return count;
  }

  /** Writes every live actor to the store (e.g. at shutdown). */
  passivateAll(): void {
    for (const address of [...this.live.keys()]) this.passivate(address);
  }

  /** Every address, live or passivated. */
  addresses(): string[] {
    return [...new Set([...this.live.keys(), ...this.store.keys()])];
  }

  get liveCount(): number {
    return this.live.size;
  }

  get storedCount(): number {
    return this.store.size;
  }

  private revive(address: string): Actor<TMachine> | undefined {
    const entry = this.live.get(address);
    if (entry !== undefined) {
      this.touch(address, entry);
      return entry.actor;
    }
    if (!this.store.has(address)) return undefined;
    const stored = this.store.get(address);
    if (stored === undefined) throw new Error(`actor ${JSON.stringify(address)} is passivated but its snapshot was not loaded`);
    const restored = this.fromSnapshot(stored);
    restored.start();
    this.store.delete(address);
    this.live.set(address, { actor: restored, usedAt: Date.now() });
    this.evict();
    return restored;
  }

  /** Most recently used goes last. */
  private touch(address: string, entry: { actor: Actor<TMachine>; usedAt: number }): void {
    this.live.delete(address);
    entry.usedAt = Date.now();
    this.live.set(address, entry);
  }

  private fromSnapshot(snapshot: unknown): Actor<TMachine> {
    return createActor(this.machine as AnyStateMachine, { snapshot: snapshot as AnyMachineSnapshot }) as unknown as Actor<TMachine>;
  }

  private settle(address: string, actor: Actor<TMachine>): SnapshotFrom<TMachine> {
    const snapshot = actor.getSnapshot() as AnyMachineSnapshot;
    this.changed.add(address);
    if (snapshot.status === 'done') {
      actor.stop();
      this.live.delete(address);
      this.store.delete(address);
    } else if (!this.live.has(address)) {
      this.live.set(address, { actor, usedAt: Date.now() });
      this.evict();
    }
    return snapshot as SnapshotFrom<TMachine>;
  }

  private passivate(address: string): void {
    const entry = this.live.get(address);
    if (entry === undefined) return;
    this.changed.add(address);
    this.store.set(address, entry.actor.getPersistedSnapshot());
    entry.actor.stop();
    this.live.delete(address);
  }

  private evict(): void {
    while (this.live.size > this.maxLive) {
      const oldest = this.live.keys().next().value as string;
      this.passivate(oldest);
    }
  }
}
