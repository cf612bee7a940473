import type { AuditFact, UnmatchedReason } from '../../actors/types.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { type Identifier, type JunkRule, idKey, parseIdKey } from '../domain/identifiers.ts';
import type { IdentityGraph, UserEntry } from './identity-graph.ts';
import { type AuditRecord, type Resolved, type Unmatched, type UserRef, userRef } from './outputs.ts';

/**
 * What the engine writes: its output records and their ids. An output id is the JetStream dedup
 * key of the message (a republished output is dropped as a duplicate) and what a replay is
 * compared on, so each format is written here once and never changes.
 */

/** `after`: the unlink that put the event back into a buffer (its first placement had the plain id). */
export function resolvedId(eventId: string, user: UserRef, after?: number): string {
  return `${eventId}:${user.kind}.${user.id}${afterPart(after)}`;
}

export function unmatchedId(eventId: string, after?: number): string {
  return `${eventId}:unmatched${afterPart(after)}`;
}

function afterPart(after: number | undefined): string {
  return after === undefined ? '' : `:after-${after}`;
}

/** A resolution taken back by the unlink at input `seq`. */
export function retractionId(retracted: string, seq: number): string {
  return `${retracted}:retracted-${seq}`;
}

/** `identifier` is the identifier's key (`kind:value`). */
export function auditId(eventId: string, reason: string, identifier: string): string {
  return `${eventId}:${reason}:${identifier}`;
}

/** A control input's audit record: one per request. */
export function controlId(request: string, verb: string): string {
  return `${request}:${verb}`;
}

/** An event dropped because it carried a forgotten id. */
export function suppressedId(eventId: string): string {
  return `${eventId}:suppressed`;
}

/** An input that is not an event has no event id: its log position stands in. */
export function rejectedId(seq: number): string {
  return `in-${seq}:rejected`;
}

/** What tells an event's identifiers apart: internal kinds (users, by rank) and junk values. */
export interface IdKinds {
  readonly internal: ReadonlyMap<string, number>;
  readonly isJunk: JunkRule;
}

/**
 * The identifier an event reached its user through: the user's own id when the event was placed
 * by it (`byOwnId`: it holds the user's internal id); else its first usable third-party id linked
 * to that user; else its first usable third-party id. `keys`: the keys of the event's usable
 * third-party ids in order, when the caller has them (then they are not built again).
 */
export function via(event: XrefEvent, user: UserEntry, byOwnId: boolean, kinds: IdKinds, graph: IdentityGraph, keys?: readonly string[]): Identifier {
  if (byOwnId) return { kind: user.ref.kind, value: user.ref.id };
  let first: string | undefined;
  let i = 0;
  for (const kind in event.ids) {
    const value = event.ids[kind]!;
    if (kinds.internal.has(kind) || kinds.isJunk(value)) continue;
    first ??= kind;
    if (graph.userOf(keys === undefined ? idKey(kind, value) : keys[i++]!) === user) return { kind, value };
  }
  return first === undefined ? { kind: user.ref.kind, value: user.ref.id } : { kind: first, value: event.ids[first]! };
}

export function resolvedRecord(event: XrefEvent, seq: number, user: UserEntry, via: Identifier, after?: number): Resolved {
  return { outputId: resolvedId(event.id, user.ref, after), seq, event, user: user.ref, via, ...(after === undefined ? {} : { after }) };
}

/** Held under the event's first usable third-party id; an event with none, under its first id. */
export function unmatchedRecord(event: XrefEvent, seq: number, reason: UnmatchedReason, kinds: IdKinds, after?: number): Unmatched {
  let identifier: Identifier | undefined;
  for (const kind in event.ids) {
    if (kinds.internal.has(kind) || kinds.isJunk(event.ids[kind]!)) continue;
    identifier = { kind, value: event.ids[kind]! };
    break;
  }
  if (identifier === undefined) {
    const kind = Object.keys(event.ids)[0]!;
    identifier = { kind, value: event.ids[kind]! };
  }
  return { outputId: unmatchedId(event.id, after), seq, event, reason, identifier };
}

/** The audit record of a fact, whoever decided it (the engine or a machine). */
export function auditRecord(fact: AuditFact): AuditRecord {
  return {
    outputId: auditId(fact.eventId, fact.reason, fact.identifier),
    reason: fact.reason,
    identifier: parseIdKey(fact.identifier),
    ...(fact.user === undefined ? {} : { user: userRef(fact.user) }),
    ...(fact.previous === undefined ? {} : { previous: userRef(fact.previous) }),
    ...(fact.claimedBy === undefined ? {} : { claimedBy: userRef(fact.claimedBy) }),
    ...(fact.cause === undefined ? {} : { cause: fact.cause }),
    seq: fact.seq,
    eventId: fact.eventId,
  };
}
