import type { AuditFact } from './types.ts';

/**
 * Every audit fact is built here, whoever takes the decision (the engine or a machine), so that a
 * decision reads the same wherever it is taken. Identifiers and users are map keys (`kind:value`).
 */

export function linkFact(identifier: string, user: string, seq: number, eventId: string): AuditFact {
  return { reason: 'link', identifier, user, seq, eventId };
}

/** An identifier moved from `previous` to `user` (relink policy `latest`). */
export function relinkFact(identifier: string, user: string, previous: string, seq: number, eventId: string): AuditFact {
  return { reason: 'relink', identifier, user, previous, seq, eventId };
}

/** `claimedBy` reached an identifier that stays with `user`. */
export function conflictFact(identifier: string, user: string, claimedBy: string, seq: number, eventId: string): AuditFact {
  return { reason: 'conflict', identifier, user, claimedBy, seq, eventId };
}

/** An identifier that does not link: junk, or over its user's cap for the kind. */
export function refusedFact(identifier: string, user: string | undefined, cause: NonNullable<AuditFact['cause']>, seq: number, eventId: string): AuditFact {
  return { reason: 'refused', cause, identifier, user, seq, eventId };
}
