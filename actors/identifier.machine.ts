import { enqueueActions, setup } from 'xstate';
import type { RelinkPolicy } from '../src/domain/config.ts';
import { conflictFact, relinkFact } from './audit-facts.ts';
import { append, deadline, expire, isExpired, merge } from './buffer.ts';
import type { AuditFact, Bounds, Buffered, UnmatchedReason } from './types.ts';

/**
 * One third-party identifier (the root of a cluster of identifiers seen together). While no user
 * is known it buffers the cluster's events within the bounds; a LINK flushes them, once, in log
 * order. A linked identifier is only brought back to life to decide a claim by another user.
 */
export interface IdentifierContext {
  /** `kind:value` of this identifier: the actor's address. */
  readonly key: string;
  /** Every identifier of the cluster this actor buffers for (itself included). */
  readonly members: readonly string[];
  readonly buffer: readonly Buffered[];
  /** Event time at which the oldest buffered event expires; null when none can. */
  readonly deadline: number | null;
  /** `kind:id` of the user, once linked. */
  readonly user: string | null;
  readonly policy: RelinkPolicy;
}

/** A new cluster starts with the event that made it. */
export interface IdentifierInput {
  key: string;
  members: readonly string[];
  policy: RelinkPolicy;
  first: Buffered;
}

/** A link, or a claim once linked: carries the input that caused it. */
export interface LinkEvent {
  type: 'LINK';
  user: string;
  seq: number;
  eventId: string;
  watermark: number;
}

/**
 * Every message carries the log's watermark: what it has passed is released as `expired` before
 * the message is applied, so the result is exact however late a wake-up comes.
 */
export type IdentifierEvent =
  | { type: 'BUFFER'; item: Buffered; watermark: number }
  | { type: 'ABSORB'; members: readonly string[]; buffer: readonly Buffered[]; watermark: number }
  | { type: 'WATERMARK'; watermark: number }
  | LinkEvent
  | { type: 'GIVE_UP'; watermark: number };

function initialContext(input: IdentifierInput, bounds: Bounds): IdentifierContext {
  return { key: input.key, members: input.members, buffer: [input.first], deadline: deadline([input.first], bounds.ttlMs), user: null, policy: input.policy };
}

/**
 * A new cluster's first snapshot, resolved from data: the same as the machine's initial transition
 * (the initial state has no entry actions to run), at a third of the cost.
 */
export function startingSnapshot(machine: IdentifierMachine, input: IdentifierInput, bounds: Bounds) {
  return machine.resolveState({ value: 'buffering', context: initialContext(input, bounds) });
}

/**
 * A linked identifier, brought back to life to decide a claim by another user: it holds nothing
 * but its user (linked identifiers are plain data in the identity graph, not actors).
 */
export function linkedSnapshot(machine: IdentifierMachine, key: string, user: string, policy: RelinkPolicy) {
  return machine.resolveState({ value: 'linked', context: { key, members: [key], buffer: [], deadline: null, user, policy } });
}

export function createIdentifierMachine(bounds: Bounds) {
  return setup({
    types: {
      context: {} as IdentifierContext,
      events: {} as IdentifierEvent,
      input: {} as IdentifierInput,
    },
    actions: {
      /** Effect: a buffered event reaches its user. */
      resolve: (_, _params: { item: Buffered; user: string }) => {},
      /** Effect: an event leaves the buffer unplaced. */
      release: (_, _params: { item: Buffered; reason: UnmatchedReason }) => {},
      /** Effect: a decision worth an audit record. */
      audit: (_, _params: AuditFact) => {},
    },
    guards: {
      allExpired: ({ context, event }) =>
        context.buffer.every((item) => isExpired(item, (event as { watermark: number }).watermark, bounds.ttlMs)),
      sameUser: ({ context, event }) => (event as LinkEvent).user === context.user,
      latestWins: ({ context }) => context.policy === 'latest',
    },
  }).createMachine({
    id: 'identifier',
    context: ({ input }) => initialContext(input, bounds),
    initial: 'buffering',
    states: {
      buffering: {
        tags: ['buffering'],
        on: {
          BUFFER: {
            actions: enqueueActions(({ context, event, enqueue }) => {
              const live = expire(context.buffer, event.watermark, bounds.ttlMs);
              const { kept, dropped } = append(live.kept, event.item, bounds);
              enqueue.assign({ buffer: kept, deadline: deadline(kept, bounds.ttlMs) });
              for (const item of live.dropped) enqueue({ type: 'release', params: { item, reason: 'expired' } });
              for (const item of dropped) enqueue({ type: 'release', params: { item, reason: 'overflow' } });
            }),
          },
          ABSORB: {
            actions: enqueueActions(({ context, event, enqueue }) => {
              const live = expire(context.buffer, event.watermark, bounds.ttlMs);
              const incoming = expire(event.buffer, event.watermark, bounds.ttlMs);
              const { kept, dropped } = merge(live.kept, incoming.kept, bounds);
              enqueue.assign({
                buffer: kept,
                deadline: deadline(kept, bounds.ttlMs),
                members: [...context.members, ...event.members],
              });
              for (const item of [...live.dropped, ...incoming.dropped]) enqueue({ type: 'release', params: { item, reason: 'expired' } });
              for (const item of dropped) enqueue({ type: 'release', params: { item, reason: 'overflow' } });
            }),
          },
          WATERMARK: [
            {
              guard: 'allExpired',
              target: 'released',
              actions: enqueueActions(({ context, enqueue }) => {
                for (const item of context.buffer) enqueue({ type: 'release', params: { item, reason: 'expired' } });
                enqueue.assign({ buffer: [], deadline: null });
              }),
            },
            {
              actions: enqueueActions(({ context, event, enqueue }) => {
                const { kept, dropped } = expire(context.buffer, event.watermark, bounds.ttlMs);
                const due = deadline(kept, bounds.ttlMs);
                // nothing dropped, yet due: a deadline worked out under a shorter ttl (the config
                // changed since). It moves to the current ttl's, or it would be due again at once, forever
                if (dropped.length === 0 && due === context.deadline) return;
                enqueue.assign({ buffer: kept, deadline: due });
                for (const item of dropped) enqueue({ type: 'release', params: { item, reason: 'expired' } });
              }),
            },
          ],
          LINK: {
            target: 'linked',
            actions: enqueueActions(({ context, event, enqueue }) => {
              for (const item of context.buffer) {
                if (isExpired(item, event.watermark, bounds.ttlMs)) enqueue({ type: 'release', params: { item, reason: 'expired' } });
                else enqueue({ type: 'resolve', params: { item, user: event.user } });
              }
              enqueue.assign({ buffer: [], deadline: null, user: event.user });
            }),
          },
          GIVE_UP: {
            target: 'released',
            actions: enqueueActions(({ context, event, enqueue }) => {
              for (const item of context.buffer) {
                const reason = isExpired(item, event.watermark, bounds.ttlMs) ? 'expired' : 'unlinked';
                enqueue({ type: 'release', params: { item, reason } });
              }
              enqueue.assign({ buffer: [], deadline: null });
            }),
          },
        },
      },
      linked: {
        tags: ['idle'],
        on: {
          LINK: [
            { guard: 'sameUser' },
            {
              guard: 'latestWins',
              actions: enqueueActions(({ context, event, enqueue }) => {
                enqueue({ type: 'audit', params: relinkFact(context.key, event.user, context.user!, event.seq, event.eventId) });
                enqueue.assign({ user: event.user });
              }),
            },
            {
              actions: enqueueActions(({ context, event, enqueue }) => {
                enqueue({ type: 'audit', params: conflictFact(context.key, context.user!, event.user, event.seq, event.eventId) });
              }),
            },
          ],
        },
      },
      /** Nothing left to hold and nobody to hold it for: the cluster dissolves. */
      released: { type: 'final' },
    },
  });
}

export type IdentifierMachine = ReturnType<typeof createIdentifierMachine>;
