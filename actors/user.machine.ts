import { enqueueActions, setup } from 'xstate';
import { refusedFact } from './audit-facts.ts';
import type { AuditFact } from './types.ts';

/**
 * One user (an internal id). Owns the count of identifiers linked to it per kind and enforces
 * the per-kind cap: a LINK over the cap is refused (and audited), never half-applied.
 */
export interface UserContext {
  /** `kind:id` of the user: the actor's address. */
  readonly key: string;
  /** Identifiers linked to this user, counted per kind. */
  readonly linked: Readonly<Record<string, number>>;
  /** The answer to the last LINK, read by whoever asked. */
  readonly decision: 'accepted' | 'refused' | null;
}

export type UserEvent =
  | { type: 'LINK'; identifier: string; kind: string; seq: number; eventId: string }
  | { type: 'UNLINK'; kind: string };

export function createUserMachine(maxIdsPerUser: Readonly<Record<string, number>>) {
  return setup({
    types: {
      context: {} as UserContext,
      events: {} as UserEvent,
      input: {} as { key: string },
    },
    actions: {
      /** Effect: a decision worth an audit record. */
      audit: (_, _params: AuditFact) => {},
    },
    guards: {
      underCap: ({ context, event }) => {
        const max = maxIdsPerUser[event.kind];
        return max === undefined || (context.linked[event.kind] ?? 0) < max;
      },
    },
  }).createMachine({
    id: 'user',
    context: ({ input }) => ({ key: input.key, linked: {}, decision: null }),
    initial: 'active',
    states: {
      active: {
        on: {
          LINK: [
            {
              guard: 'underCap',
              actions: enqueueActions(({ context, event, enqueue }) => {
                enqueue.assign({
                  linked: { ...context.linked, [event.kind]: (context.linked[event.kind] ?? 0) + 1 },
                  decision: 'accepted',
                });
              }),
            },
            {
              actions: enqueueActions(({ context, event, enqueue }) => {
                enqueue({ type: 'audit', params: refusedFact(event.identifier, context.key, 'cap', event.seq, event.eventId) });
                enqueue.assign({ decision: 'refused' });
              }),
            },
          ],
          UNLINK: {
            actions: enqueueActions(({ context, event, enqueue }) => {
              enqueue.assign({ linked: { ...context.linked, [event.kind]: Math.max(0, (context.linked[event.kind] ?? 0) - 1) } });
            }),
          },
        },
      },
    },
  });
}

export type UserMachine = ReturnType<typeof createUserMachine>;
