import { conflictFact, linkFact, refusedFact } from '../../actors/audit-facts.ts';
import { isExpired } from '../../actors/buffer.ts';
import { createIdentifierMachine, linkedSnapshot } from '../../actors/identifier.machine.ts';
import type { AuditFact, Buffered, UnmatchedReason } from '../../actors/types.ts';
import { createUserMachine } from '../../actors/user.machine.ts';
import { type Config, relinkPolicy } from '../domain/config.ts';
import type { ControlCommand, ForgetCommand, HashedId, UnlinkCommand } from '../domain/control.ts';
import { type XrefEvent, eventTime } from '../domain/envelope.ts';
import type { IdHasher } from '../domain/id-hash.ts';
import { idKey, junkRule, parseIdKey } from '../domain/identifiers.ts';
import { ActorSystem } from './actor-system.ts';
import { Clusters, type StoredCluster } from './clusters.ts';
import { EventIdWindow } from './event-id-window.ts';
import { IdentityGraph, type Link, type UserEntry } from './identity-graph.ts';
import type { Resolved, Sink } from './outputs.ts';
import { type IdKinds, auditRecord, controlId, resolvedRecord, retractionId, suppressedId, unmatchedRecord, via } from './records.ts';
import { SuppressionList } from './suppression.ts';
import { MemorySnapshotStore, type SnapshotStore } from './snapshot-store.ts';
import { settingDefaults } from '../settings.ts';

/**
 * What changed since the previous checkpoint: write it, and the state at `seq` is durable. Actor
 * snapshots may be live ones: `persistedSnapshot` gives what to store.
 */
export interface Checkpoint {
  readonly seq: number;
  readonly watermark: number;
  /** Each changed third-party identifier's link: its user (by key) and the input that linked it. */
  readonly links: ReadonlyMap<string, CheckpointLink>;
  /** Links removed (a forgotten user's). */
  readonly removedLinks?: readonly string[];
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
    /** Each buffering actor's cluster members and buffer (the rest of its state is in its snapshot). */
    clusters: Iterable<StoredCluster>;
    /** Event ids of the inputs before `seq` (at least the last `dedupWindow`) and their inputs, in log order. */
    seen?: Iterable<readonly [id: string, seq: number]>;
    /** The suppression list as of `seq`: each suppressed hash and the forget request that suppressed it. */
    suppressed?: Iterable<readonly [hash: string, request: string]>;
    /** The links refused by `unlink --block` as of `seq` (see `blockKey`). */
    blocked?: Iterable<string>;
  };
  /** The installation's id hash (docs/erasure.md): needed to apply control inputs and to suppress. */
  readonly hasher?: IdHasher;
  /** Live actors kept per machine before the least recently used is passivated. */
  readonly maxLiveActors?: number;
  /** An event id repeated within this many inputs is a duplicate (default: within the whole log). */
  readonly dedupWindow?: number;
  readonly identifierStore?: SnapshotStore;
  readonly userStore?: SnapshotStore;
}

/** What a control input needs that only the outputs already published hold (docs/erasure.md). */
export interface ControlContext {
  /** forget: the hashes its first application found (its tombstone), when it was applied before. */
  readonly tombstone?: readonly string[];
  /**
   * unlink: the identifier as `unlinkTarget` found it (undefined: not linked), and its user's
   * resolutions standing before the unlink (published, not retracted). Without them, the engine
   * finds the identifier itself and retracts nothing.
   */
  readonly unlink?: { readonly target: UnlinkTarget | undefined; readonly standing: readonly Resolved[] };
}

/** An identifier an unlink names, as the engine found it: its key and its user. */
export interface UnlinkTarget {
  readonly key: string;
  readonly user: UserEntry;
}

/** A link `unlink --block` refuses: the identifier's hash and the user's. */
export function blockKey(identifierHash: string, userHash: string): string {
  return `${identifierHash}>${userHash}`;
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

export interface EngineStats {
  events: number;
  duplicates: number;
  /** Events dropped because they carried a forgotten (suppressed) id. */
  suppressed: number;
  /** Users forgotten. */
  forgotten: number;
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
  readonly stats: EngineStats = { events: 0, duplicates: 0, suppressed: 0, forgotten: 0, buffered: 0, resolved: 0, unmatched: 0, audits: 0, unmatchedBy: {}, auditsBy: {} };
  private readonly graph = new IdentityGraph();
  private readonly clusters: Clusters;
  private readonly seen: EventIdWindow;
  private readonly suppression: SuppressionList;
  /** Links refused by `unlink --block` (`blockKey`). */
  private readonly blocked = new Set<string>();
  private readonly identifierMachine;
  private readonly identifiers;
  private readonly users;
  private readonly kinds: IdKinds;
  private readonly config: Config;
  private readonly sink: Sink;
  /** Whether any kind has a per-user cap (then user actors exist). */
  private readonly capped: boolean;
  private watermarkMs = -Infinity;
  private nextSeq = 1;

  constructor(options: EngineOptions) {
    this.config = options.config;
    this.sink = options.sink;
    const isJunk = junkRule(this.config.junkValues, this.config.junkPattern === undefined ? undefined : new RegExp(this.config.junkPattern));
    this.kinds = { internal: new Map(this.config.internal.map((kind, i) => [kind, i])), isJunk };
    this.capped = Object.keys(this.config.maxIdsPerUser).length > 0;
    const maxLive = options.maxLiveActors ?? settingDefaults().maxLiveActors;
    this.seen = new EventIdWindow(options.dedupWindow);
    this.suppression = new SuppressionList(options.hasher);
    const audit = (_: unknown, fact: AuditFact) => this.audit(fact);
    this.identifierMachine = createIdentifierMachine(this.config.buffer).provide({
      actions: {
        resolve: (_, { item, user }) => this.resolve(item.event, item.seq, this.graph.user(user), false, undefined, item.after),
        release: (_, { item, reason }) => this.unmatched(item.event, item.seq, reason, item.after),
        audit,
      },
    });
    this.identifiers = new ActorSystem(this.identifierMachine, options.identifierStore ?? new MemorySnapshotStore(), maxLive);
    this.users = new ActorSystem(createUserMachine(this.config.maxIdsPerUser).provide({ actions: { audit } }), options.userStore ?? new MemorySnapshotStore(), maxLive);
    this.clusters = new Clusters(this.identifiers, this.identifierMachine, this.config.buffer, (kind) => relinkPolicy(this.config, kind));
    if (options.resume !== undefined) this.resumeFrom(options.resume);
  }

  private resumeFrom(state: NonNullable<EngineOptions['resume']>): void {
    this.nextSeq = state.seq + 1;
    this.watermarkMs = state.watermark;
    for (const [key, link] of state.links) this.graph.restore(key, link.user, link.seq);
    for (const cluster of state.clusters) this.clusters.restore(cluster);
    for (const [id, seq] of state.seen ?? []) this.seen.note(id, seq);
    for (const [hash, request] of state.suppressed ?? []) this.suppression.add([hash], request);
    for (const key of state.blocked ?? []) this.blocked.add(key);
  }

  /** The last input applied. */
  get seq(): number {
    return this.nextSeq - 1;
  }

  /**
   * An input that was not an event (rejected before ingest) still moves the log position on.
   * @internal
   */
  skip(seq: number): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }

  /**
   * Everything that changed since the previous checkpoint. Actors passivated in between are in
   * their store already. Once this is written, the state as of `seq` is durable.
   * @internal
   */
  checkpoint(): Checkpoint {
    return { seq: this.seq, watermark: this.watermarkMs, links: this.graph.takeChanges(), removedLinks: this.graph.takeRemoved(), identifiers: this.identifiers.takeChanges(), users: this.users.takeChanges() };
  }

  /**
   * Passivates actors that had no message for `idleMs`; they come back on their next one.
   * @internal
   */
  passivateIdle(idleMs: number): number {
    return this.identifiers.passivateIdle(idleMs) + this.users.passivateIdle(idleMs);
  }

  /**
   * The passivated actors that ingesting this input may wake, so that a store over a remote
   * backend can load them first: the clusters of its identifiers, the buffers whose deadline the
   * input's time passes, and (for capped kinds) the users involved. Undefined when none.
   * @internal
   */
  touches(event: XrefEvent, time: number | undefined = eventTime(event)): Touched | undefined {
    let found: Touched | undefined;
    const capped = this.capped;
    for (const kind in event.ids) {
      const key = idKey(kind, event.ids[kind]!);
      const root = this.clusters.root(key);
      if (root !== undefined && !this.identifiers.isReady(root)) found = addTouched(found, 'identifiers', root);
      if (capped) {
        const owner = this.kinds.internal.has(kind) ? key : this.graph.userOf(key)?.key;
        if (owner !== undefined && this.users.has(owner) && !this.users.isReady(owner)) found = addTouched(found, 'users', owner);
      }
    }
    if (time !== undefined && time > this.watermarkMs && this.clusters.anyDueBefore(time)) {
      for (const address of this.clusters.dueBefore(time)) if (!this.identifiers.isReady(address)) found = addTouched(found, 'identifiers', address);
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
      links: this.graph.size,
      buffering: this.clusters.size,
      liveActors: this.identifiers.liveCount + this.users.liveCount,
      passivatedActors: this.identifiers.storedCount + this.users.storedCount,
    };
  }

  /** The user a third-party identifier is linked to now, if any. */
  whois(kind: string, value: string) {
    return this.graph.userOf(idKey(kind, value))?.ref;
  }

  /**
   * Applies one input. `seq` is its log position (defaults to the next one); `time` its event time
   * (defaults to the timestamp; the streaming service passes the publish time when there is none).
   */
  ingest(event: XrefEvent, seq: number = this.nextSeq, time: number | undefined = eventTime(event)): 'accepted' | 'duplicate' | 'suppressed' {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    // before the dedup window: a suppressed event leaves no trace, not even its id (a replay never sees it)
    if (this.suppression.size > 0 && this.suppressIfForgotten(event, seq)) return 'suppressed';
    if (this.seen.check(event.id, seq)) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.stats.events++;
    if (time !== undefined && time > this.watermarkMs) this.advance(time);
    const third: string[] = [];
    const user = this.sortIds(event, seq, third);
    if (user !== undefined) this.placeWithUser(event, seq, user, third);
    else if (third.length === 0) this.unmatched(event, seq, 'junk');
    else this.placeThirdParty(event, seq, time, third);
    return 'accepted';
  }

  /**
   * Applies a control input at its place in the log (docs/erasure.md), with what only the outputs
   * hold (`context`): a forget applied before (a restart, a replay) suppresses its tombstone's
   * hashes again whatever the state holds now; an unlink retracts from the standing resolutions.
   */
  control(command: ControlCommand, seq: number, context: ControlContext = {}): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    const { request, by, at } = command;
    switch (command.verb) {
      case 'forget':
        this.forget(command, seq, context.tombstone);
        return;
      case 'unsuppress': {
        const lifted = this.suppression.lift(command.identifier.hash);
        this.sink.control?.({ outputId: controlId(request, command.verb), reason: 'unsuppress', request, seq, by, at, kind: command.identifier.kind, lifted });
        return;
      }
      case 'unlink':
        this.unlink(command, seq, context.unlink ?? { target: this.unlinkTarget(command.identifier), standing: [] });
        return;
    }
  }

  /** The linked identifier an unlink names (by kind and hash), and its user; undefined when it is not linked. */
  unlinkTarget(id: HashedId): UnlinkTarget | undefined {
    for (const key of this.graph.keysOfKind(id.kind)) {
      if (this.suppression.hash(id.kind, key.slice(id.kind.length + 1)) === id.hash) return { key, user: this.graph.userOf(key)! };
    }
    return undefined;
  }

  /**
   * The passivated actors an unlink of `target` will wake: the user's (a capped kind gives its
   * place back) and those the standing resolutions placed again touch. Undefined when none.
   * @internal
   */
  unlinkTouches(target: UnlinkTarget, standing: readonly Resolved[]): Touched | undefined {
    let found: Touched | undefined;
    if (this.users.has(target.user.key) && !this.users.isReady(target.user.key)) found = addTouched(found, 'users', target.user.key);
    for (const resolution of standing) {
      const touched = this.touches(resolution.event, undefined);
      for (const address of touched?.identifiers ?? []) found = addTouched(found, 'identifiers', address);
      for (const address of touched?.users ?? []) found = addTouched(found, 'users', address);
    }
    return found;
  }

  /**
   * Detaches an identifier from its user at this input. The user's resolutions that came through
   * it (`standing`, as published) are retracted, unless the event still reaches the user through
   * another of its ids, and placed again as if the identifier had never been linked: with their
   * own input and time, so they follow the other ids' links, or are buffered, to expire or flush
   * on a later link like any buffered event.
   */
  private unlink(command: UnlinkCommand, seq: number, { target, standing }: NonNullable<ControlContext['unlink']>): void {
    const taken: Resolved[] = [];
    if (target !== undefined) {
      const { key, user } = target;
      this.graph.unlinkKey(key);
      this.release(user, key);
      if (command.block) this.blocked.add(blockKey(command.identifier.hash, this.suppression.hash(user.ref.kind, user.ref.id)));
      // in log order, however they were published (a flushed buffer comes after newer events)
      for (const resolution of [...standing].sort((a, b) => a.seq - b.seq)) {
        if (resolution.user.kind !== user.ref.kind || resolution.user.id !== user.ref.id || idKey(resolution.via.kind, resolution.via.value) !== key) continue;
        if (this.usableThirdParty(resolution.event).some((other) => this.graph.userOf(other) === user)) continue;
        taken.push(resolution);
      }
    }
    const { request, by, at } = command;
    // audited first: what placing the events again decides (a link to another user) comes after the unlink
    this.sink.control?.({ outputId: controlId(request, command.verb), reason: 'unlink', request, seq, by, at, kind: command.identifier.kind, found: target !== undefined, retracted: taken.length, block: command.block });
    for (const resolution of taken) {
      this.sink.retract?.({ outputId: retractionId(resolution.outputId, seq), seq, user: target!.user.ref, eventId: resolution.event.id, retracted: resolution.outputId, reason: 'unlink' });
      this.placeThirdParty(resolution.event, resolution.seq, eventTime(resolution.event), this.usableThirdParty(resolution.event), seq);
    }
  }

  /** An event's third-party ids that can link (not internal, not junk), as keys. */
  private usableThirdParty(event: XrefEvent): string[] {
    const out: string[] = [];
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      if (!this.kinds.internal.has(kind) && !this.kinds.isJunk(value)) out.push(idKey(kind, value));
    }
    return out;
  }

  /** The user of an internal kind whose key has this hash, among those the graph knows. */
  private userWithHash(kind: string, hash: string): UserEntry | undefined {
    for (const user of this.graph.usersOfKind(kind)) if (this.suppression.hash(kind, user.ref.id) === hash) return user;
    return undefined;
  }

  /**
   * Forgets a user: its links, its actor and its buffers go; what was decided for it is erased
   * (the sink's `erase`); the hashes of its cluster are suppressed.
   */
  private forget(command: ForgetCommand, seq: number, tombstone: readonly string[] | undefined): void {
    const user = this.userWithHash(command.user.kind, command.user.hash);
    const keys = user === undefined ? [] : [user.key, ...this.graph.identifiersOf(user)];
    const hashes = tombstone ?? (keys.length === 0 ? [command.user.hash] : keys.map((key) => { const id = parseIdKey(key); return this.suppression.hash(id.kind, id.value); }));
    if (user !== undefined) {
      this.graph.forget(user);
      if (this.users.has(user.key)) this.users.forget(user.key);
    }
    if (command.suppress) this.suppression.add(hashes, command.request);
    this.stats.forgotten++;
    this.sink.erase?.({ request: command.request, seq, userKind: command.user.kind, user: user?.ref, keys, hashes });
    this.sink.control?.({ outputId: controlId(command.request, command.verb), reason: 'forget', request: command.request, seq, by: command.by, at: command.at });
  }

  /** Drops an event that carries a suppressed id: audited without its payload. */
  private suppressIfForgotten(event: XrefEvent, seq: number): boolean {
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      if (this.kinds.isJunk(value)) continue;
      const request = this.suppression.check(kind, value);
      if (request === undefined) continue;
      this.stats.suppressed++;
      this.sink.control?.({ outputId: suppressedId(event.id), reason: 'suppressed', request, seq, eventId: event.id, kind });
      return true;
    }
    return false;
  }

  /** End of an offline run: whatever is still buffered is released as `unlinked`. */
  finish(): void {
    this.clusters.giveUp(this.watermarkMs);
  }

  /**
   * Sorts an event's ids: returns its user (its first internal id by configured rank) and puts its
   * third-party ids in `third`; junk ids are refused, audited when the event has anything else.
   */
  private sortIds(event: XrefEvent, seq: number, third: string[]): UserEntry | undefined {
    let user: UserEntry | undefined;
    let userRank = Infinity;
    let junk: string[] | undefined; // rare: no array for the others
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      const key = idKey(kind, value);
      const rank = this.kinds.internal.get(kind);
      if (this.kinds.isJunk(value)) (junk ??= []).push(key);
      else if (rank === undefined) third.push(key);
      else if (rank < userRank) {
        userRank = rank;
        user = this.graph.user(key);
      }
    }
    if (junk !== undefined && (user !== undefined || third.length > 0)) {
      for (const identifier of junk) this.audit(refusedFact(identifier, user?.key, 'junk', seq, event.id));
    }
    return user;
  }

  /** An event with an internal id: its third-party ids join its user, and it goes to that user. */
  private placeWithUser(event: XrefEvent, seq: number, user: UserEntry, third: readonly string[]): void {
    // what the link flushes (older events) goes out first: a user's subject stays in log order
    this.linkAll(third, user, seq, event.id);
    this.resolve(event, seq, user, true);
  }

  /** An event with third-party identifiers only: follow a link if one exists, else buffer it. */
  private placeThirdParty(event: XrefEvent, seq: number, time: number | undefined, third: string[], after?: number): void {
    let owner: Link | undefined;
    let conflicting = false;
    for (const key of third) {
      const link = this.graph.linkOf(key);
      if (link === undefined) continue;
      if (owner !== undefined && link.user !== owner.user) conflicting = true;
      if (owner === undefined || link.seq > owner.seq) owner = link;
    }
    if (owner === undefined) {
      this.buffer(after === undefined ? { seq, event, time } : { seq, event, time, after }, third);
      return;
    }
    if (conflicting) {
      // Two users behind one event: it goes to the newest link; nobody is merged or moved.
      for (const key of third) {
        const other = this.graph.userOf(key);
        if (other !== undefined && other !== owner.user) this.audit(conflictFact(key, other.key, owner.user.key, seq, event.id));
      }
    } else {
      // A chain: the event's other ids join its user first, so `via` does not depend on arrival order
      // (its linked ids are all the user's: nothing to decide for them).
      this.linkAll(third, owner.user, seq, event.id);
    }
    this.resolve(event, seq, owner.user, false, third, after);
  }

  private buffer(item: Buffered, third: readonly string[]): void {
    if (isExpired(item, this.watermarkMs, this.config.buffer.ttlMs)) {
      this.unmatched(item.event, item.seq, 'expired', item.after);
      return;
    }
    this.stats.buffered++;
    this.clusters.buffer(item, third, this.watermarkMs);
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
    const current = this.graph.userOf(key);
    if (current !== undefined) {
      if (current !== user) this.claim(key, current, user, seq, eventId);
      return undefined;
    }
    const root = this.clusters.root(key);
    if (root === undefined) {
      if (this.accept(user, key, seq, eventId)) this.setLink(key, user, seq, eventId);
      return undefined;
    }
    const members = this.clusters.members(root);
    const accepted = members.filter((member) => this.accept(user, member, seq, eventId));
    if (accepted.length === 0) return members;
    for (const member of accepted) this.setLink(member, user, seq, eventId);
    this.clusters.link(root, { type: 'LINK', user: user.key, seq, eventId, watermark: this.watermarkMs });
    return members;
  }

  /** A linked identifier seen with another user: its machine decides by the kind's relink policy. */
  private claim(key: string, owner: UserEntry, claimant: UserEntry, seq: number, eventId: string): void {
    if (!this.accept(claimant, key, seq, eventId)) return;
    const address = key;
    this.identifiers.restore(address, linkedSnapshot(this.identifierMachine, key, owner.key, relinkPolicy(this.config, parseIdKey(key).kind)));
    const after = this.identifiers.send(address, { type: 'LINK', user: claimant.key, seq, eventId, watermark: this.watermarkMs }).context.user;
    this.identifiers.forget(address);
    const moved = after === claimant.key;
    if (moved) this.graph.link(key, claimant, seq);
    this.release(moved ? owner : claimant, key);
  }

  /**
   * Asks the user's actor whether it takes one more identifier of this kind. Only kinds with a cap
   * need asking (the answer is otherwise always yes), so users of uncapped kinds never cost an actor.
   */
  private accept(user: UserEntry, key: string, seq: number, eventId: string): boolean {
    const kind = parseIdKey(key).kind;
    if (this.blocked.size > 0 && this.isBlocked(key, user)) {
      this.audit(refusedFact(key, user.key, 'blocked', seq, eventId));
      return false;
    }
    if (this.config.maxIdsPerUser[kind] === undefined) return true;
    if (!this.users.has(user.key)) this.users.spawn(user.key, { key: user.key });
    return this.users.send(user.key, { type: 'LINK', identifier: key, kind, seq, eventId }).context.decision === 'accepted';
  }

  private isBlocked(key: string, user: UserEntry): boolean {
    const id = parseIdKey(key);
    return this.blocked.has(blockKey(this.suppression.hash(id.kind, id.value), this.suppression.hash(user.ref.kind, user.ref.id)));
  }

  /** Gives back a capped kind's place (the identifier moved on, or a claim was refused). */
  private release(user: UserEntry, key: string): void {
    const kind = parseIdKey(key).kind;
    if (this.config.maxIdsPerUser[kind] !== undefined) this.users.send(user.key, { type: 'UNLINK', kind });
  }

  private setLink(key: string, user: UserEntry, seq: number, eventId: string): void {
    this.graph.link(key, user, seq);
    this.audit(linkFact(key, user.key, seq, eventId));
  }

  /** The watermark moved: every buffer whose deadline it passed expires what is too old. */
  private advance(time: number): void {
    this.watermarkMs = time;
    this.clusters.expire(time);
  }

  /** `byOwnId`: the event holds the user's internal id; `third`: its usable third-party keys, when at hand. */
  private resolve(event: XrefEvent, seq: number, user: UserEntry, byOwnId: boolean, third?: readonly string[], after?: number): void {
    this.stats.resolved++;
    this.sink.resolved(resolvedRecord(event, seq, user, via(event, user, byOwnId, this.kinds, this.graph, third), after));
  }

  private unmatched(event: XrefEvent, seq: number, reason: UnmatchedReason, after?: number): void {
    this.stats.unmatched++;
    this.stats.unmatchedBy[reason] = (this.stats.unmatchedBy[reason] ?? 0) + 1;
    this.sink.unmatched(unmatchedRecord(event, seq, reason, this.kinds, after));
  }

  private audit(fact: AuditFact): void {
    this.stats.audits++;
    this.stats.auditsBy[fact.reason] = (this.stats.auditsBy[fact.reason] ?? 0) + 1;
    this.sink.audit(auditRecord(fact));
  }
}
