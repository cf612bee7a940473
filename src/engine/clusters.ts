import { type IdentifierContext, type IdentifierEvent, type IdentifierMachine, type LinkEvent, startingSnapshot } from '../../actors/identifier.machine.ts';
import { deadline } from '../../actors/buffer.ts';
import type { Bounds, Buffered } from '../../actors/types.ts';
import type { RelinkPolicy } from '../domain/config.ts';
import { parseIdKey } from '../domain/identifiers.ts';
import type { ActorSystem } from './actor-system.ts';
import { DeadlineHeap } from './deadline-heap.ts';

/** A buffering actor's cluster as its snapshot holds it (live or persisted): the persisted form. */
export interface ClusterState {
  readonly members: readonly string[];
  /** Its buffer's deadline under the ttl it was worked out with (the config's then). */
  readonly deadline: number | null;
  readonly buffer: readonly Buffered[];
}

/** A cluster as a checkpoint gives it back: its actor's address, members and buffer (its deadline is worked out again, under the current ttl). */
export type StoredCluster = { readonly address: string } & Pick<ClusterState, 'members' | 'buffer'>;

/** The members, deadline and buffer of an identifier actor's snapshot, live or persisted (read in place, no copy). */
export function clusterState(snapshot: unknown): ClusterState {
  return (snapshot as { context: IdentifierContext }).context;
}

/**
 * The clusters of unlinked identifiers, each buffered for by one identifier actor (at the address
 * of its first member): which cluster an identifier is in, the members of each (as its actor's
 * context holds them, the form snapshots persist), and when each buffer next expires something.
 * Every message to a buffering actor goes through here, so the index and the deadline schedule
 * follow what the actor decides.
 */
export class Clusters {
  /** Unlinked identifier → address of the buffering actor of its cluster. */
  private readonly rootOf = new Map<string, string>();
  private readonly deadlines = new DeadlineHeap();
  /** Buffering actor → the deadline last pushed on the heap for it (older entries are stale). */
  private readonly scheduled = new Map<string, number>();

  constructor(
    private readonly actors: ActorSystem<IdentifierMachine>,
    private readonly machine: IdentifierMachine,
    private readonly bounds: Bounds,
    private readonly policyOf: (kind: string) => RelinkPolicy,
  ) {}

  /**
   * A cluster read back from a checkpoint (its actor is in the store), due at its buffer's
   * deadline under the current ttl (the checkpoint's may have been written under another).
   */
  restore({ address, members, buffer }: StoredCluster): void {
    for (const key of members) this.rootOf.set(key, address);
    this.schedule(address, deadline(buffer, this.bounds.ttlMs));
  }

  /** Identifiers buffering. */
  get size(): number {
    return this.rootOf.size;
  }

  /** The address of the buffering actor of the identifier's cluster, if it is in one. */
  root(key: string): string | undefined {
    return this.rootOf.get(key);
  }

  /** Every identifier of the cluster buffered for at `address`. */
  members(address: string): readonly string[] {
    return clusterState(this.actors.peek(address)).members;
  }

  /**
   * Buffers an event under its third-party identifiers: in their cluster, in a new one when none
   * has one, or, when they are in several, in the one they all join.
   */
  buffer(item: Buffered, keys: readonly string[], watermark: number): void {
    const roots: string[] = [];
    const fresh: string[] = [];
    for (const key of keys) {
      const root = this.rootOf.get(key);
      if (root === undefined) fresh.push(key);
      else if (!roots.includes(root)) roots.push(root);
    }
    if (roots.length === 0) {
      const address = fresh[0]!;
      for (const key of fresh) this.rootOf.set(key, address);
      const input = { key: address, members: fresh, policy: this.policyOf(parseIdKey(address).kind), first: item };
      const snapshot = startingSnapshot(this.machine, input, this.bounds);
      this.actors.restore(address, snapshot);
      this.schedule(address, clusterState(snapshot).deadline);
      return;
    }
    // Clusters meet: the largest absorbs the others (union by size).
    let target = roots[0]!;
    let most = -1;
    for (const root of roots) {
      const n = this.members(root).length;
      if (n > most) {
        most = n;
        target = root;
      }
    }
    for (const root of roots) {
      if (root === target) continue;
      const other = this.actors.peek(root)!.context; // its buffer moves with its members
      this.forget(root);
      for (const key of other.members) this.rootOf.set(key, target);
      this.send(target, { type: 'ABSORB', members: other.members, buffer: other.buffer, watermark });
    }
    if (fresh.length > 0) {
      for (const key of fresh) this.rootOf.set(key, target);
      this.send(target, { type: 'ABSORB', members: fresh, buffer: [], watermark });
    }
    this.send(target, { type: 'BUFFER', item, watermark });
  }

  /** The cluster at `address` is linked: its actor flushes its buffer, and the cluster is no more. */
  link(address: string, event: LinkEvent): void {
    for (const key of this.members(address)) this.rootOf.delete(key);
    this.actors.send(address, event);
    this.forget(address);
  }

  /** Whether the input's time passes some buffer's deadline (when it moves the watermark). */
  anyDueBefore(time: number): boolean {
    return (this.deadlines.peek()?.at ?? Infinity) < time;
  }

  /** The buffers whose deadline `time` passes, without expiring anything. */
  *dueBefore(time: number): Generator<string> {
    for (const { at, address } of this.deadlines.below(time)) if (this.scheduled.get(address) === at) yield address;
  }

  /** The watermark moved to `time`: every buffer whose deadline it passed expires what is too old. */
  expire(time: number): void {
    for (let next = this.deadlines.peek(); next !== undefined && next.at < time; next = this.deadlines.peek()) {
      this.deadlines.pop();
      if (this.scheduled.get(next.address) !== next.at) continue; // stale: the buffer moved on
      this.scheduled.delete(next.address);
      this.send(next.address, { type: 'WATERMARK', watermark: time });
    }
  }

  /** End of an offline run: every buffer releases what it holds. */
  giveUp(watermark: number): void {
    for (const address of this.actors.addresses()) {
      if (this.actors.peek(address)?.hasTag('buffering')) this.send(address, { type: 'GIVE_UP', watermark });
    }
  }

  /** Sends to a buffering actor and keeps the deadline schedule and the index in step. */
  private send(address: string, event: IdentifierEvent): void {
    const after = this.actors.send(address, event);
    const cluster = clusterState(after);
    if (after.status === 'done') {
      for (const key of cluster.members) if (this.rootOf.get(key) === address) this.rootOf.delete(key);
      this.scheduled.delete(address);
    } else {
      this.schedule(address, cluster.deadline);
    }
  }

  private forget(address: string): void {
    this.actors.forget(address);
    this.scheduled.delete(address);
  }

  private schedule(address: string, deadline: number | null): void {
    if (deadline === null) this.scheduled.delete(address);
    else if (this.scheduled.get(address) !== deadline) {
      this.scheduled.set(address, deadline);
      this.deadlines.push({ at: deadline, address });
    }
  }
}
