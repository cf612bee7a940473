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
  /** Placed again after the unlink at this input retracted it from a user. */
  readonly after?: number;
}

/** An event taken back from a user: an unlink detached the identifier it came through (docs/erasure.md, Unlink). */
export interface Retraction {
  /** `<retracted output id>:retracted-<unlink input>`. */
  readonly outputId: string;
  /** The unlink input. */
  readonly seq: number;
  readonly user: UserRef;
  readonly eventId: string;
  /** The output id of the resolution taken back. */
  readonly retracted: string;
  readonly reason: 'unlink';
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
  readonly cause?: 'junk' | 'cap' | 'blocked';
  readonly seq: number;
  readonly eventId: string;
}

/** What a control input did, audited on `xref.audit.<reason>`: who, when, which request; never an id (docs/erasure.md). */
export interface ControlAudit {
  /** `<request>:<verb>`; for a suppressed event `<event id>:suppressed`. */
  readonly outputId: string;
  readonly reason: 'forget' | 'unsuppress' | 'suppressed' | 'unlink';
  /** The request: of the command, or for a suppressed event the forget that suppressed its id. */
  readonly request: string;
  /** The input. */
  readonly seq: number;
  readonly by?: string;
  readonly at?: string;
  /** suppressed: the event's id (not its payload). */
  readonly eventId?: string;
  /** suppressed: the kind of the id that matched; unsuppress: the kind lifted. */
  readonly kind?: string;
  /** unsuppress: whether the id was suppressed. */
  readonly lifted?: boolean;
  /** unlink: whether the identifier was linked, the events retracted, and whether later links to the same user are refused. */
  readonly found?: boolean;
  readonly retracted?: number;
  readonly block?: boolean;
  /** forget, when streaming: the records erased, per stream. */
  readonly erased?: Readonly<Record<string, number>>;
  /** forget, when streaming: where each stream ended once they were gone (the projection applies the forget past them). */
  readonly through?: Readonly<Record<string, number>>;
}

/**
 * A user forgotten at input `seq`: what to erase of what was already decided. `keys` (the user's
 * key first, then its identifiers' keys) are the ids themselves: in memory only, never written;
 * `hashes` what may be. `user` is undefined when the engine no longer knew the user (its events
 * already erased by an earlier application of the same input).
 */
export interface Erasure {
  readonly request: string;
  readonly seq: number;
  readonly userKind: string;
  readonly user: UserRef | undefined;
  readonly keys: readonly string[];
  readonly hashes: readonly string[];
}

/** Where the engine writes what it decides. Calls happen synchronously, in decision order. */
export interface Sink {
  resolved(output: Resolved): void;
  unmatched(output: Unmatched): void;
  audit(record: AuditRecord): void;
  /** What a control input did (none: such records are not kept). */
  control?(record: ControlAudit): void;
  /** A forget: what was decided for the user is to be erased (told before the forget's own audit record). */
  erase?(erasure: Erasure): void;
  /** An unlink took an event back from a user. */
  retract?(retraction: Retraction): void;
}

export function userRef(key: string): UserRef {
  const at = key.indexOf(':');
  return { kind: key.slice(0, at), id: key.slice(at + 1) };
}
