import { createIdentifierMachine, type IdentifierEvent } from '../../actors/identifier.machine.ts';
import type { AuditFact, Buffered, UnmatchedReason } from '../../actors/types.ts';
import { createUserMachine } from '../../actors/user.machine.ts';
import { type Config, relinkPolicy } from '../domain/config.ts';
import { type XrefEvent, eventTime } from '../domain/envelope.ts';
import { type Identifier, type JunkRule, idKey, junkRule, parseIdKey } from '../domain/identifiers.ts';
import { ActorSystem } from './actor-system.ts';
import { DeadlineHeap } from './deadline-heap.ts';
import { type Sink, userRef } from './outputs.ts';
import { MemorySnapshotStore, type SnapshotStore } from './snapshot-store.ts';

export interface EngineOptions {
  readonly config: Config;
  readonly sink: Sink;
  /** Live actors kept per machine before the least recently used is passivated. */
  readonly maxLiveActors?: number;
  readonly identifierStore?: SnapshotStore;
  readonly userStore?: SnapshotStore;
}

/** A third-party identifier's place in the identity graph: its user and the input that linked it. */
interface Link {
  readonly user: string;
  readonly seq: number;
}

export interface EngineStats {
  events: number;
  duplicates: number;
  resolved: number;
  unmatched: number;
  audits: number;
}

/**
 * Applies the identity rules of DESIGN.md §3 to a log of events, one input at a time, in log
 * order. The identity graph (third-party id → user) is plain data; actors exist only where there
 * is work: a cluster of unlinked identifiers with a buffer, a user deciding a link, or a linked
 * identifier deciding a claim by another user.
 */
export class IdentityEngine {
  readonly stats: EngineStats = { events: 0, duplicates: 0, resolved: 0, unmatched: 0, audits: 0 };
  private readonly links = new Map<string, Link>();
  /** Unlinked identifier → address of the buffering actor of its cluster. */
  private readonly clusterOf = new Map<string, string>();
  private readonly seen = new Set<string>();
  private readonly userKeys = new Map<string, string>();
  private readonly deadlines = new DeadlineHeap();
  private readonly identifierMachine;
  private readonly identifiers;
  private readonly users;
  private readonly isJunk: JunkRule;
  private readonly internalRank: ReadonlyMap<string, number>;
  private readonly config: Config;
  private readonly sink: Sink;
  private watermarkMs = -Infinity;
  private nextSeq = 1;

  constructor(options: EngineOptions) {
    this.config = options.config;
    this.sink = options.sink;
    this.isJunk = junkRule(this.config.junkValues, this.config.junkPattern === undefined ? undefined : new RegExp(this.config.junkPattern));
    this.internalRank = new Map(this.config.internal.map((kind, i) => [kind, i]));
    const maxLive = options.maxLiveActors ?? 100_000;
    const audit = (_: unknown, fact: AuditFact) => this.audit(fact);
    this.identifierMachine = createIdentifierMachine(this.config.buffer).provide({
      actions: {
        resolve: (_, { item, user }) => this.resolve(item.event, item.seq, user),
        release: (_, { item, reason }) => this.unmatched(item.event, item.seq, reason),
        audit,
      },
    });
    this.identifiers = new ActorSystem(this.identifierMachine, options.identifierStore ?? new MemorySnapshotStore(), maxLive);
    this.users = new ActorSystem(createUserMachine(this.config.maxIdsPerUser).provide({ actions: { audit } }), options.userStore ?? new MemorySnapshotStore(), maxLive);
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
    const link = this.links.get(idKey(kind, value));
    return link === undefined ? undefined : userRef(link.user);
  }

  /**
   * Applies one input. `seq` is its log position (defaults to the next one); `time` its event time
   * (defaults to the timestamp; the streaming service passes the publish time when there is none).
   */
  ingest(event: XrefEvent, seq: number = this.nextSeq, time: number | undefined = eventTime(event)): 'accepted' | 'duplicate' {
    if (this.seen.has(event.id)) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.seen.add(event.id);
    this.stats.events++;
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    if (time !== undefined && time > this.watermarkMs) this.advance(time);

    let user: string | undefined;
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
        user = this.intern(key);
      }
    }
    if (junk.length > 0 && (user !== undefined || third.length > 0)) {
      for (const identifier of junk) this.audit({ reason: 'refused', cause: 'junk', identifier, user, seq, eventId: event.id });
    }

    if (user !== undefined) {
      this.resolve(event, seq, user, parseIdKey(user));
      for (const key of third) this.link(key, user, seq, event.id);
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
      if (this.identifiers.peek(address)?.hasTag('buffering')) this.sendCluster(address, { type: 'GIVE_UP' });
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
          this.audit({ reason: 'conflict', identifier: key, user: link.user, claimedBy: owner.user, seq, eventId: event.id });
        }
      }
    } else {
      // A chain: the event's other ids join its user first, so `via` does not depend on arrival order.
      for (const key of third) if (!this.links.has(key)) this.link(key, owner.user, seq, event.id);
    }
    this.resolve(event, seq, owner.user);
  }

  private buffer(item: Buffered, third: string[]): void {
    if (item.time !== undefined && item.time + this.config.buffer.ttlMs < this.watermarkMs) {
      this.unmatched(item.event, item.seq, 'expired');
      return;
    }
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
      const snapshot = this.identifiers.spawn(address, { key: address, members: fresh, policy: relinkPolicy(this.config, parseIdKey(address).kind), first: item });
      this.schedule(address, null, snapshot.context.deadline);
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
      this.identifiers.forget(root);
      for (const key of other.members) this.clusterOf.set(key, target);
      this.sendCluster(target, { type: 'ABSORB', members: other.members, buffer: other.buffer });
    }
    if (fresh.length > 0) {
      for (const key of fresh) this.clusterOf.set(key, target);
      this.sendCluster(target, { type: 'ABSORB', members: fresh, buffer: [] });
    }
    this.sendCluster(target, { type: 'BUFFER', item });
  }

  /** Links a third-party identifier (and its whole cluster) to a user, or decides a claim. */
  private link(key: string, user: string, seq: number, eventId: string): void {
    const current = this.links.get(key);
    if (current !== undefined) {
      if (current.user !== user) this.claim(key, current.user, user, seq, eventId);
      return;
    }
    const root = this.clusterOf.get(key);
    if (root === undefined) {
      if (this.accept(user, key, seq, eventId)) this.setLink(key, user, seq, eventId);
      return;
    }
    const members = this.identifiers.peek(root)!.context.members;
    const accepted = members.filter((member) => this.accept(user, member, seq, eventId));
    if (accepted.length === 0) return;
    for (const member of members) this.clusterOf.delete(member);
    for (const member of accepted) this.setLink(member, user, seq, eventId);
    this.sendCluster(root, { type: 'LINK', user, seq, eventId });
    this.identifiers.forget(root);
  }

  /** A linked identifier seen with another user: its machine decides by the kind's relink policy. */
  private claim(key: string, owner: string, claimant: string, seq: number, eventId: string): void {
    if (!this.accept(claimant, key, seq, eventId)) return;
    const address = key;
    this.identifiers.restore(
      address,
      this.identifierMachine.resolveState({
        value: 'linked',
        context: { key, members: [key], buffer: [], deadline: null, user: owner, policy: relinkPolicy(this.config, parseIdKey(key).kind) },
      }),
    );
    const after = this.identifiers.send(address, { type: 'LINK', user: claimant, seq, eventId }).context.user;
    this.identifiers.forget(address);
    if (after === claimant) {
      this.links.set(key, { user: claimant, seq });
      this.users.send(owner, { type: 'UNLINK', kind: parseIdKey(key).kind });
    } else {
      this.users.send(claimant, { type: 'UNLINK', kind: parseIdKey(key).kind });
    }
  }

  /** Asks the user's actor whether it takes one more identifier of this kind (the per-kind cap). */
  private accept(user: string, key: string, seq: number, eventId: string): boolean {
    if (!this.users.has(user)) this.users.spawn(user, { key: user });
    const kind = parseIdKey(key).kind;
    return this.users.send(user, { type: 'LINK', identifier: key, kind, seq, eventId }).context.decision === 'accepted';
  }

  private setLink(key: string, user: string, seq: number, eventId: string): void {
    this.links.set(key, { user, seq });
    this.audit({ reason: 'link', identifier: key, user, seq, eventId });
  }

  /** Sends to a buffering actor and keeps the deadline heap and the cluster index in step. */
  private sendCluster(address: string, event: IdentifierEvent) {
    const before = this.identifiers.peek(address)!.context;
    const after = this.identifiers.send(address, event);
    if (after.status === 'done') {
      for (const key of before.members) if (this.clusterOf.get(key) === address) this.clusterOf.delete(key);
    } else {
      this.schedule(address, before.deadline, after.context.deadline);
    }
    return after;
  }

  private schedule(address: string, before: number | null, after: number | null): void {
    if (after !== null && after !== before) this.deadlines.push({ at: after, address });
  }

  /** The watermark moved: every buffer whose deadline it passed expires what is too old. */
  private advance(time: number): void {
    this.watermarkMs = time;
    for (let next = this.deadlines.peek(); next !== undefined && next.at < time; next = this.deadlines.peek()) {
      this.deadlines.pop();
      const snapshot = this.identifiers.peek(next.address);
      if (snapshot === undefined || !snapshot.hasTag('buffering') || snapshot.context.deadline !== next.at) continue; // stale
      this.sendCluster(next.address, { type: 'WATERMARK', watermark: time });
    }
  }

  private intern(key: string): string {
    const known = this.userKeys.get(key);
    if (known !== undefined) return known;
    this.userKeys.set(key, key);
    return key;
  }

  /** The identifier an event reached its user through: its first third-party id linked to that user. */
  private via(event: XrefEvent, user: string): Identifier {
    let first: Identifier | undefined;
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      if (this.internalRank.has(kind) || this.isJunk(value)) continue;
      first ??= { kind, value };
      if (this.links.get(idKey(kind, value))?.user === user) return { kind, value };
    }
    return first ?? parseIdKey(user);
  }

  private resolve(event: XrefEvent, seq: number, user: string, via: Identifier = this.via(event, user)): void {
    this.stats.resolved++;
    const ref = userRef(user);
    this.sink.resolved({ outputId: `${event.id}:${ref.kind}.${ref.id}`, seq, event, user: ref, via });
  }

  private unmatched(event: XrefEvent, seq: number, reason: UnmatchedReason): void {
    this.stats.unmatched++;
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
