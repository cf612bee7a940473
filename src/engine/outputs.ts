import type { AuditReason, UnmatchedReason } from '../../actors/types.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Identifier } from '../domain/identifiers.ts';

/** A user: an internal kind and id. */
export interface UserRef {
  readonly kind: string;
  readonly id: string;
}

/** An event placed with its user, and the identifier it came through. */
export interface Resolved {
  /** Deterministic: `<event id>:<user kind>.<user id>` (records.ts builds every output id). */
  readonly outputId: string;
  readonly seq: number;
  readonly event: XrefEvent;
  readonly user: UserRef;
  readonly via: Identifier;
}

/** An event that left a buffer (or never entered one) without a user. */
export interface Unmatched {
  readonly outputId: string;
  readonly seq: number;
  readonly event: XrefEvent;
  readonly reason: UnmatchedReason;
  /** The identifier it was held under: the event's first usable third-party identifier. */
  readonly identifier: Identifier;
}

/** A decision about an identifier: link, relink, conflict or refusal. */
export interface AuditRecord {
  readonly outputId: string;
  readonly reason: AuditReason;
  readonly identifier: Identifier;
  readonly user?: UserRef;
  readonly previous?: UserRef;
  readonly claimedBy?: UserRef;
  readonly cause?: 'junk' | 'cap';
  readonly seq: number;
  readonly eventId: string;
}

/** Where the engine writes what it decides. Calls happen synchronously, in decision order. */
export interface Sink {
  resolved(output: Resolved): void;
  unmatched(output: Unmatched): void;
  audit(record: AuditRecord): void;
}

export function userRef(key: string): UserRef {
  const at = key.indexOf(':');
  return { kind: key.slice(0, at), id: key.slice(at + 1) };
}
