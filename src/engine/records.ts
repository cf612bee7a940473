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

export function resolvedId(eventId: string, user: UserRef): string {
  return `${eventId}:${user.kind}.${user.id}`;
}

export function unmatchedId(eventId: string): string {
  return `${eventId}:unmatched`;
}

/** `identifier` is the identifier's key (`kind:value`). */
export function auditId(eventId: string, reason: string, identifier: string): string {
  return `${eventId}:${reason}:${identifier}`;
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

export function resolvedRecord(event: XrefEvent, seq: number, user: UserEntry, via: Identifier): Resolved {
  return { outputId: resolvedId(event.id, user.ref), seq, event, user: user.ref, via };
}

/** Held under the event's first usable third-party id; an event with none, under its first id. */
export function unmatchedRecord(event: XrefEvent, seq: number, reason: UnmatchedReason, kinds: IdKinds): Unmatched {
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
  return { outputId: unmatchedId(event.id), seq, event, reason, identifier };
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
