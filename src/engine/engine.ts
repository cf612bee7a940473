import { createIdentifierMachine, type IdentifierEvent, startingSnapshot } from '../../actors/identifier.machine.ts';
import type { AuditFact, Buffered, UnmatchedReason } from '../../actors/types.ts';
import { createUserMachine } from '../../actors/user.machine.ts';
import { type Config, relinkPolicy } from '../domain/config.ts';
import { type XrefEvent, eventTime } from '../domain/envelope.ts';
import { type Identifier, type JunkRule, idKey, junkRule, parseIdKey } from '../domain/identifiers.ts';
import { ActorSystem } from './actor-system.ts';
import { DeadlineHeap } from './deadline-heap.ts';
import { EventIdWindow } from './event-id-window.ts';
import { type Sink, type UserRef, userRef } from './outputs.ts';
import { MemorySnapshotStore, type SnapshotStore } from './snapshot-store.ts';

/**
 * What changed since the previous checkpoint: write it, and the state at `seq` is durable. Actor
 * snapshots may be live ones: `persistedSnapshot` gives what to store.
 */
export interface Checkpoint {
  readonly seq: number;
  readonly watermark: number;
  /** Each changed third-party identifier's link: its user (by key) and the input that linked it. */
  readonly links: ReadonlyMap<string, CheckpointLink>;
  readonly identifiers: Array<[address: string, snapshot: unknown]>;
  readonly users: Array<[address: string, snapshot: unknown]>;
}

/** Records a checkpoint holds: its changed links and actors. */
export function checkpointSize(checkpoint: Checkpoint): number {
  return checkpoint.links.size + checkpoint.identifiers.length + checkpoint.users.length;
}

export interface CheckpointLink {
  readonly user: { readonly key: string };
  readonly seq: number;
}

export interface EngineOptions {
  readonly config: Config;
  readonly sink: Sink;
  /** State to resume from (identifier and user snapshots must be in the stores, or loadable). */
  readonly resume?: {
    seq: number;
    watermark: number;
    /** Identity graph: third-party identifier key → user key and the input that linked it. */
    links: Iterable<readonly [key: string, link: { user: string; seq: number }]>;
    /** Each buffering actor's cluster members and deadline (the rest of its state is in its snapshot). */
    clusters: Iterable<{ address: string; members: readonly string[]; deadline: number | null }>;
    /** Event ids of the inputs before `seq` (at least the last `dedupWindow`) and their inputs, in log order. */
    seen?: Iterable<readonly [id: string, seq: number]>;
  };
  /** Live actors kept per machine before the least recently used is passivated. */
  readonly maxLiveActors?: number;
  /** An event id repeated within this many inputs is a duplicate (default: within the whole log). */
  readonly dedupWindow?: number;
  readonly identifierStore?: SnapshotStore;
  readonly userStore?: SnapshotStore;
}

/** Passivated actors an input will wake, by machine. */
export interface Touched {
  identifiers: string[];
  users: string[];
}

function addTouched(found: Touched | undefined, list: keyof Touched, address: string): Touched {
  found ??= { identifiers: [], users: [] };
  if (!found[list].includes(address)) found[list].push(address);
  return found;
}

/** A user, interned: one object per user however many identifiers point to it. */
interface UserEntry {
  /** `kind:id`: the user actor's address. */
  readonly key: string;
  readonly ref: UserRef;
}

/** A third-party identifier's place in the identity graph: its user and the input that linked it. */
interface Link {
  readonly user: UserEntry;
  readonly seq: number;
}

export interface EngineStats {
  events: number;
  duplicates: number;
  /** Events that had to wait in a buffer. */
  buffered: number;
  resolved: number;
  unmatched: number;
  audits: number;
  /** Unmatched events and audit records, by reason. */
  unmatchedBy: Record<string, number>;
  auditsBy: Record<string, number>;
}

/**
 * Applies the identity rules (docs/architecture.md, identity rules) to a log of events, one input at a time, in log
 * order. The identity graph (third-party id → user) is plain data; actors exist only where there
 * is work: a cluster of unlinked identifiers with a buffer, a user deciding a link, or a linked
 * identifier deciding a claim by another user.
 */
export class IdentityEngine {
  readonly stats: EngineStats = { events: 0, duplicates: 0, buffered: 0, resolved: 0, unmatched: 0, audits: 0, unmatchedBy: {}, auditsBy: {} };
  private readonly links = new Map<string, Link>();
  /**
   * Links changed since the last checkpoint, as they are now. Links are immutable (a change is a
   * new one), so a checkpoint takes this map as it is and the engine starts a new one.
   */
  private changedLinks = new Map<string, Link>();
  /** Unlinked identifier → address of the buffering actor of its cluster. */
  private readonly clusterOf = new Map<string, string>();
  private readonly seen: EventIdWindow;
  private readonly userEntries = new Map<string, UserEntry>();
  private readonly deadlines = new DeadlineHeap();
  /** Buffering actor → the deadline last pushed on the heap for it (older entries are stale). */
  private readonly scheduled = new Map<string, number>();
  private readonly identifierMachine;
  private readonly identifiers;
  private readonly users;
  private readonly isJunk: JunkRule;
  private readonly internalRank: ReadonlyMap<string, number>;
  private readonly config: Config;
  private readonly sink: Sink;
  /** Whether any kind has a per-user cap (then user actors exist). */
  private readonly capped: boolean;
  private watermarkMs = -Infinity;
  private nextSeq = 1;

  constructor(options: EngineOptions) {
    this.config = options.config;
    this.sink = options.sink;
    this.isJunk = junkRule(this.config.junkValues, this.config.junkPattern === undefined ? undefined : new RegExp(this.config.junkPattern));
    this.internalRank = new Map(this.config.internal.map((kind, i) => [kind, i]));
    this.capped = Object.keys(this.config.maxIdsPerUser).length > 0;
    const maxLive = options.maxLiveActors ?? 50_000;
    this.seen = new EventIdWindow(options.dedupWindow);
    const audit = (_: unknown, fact: AuditFact) => this.audit(fact);
    this.identifierMachine = createIdentifierMachine(this.config.buffer).provide({
      actions: {
        resolve: (_, { item, user }) => this.resolve(item.event, item.seq, this.user(user)),
        release: (_, { item, reason }) => this.unmatched(item.event, item.seq, reason),
        audit,
      },
    });
    this.identifiers = new ActorSystem(this.identifierMachine, options.identifierStore ?? new MemorySnapshotStore(), maxLive);
    this.users = new ActorSystem(createUserMachine(this.config.maxIdsPerUser).provide({ actions: { audit } }), options.userStore ?? new MemorySnapshotStore(), maxLive);
    if (options.resume !== undefined) this.resumeFrom(options.resume);
  }

  private resumeFrom(state: NonNullable<EngineOptions['resume']>): void {
    this.nextSeq = state.seq + 1;
    this.watermarkMs = state.watermark;
    for (const [key, link] of state.links) this.links.set(key, { user: this.user(link.user), seq: link.seq });
    for (const cluster of state.clusters) {
      for (const key of cluster.members) this.clusterOf.set(key, cluster.address);
      this.schedule(cluster.address, cluster.deadline);
    }
    for (const [id, seq] of state.seen ?? []) this.seen.note(id, seq);
  }

  /** The last input applied. */
  get seq(): number {
    return this.nextSeq - 1;
  }

  /** An input that was not an event (rejected before ingest) still moves the log position on. */
  skip(seq: number): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }

  /**
   * Everything that changed since the previous checkpoint. Actors passivated in between are in
   * their store already. Once this is written, the state as of `seq` is durable.
   */
  checkpoint(): Checkpoint {
    const links = this.changedLinks;
    this.changedLinks = new Map();
    return { seq: this.seq, watermark: this.watermarkMs, links, identifiers: this.identifiers.takeChanges(), users: this.users.takeChanges() };
  }

  /** Passivates actors that had no message for `idleMs`; they come back on their next one. */
  passivateIdle(idleMs: number): number {
    return this.identifiers.passivateIdle(idleMs) + this.users.passivateIdle(idleMs);
  }

  /**
   * The passivated actors that ingesting this input may wake, so that a store over a remote
   * backend can load them first: the clusters of its identifiers, the buffers whose deadline the
   * input's time passes, and (for capped kinds) the users involved. Undefined when none.
   */
  touches(event: XrefEvent, time: number | undefined = eventTime(event)): Touched | undefined {
    let found: Touched | undefined;
    const capped = this.capped;
    for (const kind in event.ids) {
      const key = idKey(kind, event.ids[kind]!);
      const root = this.clusterOf.get(key);
      if (root !== undefined && !this.identifiers.isReady(root)) found = addTouched(found, 'identifiers', root);
      if (capped) {
        const owner = this.internalRank.has(kind) ? key : this.links.get(key)?.user.key;
        if (owner !== undefined && this.users.has(owner) && !this.users.isReady(owner)) found = addTouched(found, 'users', owner);
      }
    }
    if (time !== undefined && time > this.watermarkMs && (this.deadlines.peek()?.at ?? Infinity) < time) {
      for (const { at, address } of this.deadlines.below(time)) {
        if (this.scheduled.get(address) === at && !this.identifiers.isReady(address)) found = addTouched(found, 'identifiers', address);
      }
    }
    return found;
  }

  /** The log's watermark: the greatest event time seen so far (epoch ms). */
  get watermark(): number {
    return this.watermarkMs;
  }

  /** Identifiers in the graph, and the live / passivated actors. */
  get size() {
    return {
      links: this.links.size,
      buffering: this.clusterOf.size,
      liveActors: this.identifiers.liveCount + this.users.liveCount,
      passivatedActors: this.identifiers.storedCount + this.users.storedCount,
    };
  }

  /** The user a third-party identifier is linked to now, if any. */
  whois(kind: string, value: string) {
    return this.links.get(idKey(kind, value))?.user.ref;
  }

  /**
   * Applies one input. `seq` is its log position (defaults to the next one); `time` its event time
   * (defaults to the timestamp; the streaming service passes the publish time when there is none).
   */
  ingest(event: XrefEvent, seq: number = this.nextSeq, time: number | undefined = eventTime(event)): 'accepted' | 'duplicate' {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    if (this.seen.check(event.id, seq)) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.stats.events++;
    if (time !== undefined && time > this.watermarkMs) this.advance(time);

    let user: UserEntry | undefined;
    let userRank = Infinity;
    const third: string[] = [];
    const junk: string[] = [];
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      const key = idKey(kind, value);
      const rank = this.internalRank.get(kind);
      if (this.isJunk(value)) junk.push(key);
      else if (rank === undefined) third.push(key);
      else if (rank < userRank) {
        userRank = rank;
        user = this.user(key);
      }
    }
    if (junk.length > 0 && (user !== undefined || third.length > 0)) {
      for (const identifier of junk) this.audit({ reason: 'refused', cause: 'junk', identifier, user: user?.key, seq, eventId: event.id });
    }

    if (user !== undefined) {
      // what the link flushes (older events) goes out first: a user's subject stays in log order
      this.linkAll(third, user, seq, event.id);
      this.resolve(event, seq, user, { kind: user.ref.kind, value: user.ref.id });
    } else if (third.length === 0) {
      this.unmatched(event, seq, 'junk');
    } else {
      this.placeThirdParty(event, seq, time, third);
    }
    return 'accepted';
  }

  /** End of an offline run: whatever is still buffered is released as `unlinked`. */
  finish(): void {
    for (const address of this.identifiers.addresses()) {
      if (this.identifiers.peek(address)?.hasTag('buffering')) this.sendCluster(address, { type: 'GIVE_UP', watermark: this.watermarkMs });
    }
  }

  /** An event with third-party identifiers only: follow a link if one exists, else buffer it. */
  private placeThirdParty(event: XrefEvent, seq: number, time: number | undefined, third: string[]): void {
    let owner: Link | undefined;
    let conflicting = false;
    for (const key of third) {
      const link = this.links.get(key);
      if (link === undefined) continue;
      if (owner !== undefined && link.user !== owner.user) conflicting = true;
      if (owner === undefined || link.seq > owner.seq) owner = link;
    }
    if (owner === undefined) {
      this.buffer({ seq, event, time }, third);
      return;
    }
    if (conflicting) {
      // Two users behind one event: it goes to the newest link; nobody is merged or moved.
      for (const key of third) {
        const link = this.links.get(key);
        if (link !== undefined && link.user !== owner.user) {
          this.audit({ reason: 'conflict', identifier: key, user: link.user.key, claimedBy: owner.user.key, seq, eventId: event.id });
        }
      }
    } else {
      // A chain: the event's other ids join its user first, so `via` does not depend on arrival order
      // (its linked ids are all the user's: nothing to decide for them).
      this.linkAll(third, owner.user, seq, event.id);
    }
    this.resolve(event, seq, owner.user, this.viaOf(third, owner.user));
  }

  /** `via` from the keys at hand: the first one linked to the user. */
  private viaOf(third: readonly string[], user: UserEntry): Identifier {
    for (const key of third) if (this.links.get(key)?.user === user) return parseIdKey(key);
    return parseIdKey(third[0]!);
  }

  private buffer(item: Buffered, third: string[]): void {
    if (item.time !== undefined && item.time + this.config.buffer.ttlMs < this.watermarkMs) {
      this.unmatched(item.event, item.seq, 'expired');
      return;
    }
    this.stats.buffered++;
    const roots: string[] = [];
    const fresh: string[] = [];
    for (const key of third) {
      const root = this.clusterOf.get(key);
      if (root === undefined) fresh.push(key);
      else if (!roots.includes(root)) roots.push(root);
    }
    if (roots.length === 0) {
      const address = fresh[0]!;
      for (const key of fresh) this.clusterOf.set(key, address);
      const input = { key: address, members: fresh, policy: relinkPolicy(this.config, parseIdKey(address).kind), first: item };
      const snapshot = startingSnapshot(this.identifierMachine, input, this.config.buffer);
      this.identifiers.restore(address, snapshot);
      this.schedule(address, snapshot.context.deadline);
      return;
    }
    // Clusters meet: the largest absorbs the others (union by size).
    let target = roots[0]!;
    let most = -1;
    for (const root of roots) {
      const n = this.identifiers.peek(root)!.context.members.length;
      if (n > most) {
        most = n;
        target = root;
      }
    }
    for (const root of roots) {
      if (root === target) continue;
      const other = this.identifiers.peek(root)!.context;
      this.forgetCluster(root);
      for (const key of other.members) this.clusterOf.set(key, target);
      this.sendCluster(target, { type: 'ABSORB', members: other.members, buffer: other.buffer, watermark: this.watermarkMs });
    }
    if (fresh.length > 0) {
      for (const key of fresh) this.clusterOf.set(key, target);
      this.sendCluster(target, { type: 'ABSORB', members: fresh, buffer: [], watermark: this.watermarkMs });
    }
    this.sendCluster(target, { type: 'BUFFER', item, watermark: this.watermarkMs });
  }

  /**
   * Links an event's third-party identifiers to a user. Each identifier is decided once: one whose
   * cluster an earlier one brought along was decided with it (a member refused by a cap then stays
   * refused, audited once).
   */
  private linkAll(keys: readonly string[], user: UserEntry, seq: number, eventId: string): void {
    // the members of the clusters linked so far (none in the common case: no allocation)
    let decided: readonly string[] | undefined;
    for (const key of keys) {
      if (decided?.includes(key)) continue;
      const members = this.link(key, user, seq, eventId);
      if (members !== undefined) decided = decided === undefined ? members : [...decided, ...members];
    }
  }

  /**
   * Links a third-party identifier (and its whole cluster) to a user, or decides a claim. Returns
   * the members of the cluster decided with it, if it was in one.
   */
  private link(key: string, user: UserEntry, seq: number, eventId: string): readonly string[] | undefined {
    const current = this.links.get(key);
    if (current !== undefined) {
      if (current.user !== user) this.claim(key, current.user, user, seq, eventId);
      return undefined;
    }
    const root = this.clusterOf.get(key);
    if (root === undefined) {
      if (this.accept(user, key, seq, eventId)) this.setLink(key, user, seq, eventId);
      return undefined;
    }
    const members = this.identifiers.peek(root)!.context.members;
    const accepted = members.filter((member) => this.accept(user, member, seq, eventId));
    if (accepted.length === 0) return members;
    for (const member of members) this.clusterOf.delete(member);
    for (const member of accepted) this.setLink(member, user, seq, eventId);
    this.sendCluster(root, { type: 'LINK', user: user.key, seq, eventId, watermark: this.watermarkMs });
    this.forgetCluster(root);
    return members;
  }

  /** A linked identifier seen with another user: its machine decides by the kind's relink policy. */
  private claim(key: string, owner: UserEntry, claimant: UserEntry, seq: number, eventId: string): void {
    if (!this.accept(claimant, key, seq, eventId)) return;
    const address = key;
    this.identifiers.restore(
      address,
      this.identifierMachine.resolveState({
        value: 'linked',
        context: { key, members: [key], buffer: [], deadline: null, user: owner.key, policy: relinkPolicy(this.config, parseIdKey(key).kind) },
      }),
    );
    const after = this.identifiers.send(address, { type: 'LINK', user: claimant.key, seq, eventId, watermark: this.watermarkMs }).context.user;
    this.identifiers.forget(address);
    const moved = after === claimant.key;
    if (moved) this.putLink(key, claimant, seq);
    this.release(moved ? owner : claimant, key);
  }

  /**
   * Asks the user's actor whether it takes one more identifier of this kind. Only kinds with a cap
   * need asking (the answer is otherwise always yes), so users of uncapped kinds never cost an actor.
   */
  private accept(user: UserEntry, key: string, seq: number, eventId: string): boolean {
    const kind = parseIdKey(key).kind;
    if (this.config.maxIdsPerUser[kind] === undefined) return true;
    if (!this.users.has(user.key)) this.users.spawn(user.key, { key: user.key });
    return this.users.send(user.key, { type: 'LINK', identifier: key, kind, seq, eventId }).context.decision === 'accepted';
  }

  /** Gives back a capped kind's place (the identifier moved on, or a claim was refused). */
  private release(user: UserEntry, key: string): void {
    const kind = parseIdKey(key).kind;
    if (this.config.maxIdsPerUser[kind] !== undefined) this.users.send(user.key, { type: 'UNLINK', kind });
  }

  private setLink(key: string, user: UserEntry, seq: number, eventId: string): void {
    this.putLink(key, user, seq);
    this.audit({ reason: 'link', identifier: key, user: user.key, seq, eventId });
  }

  /** Puts a link in the graph, and among the changes the next checkpoint writes. */
  private putLink(key: string, user: UserEntry, seq: number): void {
    const link = { user, seq };
    this.links.set(key, link);
    this.changedLinks.set(key, link);
  }

  /** Sends to a buffering actor and keeps the deadline heap and the cluster index in step. */
  private sendCluster(address: string, event: IdentifierEvent) {
    const after = this.identifiers.send(address, event);
    if (after.status === 'done') {
      for (const key of after.context.members) if (this.clusterOf.get(key) === address) this.clusterOf.delete(key);
      this.scheduled.delete(address);
    } else {
      this.schedule(address, after.context.deadline);
    }
    return after;
  }

  private forgetCluster(address: string): void {
    this.identifiers.forget(address);
    this.scheduled.delete(address);
  }

  private schedule(address: string, deadline: number | null): void {
    if (deadline === null) this.scheduled.delete(address);
    else if (this.scheduled.get(address) !== deadline) {
      this.scheduled.set(address, deadline);
      this.deadlines.push({ at: deadline, address });
    }
  }

  /** The watermark moved: every buffer whose deadline it passed expires what is too old. */
  private advance(time: number): void {
    this.watermarkMs = time;
    for (let next = this.deadlines.peek(); next !== undefined && next.at < time; next = this.deadlines.peek()) {
      this.deadlines.pop();
      if (this.scheduled.get(next.address) !== next.at) continue; // stale: the buffer moved on
      this.scheduled.delete(next.address);
      this.sendCluster(next.address, { type: 'WATERMARK', watermark: time });
    }
  }

  private user(key: string): UserEntry {
    let entry = this.userEntries.get(key);
    if (entry === undefined) {
      entry = { key, ref: userRef(key) };
      this.userEntries.set(key, entry);
    }
    return entry;
  }

  /** The identifier an event reached its user through: its first third-party id linked to that user. */
  private via(event: XrefEvent, user: UserEntry): Identifier {
    let first: Identifier | undefined;
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      if (this.internalRank.has(kind) || this.isJunk(value)) continue;
      first ??= { kind, value };
      if (this.links.get(idKey(kind, value))?.user === user) return { kind, value };
    }
    return first ?? { kind: user.ref.kind, value: user.ref.id };
  }

  private resolve(event: XrefEvent, seq: number, user: UserEntry, via: Identifier = this.via(event, user)): void {
    this.stats.resolved++;
    this.sink.resolved({ outputId: `${event.id}:${user.ref.kind}.${user.ref.id}`, seq, event, user: user.ref, via });
  }

  private unmatched(event: XrefEvent, seq: number, reason: UnmatchedReason): void {
    this.stats.unmatched++;
    this.stats.unmatchedBy[reason] = (this.stats.unmatchedBy[reason] ?? 0) + 1;
    let identifier: Identifier | undefined;
    for (const kind in event.ids) {
      if (this.internalRank.has(kind) || this.isJunk(event.ids[kind]!)) continue;
      identifier = { kind, value: event.ids[kind]! };
      break;
    }
    if (identifier === undefined) {
      const kind = Object.keys(event.ids)[0]!;
      identifier = { kind, value: event.ids[kind]! };
    }
    this.sink.unmatched({ outputId: `${event.id}:unmatched`, seq, event, reason, identifier });
  }

  private audit(fact: AuditFact): void {
    this.stats.audits++;
    this.stats.auditsBy[fact.reason] = (this.stats.auditsBy[fact.reason] ?? 0) + 1;
    this.sink.audit({
      outputId: `${fact.eventId}:${fact.reason}:${fact.identifier}`,
      reason: fact.reason,
      identifier: parseIdKey(fact.identifier),
      ...(fact.user === undefined ? {} : { user: userRef(fact.user) }),
      ...(fact.previous === undefined ? {} : { previous: userRef(fact.previous) }),
      ...(fact.claimedBy === undefined ? {} : { claimedBy: userRef(fact.claimedBy) }),
      ...(fact.cause === undefined ? {} : { cause: fact.cause }),
      seq: fact.seq,
      eventId: fact.eventId,
    });
  }
}
