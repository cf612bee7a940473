import type { IdHasher } from '../domain/id-hash.ts';
import { idKey } from '../domain/identifiers.ts';
import type { Erasure, UserRef } from './outputs.ts';

/** What an erasure takes of a record: the ids it carries and the users it names. */
export interface ErasureMatch {
  /** Whether an id is one of the forgotten cluster's. */
  id(kind: string, value: string): boolean;
  /** Whether a user is the forgotten one. */
  user(user: UserRef | undefined): boolean;
  /** Whether an event carries one of the cluster's ids. */
  event(event: { readonly ids: Readonly<Record<string, string>> }): boolean;
  /** Whether an audit record names the user or one of the cluster's ids. */
  audit(record: { readonly identifier?: { kind: string; value: string }; readonly user?: UserRef; readonly previous?: UserRef; readonly claimedBy?: UserRef }): boolean;
}

/**
 * Matches records against an erasure: by the ids themselves when the engine still knew the whole
 * cluster (cheap), else by hashing each id against the tombstone's hashes.
 */
export function erasureMatch(erasure: Erasure, hasher: IdHasher | undefined): ErasureMatch {
  let id: (kind: string, value: string) => boolean;
  if (erasure.keys.length >= erasure.hashes.length || hasher === undefined) {
    const keys = new Set(erasure.keys);
    id = (kind, value) => keys.has(idKey(kind, value));
  } else {
    const hashes = new Set(erasure.hashes);
    id = (kind, value) => hashes.has(hasher(kind, value));
  }
  const user = (ref: UserRef | undefined) => ref !== undefined && ref.kind === erasure.userKind && id(ref.kind, ref.id);
  return {
    id,
    user,
    event: (event) => {
      for (const kind in event.ids) if (id(kind, event.ids[kind]!)) return true;
      return false;
    },
    audit: (record) =>
      (record.identifier !== undefined && id(record.identifier.kind, record.identifier.value)) || user(record.user) || user(record.previous) || user(record.claimedBy),
  };
}
