import type { XrefEvent } from '../src/domain/envelope.ts';

/** An event waiting in a buffer, with its log position and event time (absent = never expires). */
export interface Buffered {
  readonly seq: number;
  readonly event: XrefEvent;
  readonly time: number | undefined;
  /** Buffered again by the unlink at this input (its event was retracted from a user): its outputs' ids say so. */
  readonly after?: number;
}

/** Why an event left a buffer without reaching a user. */
export type UnmatchedReason = 'overflow' | 'expired' | 'junk' | 'unlinked';

/** Why an audit record was written. */
export type AuditReason = 'link' | 'relink' | 'conflict' | 'refused';

/** What the engine is told about a decision; identifiers and users are map keys (`kind:value`). */
export interface AuditFact {
  readonly reason: AuditReason;
  /** The identifier concerned. */
  readonly identifier: string;
  /** The user the identifier belongs to after the decision (or would have, for a refusal). */
  readonly user?: string;
  /** relink: the user it belonged to before. */
  readonly previous?: string;
  /** conflict: the other user that claimed it, in vain. */
  readonly claimedBy?: string;
  /** refused: why (`blocked`: an unlink with --block refuses this identifier to this user). */
  readonly cause?: 'junk' | 'cap' | 'blocked';
  /** The input that caused the decision. */
  readonly seq: number;
  readonly eventId: string;
}

export interface Bounds {
  readonly maxEvents: number;
  readonly ttlMs: number;
}
