import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { GroupsDocument } from '../../src/group.ts';

const BASE = Date.parse('2021-01-01T00:00:00.000Z');

/** A valid event: `ev('e1', { cookie: 'X' }, { minute: 3 })`. */
export function ev(id: string, ids: Record<string, string | number>, extra: { minute?: number; name?: string } = {}): XrefEvent {
  const event: Record<string, unknown> = { id, name: extra.name ?? 'pageview', ids };
  if (extra.minute !== undefined) event.timestamp = new Date(BASE + extra.minute * 60_000).toISOString();
  return event as unknown as XrefEvent;
}

/** The groups document as `user → via → [event ids]`, easy to compare. */
export function idsOf(groups: GroupsDocument): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  for (const [userKind, users] of Object.entries(groups)) {
    for (const [userId, kinds] of Object.entries(users)) {
      const user = (out[`${userKind}:${userId}`] = {} as Record<string, string[]>);
      for (const [kind, values] of Object.entries(kinds)) {
        for (const [value, events] of Object.entries(values)) user[`${kind}:${value}`] = events.map((e) => e.id);
      }
    }
  }
  return out;
}

export const DAY = 24 * 60;
