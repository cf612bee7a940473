import { type UserRef, userRef } from './outputs.ts';

/** A user, interned: one object per user however many identifiers point to it. */
export interface UserEntry {
  /** `kind:id`: the user actor's address. */
  readonly key: string;
  readonly ref: UserRef;
}

/** A third-party identifier's place in the identity graph: its user and the input that linked it. */
export interface Link {
  readonly user: UserEntry;
  readonly seq: number;
}

/**
 * The identifiers linked to a user, in the form that costs least for their number: most users
 * have one (the key itself), a few have some (an array), and a user with very many keeps a Set so
 * that moving one away stays cheap.
 */
type Linked = string | string[] | Set<string> | undefined;

/** Past this many identifiers, a user's list becomes a Set. */
const LIST_MAX = 64;

interface Entry extends UserEntry {
  linked: Linked;
}

/**
 * The identity graph: each third-party identifier linked to a user, and each user's identifiers.
 * Plain data, no actors. Links are immutable (a change is a new one), so the changes a checkpoint
 * takes are the map as it is, and a new one starts.
 */
export class IdentityGraph {
  private readonly links = new Map<string, Link>();
  /** Links changed since the last `takeChanges()`, as they are now. */
  private changed = new Map<string, Link>();
  /** Links removed since the last `takeRemoved()` (a forgotten user's). */
  private removed = new Set<string>();
  private readonly users = new Map<string, Entry>();

  /** The user with this key (`kind:id`), one object per user. */
  user(key: string): UserEntry {
    let entry = this.users.get(key);
    if (entry === undefined) {
      entry = { key, ref: userRef(key), linked: undefined };
      this.users.set(key, entry);
    }
    return entry;
  }

  /** The link of a third-party identifier, if it has one. */
  linkOf(key: string): Link | undefined {
    return this.links.get(key);
  }

  /** The user a third-party identifier is linked to, if any. */
  userOf(key: string): UserEntry | undefined {
    return this.links.get(key)?.user;
  }

  /** Links an identifier to a user (moving it, if it had one), among the changes the next checkpoint takes. */
  link(key: string, user: UserEntry, seq: number): void {
    this.removed.delete(key);
    this.changed.set(key, this.put(key, user, seq));
  }

  /** Forgets a user: its links (among the removals the next checkpoint takes) and its entry. */
  forget(user: UserEntry): void {
    for (const key of this.identifiersOf(user)) {
      this.links.delete(key);
      this.changed.delete(key);
      this.removed.add(key);
    }
    (user as Entry).linked = undefined;
    this.users.delete(user.key);
  }

  /** Detaches one identifier from its user (among the removals the next checkpoint takes). */
  unlinkKey(key: string): void {
    const user = this.links.get(key)?.user;
    if (user === undefined) return;
    this.links.delete(key);
    this.changed.delete(key);
    this.removed.add(key);
    remove(user as Entry, key);
  }

  /** The linked identifiers of a kind. */
  *keysOfKind(kind: string): IterableIterator<string> {
    const prefix = `${kind}:`;
    for (const key of this.links.keys()) if (key.startsWith(prefix)) yield key;
  }

  /** The users of an internal kind the graph knows. */
  *usersOfKind(kind: string): IterableIterator<UserEntry> {
    const prefix = `${kind}:`;
    for (const [key, entry] of this.users) if (key.startsWith(prefix)) yield entry;
  }

  /** The links removed since the previous call. */
  takeRemoved(): string[] {
    const removed = [...this.removed];
    this.removed = new Set();
    return removed;
  }

  /** A link read back from a checkpoint: in the graph, not among the changes. */
  restore(key: string, user: string, seq: number): void {
    this.put(key, this.user(user), seq);
  }

  /** The links changed since the previous call. */
  takeChanges(): ReadonlyMap<string, Link> {
    const changed = this.changed;
    this.changed = new Map();
    return changed;
  }

  /** Every identifier linked to the user now, in no particular order. */
  identifiersOf(user: UserEntry): string[] {
    const linked = (user as Entry).linked;
    if (linked === undefined) return [];
    if (typeof linked === 'string') return [linked];
    return [...linked];
  }

  /** Third-party identifiers linked. */
  get size(): number {
    return this.links.size;
  }

  private put(key: string, user: UserEntry, seq: number): Link {
    const before = this.links.get(key)?.user;
    const link = { user, seq };
    this.links.set(key, link);
    if (before !== user) {
      if (before !== undefined) remove(before as Entry, key);
      add(user as Entry, key);
    }
    return link;
  }
}

function add(entry: Entry, key: string): void {
  const linked = entry.linked;
  if (linked === undefined) entry.linked = key;
  else if (typeof linked === 'string') entry.linked = [linked, key];
  else if (Array.isArray(linked)) {
    if (linked.length < LIST_MAX) linked.push(key);
    else entry.linked = new Set([...linked, key]);
  } else linked.add(key);
}

function remove(entry: Entry, key: string): void {
  const linked = entry.linked;
  if (linked === key) entry.linked = undefined;
  else if (Array.isArray(linked)) {
    const at = linked.indexOf(key);
    if (at < 0) return;
    // order does not matter: the last one takes its place
    linked[at] = linked[linked.length - 1]!;
    linked.pop();
    if (linked.length === 1) entry.linked = linked[0];
  } else if (linked instanceof Set) linked.delete(key);
}
