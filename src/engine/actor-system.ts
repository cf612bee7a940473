import { type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, type EventFrom, type InputFrom, type SnapshotFrom, createActor, isMachineSnapshot } from 'xstate';
import { XrefError } from '../domain/errors.ts';
import type { SnapshotStore } from './snapshot-store.ts';

/**
 * The address/mailbox layer: actors of one machine, kept in a registry keyed by address. An actor
 * here is its machine's current snapshot; a message is applied with the machine's own transition
 * (the actor-logic interface xstate's `createActor` runs on), and its actions run as they are
 * reached, in order. This is what `createActor` per identifier would do, without an Actor object,
 * a mailbox and an observer list per identifier: a few times cheaper to start and much smaller to
 * keep. At most `maxLive` stay in memory; the least recently used is passivated into the snapshot
 * store (`getPersistedSnapshot`) and restored on its next message. An actor that reaches a final
 * state is forgotten.
 */
export class ActorSystem<TMachine extends AnyStateMachine> {
  /** Live actors, least recently used first, with when each last had a message (wall clock). */
  private readonly live = new Map<string, { snapshot: SnapshotFrom<TMachine>; usedAt: number }>();
  /** Addresses whose state changed since the last `takeChanges()`. */
  private readonly changed = new Set<string>();
  /** Addresses a taken change wrote a snapshot for (or the store held at start): only they need a tombstone. */
  private readonly durable = new Set<string>();
  /** What the machine's actions see as their actor: shared, since the machines hold no children. */
  private readonly scope: AnyActorScope;

  constructor(
    private readonly machine: TMachine,
    private readonly store: SnapshotStore,
    private readonly maxLive: number,
  ) {
    const self = createActor(machine); // never started: it only lends the scope its identity
    this.scope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => {},
      defer: () => {},
      emit: () => {},
      stopChild: () => {},
      actionExecutor: (action) => action.exec?.(action.info, action.params),
    };
    for (const address of store.keys()) this.durable.add(address);
  }

  /** Starts a new actor at `address` (replacing nothing: the address must be free). */
  spawn(address: string, input: InputFrom<TMachine>): SnapshotFrom<TMachine> {
    return this.settle(address, this.machine.getInitialSnapshot(this.scope, input) as SnapshotFrom<TMachine>);
  }

  /** Starts an actor at `address` from a snapshot, e.g. one built from data with `resolveState`. */
  restore(address: string, snapshot: SnapshotFrom<TMachine>): void {
    this.settle(address, snapshot);
  }

  has(address: string): boolean {
    return this.live.has(address) || this.store.has(address);
  }

  /** Live, or passivated with its snapshot in memory: a message to it needs no loading. */
  isReady(address: string): boolean {
    return this.live.has(address) || this.store.get(address) !== undefined;
  }

  /** The current snapshot of the actor at `address`, live or passivated. */
  peek(address: string): SnapshotFrom<TMachine> | undefined {
    return this.revive(address);
  }

  /** Delivers one event and returns the snapshot it leads to. */
  send(address: string, event: EventFrom<TMachine>): SnapshotFrom<TMachine> {
    const snapshot = this.revive(address);
    if (snapshot === undefined) throw new XrefError('XREF_INTERNAL', `no actor at address ${JSON.stringify(address)}`);
    return this.settle(address, this.machine.transition(snapshot, event, this.scope) as SnapshotFrom<TMachine>);
  }

  /** Forgets the actor at `address`, live or stored. */
  forget(address: string): void {
    this.live.delete(address);
    this.store.delete(address);
    this.changed.add(address);
  }

  /**
   * What changed since the last call: each actor's snapshot as it is now, and null for forgotten
   * actors that an earlier change wrote (one that came and went in between needs no record). A
   * passivated actor whose snapshot a remote store already wrote and let go of is left out.
   * Snapshots are immutable, so this costs a reference each: `persistedSnapshot` turns them into
   * what a store keeps, later, e.g. while processing goes on.
   */
  takeChanges(): Array<[address: string, snapshot: unknown]> {
    const out: Array<[string, unknown]> = [];
    for (const address of this.changed) {
      const snapshot = this.live.get(address)?.snapshot ?? this.store.get(address);
      if (snapshot !== undefined) {
        out.push([address, snapshot]);
        this.durable.add(address);
      } else if (!this.store.has(address) && this.durable.delete(address)) out.push([address, null]);
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

  /** The live snapshot at `address`, brought back from the store if it was passivated. */
  private revive(address: string): SnapshotFrom<TMachine> | undefined {
    const entry = this.live.get(address);
    if (entry !== undefined) {
      // most recently used goes last
      this.live.delete(address);
      entry.usedAt = Date.now();
      this.live.set(address, entry);
      return entry.snapshot;
    }
    if (!this.store.has(address)) return undefined;
    const stored = this.store.get(address);
    if (stored === undefined) throw new XrefError('XREF_INTERNAL', `actor ${JSON.stringify(address)} is passivated but its snapshot was not loaded`);
    const snapshot = this.machine.restoreSnapshot!(stored as never, this.scope) as SnapshotFrom<TMachine>;
    this.store.delete(address);
    this.live.set(address, { snapshot, usedAt: Date.now() });
    this.evict();
    return snapshot;
  }

  private settle(address: string, snapshot: SnapshotFrom<TMachine>): SnapshotFrom<TMachine> {
    this.changed.add(address);
    if ((snapshot as AnyMachineSnapshot).status === 'done') {
      this.live.delete(address);
      this.store.delete(address);
      return snapshot;
    }
    const entry = this.live.get(address);
    if (entry !== undefined) entry.snapshot = snapshot;
    else {
      this.live.set(address, { snapshot, usedAt: Date.now() });
      this.evict();
    }
    return snapshot;
  }

  private passivate(address: string): void {
    const entry = this.live.get(address);
    if (entry === undefined) return;
    this.changed.add(address);
    this.store.set(address, this.machine.getPersistedSnapshot(entry.snapshot));
    this.live.delete(address);
  }

  private evict(): void {
    while (this.live.size > this.maxLive) {
      const oldest = this.live.keys().next().value as string;
      this.passivate(oldest);
    }
  }
}

/** What a store keeps of a snapshot from `takeChanges`: a live one persisted, a persisted one as it is. */
export function persistedSnapshot(snapshot: unknown): unknown {
  return isMachineSnapshot(snapshot) ? snapshot.machine.getPersistedSnapshot(snapshot) : snapshot;
}
