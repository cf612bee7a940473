import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { groupEvents } from '../../src/group.ts';
import { idsOf } from '../helpers/events.ts';
import { referenceGroups } from '../helpers/reference-model.ts';

const KINDS = ['cookie', 'device_id', 'anonymous_id'];

/**
 * A conflict-free log: users own disjoint sets of third-party ids (and some ids belong to nobody);
 * each event names one owner's ids, sometimes with the owner's internal id.
 */
const conflictFreeLog = fc
  .record({
    users: fc.integer({ min: 1, max: 4 }),
    idsPerOwner: fc.integer({ min: 1, max: 4 }),
    events: fc.array(
      fc.record({
        owner: fc.nat(),
        ids: fc.uniqueArray(fc.nat({ max: 3 }), { minLength: 1, maxLength: 3 }),
        withInternal: fc.boolean(),
        internalKind: fc.constantFrom('db_id', 'user_id'),
      }),
      { minLength: 1, maxLength: 40 },
    ),
  })
  .map(({ users, idsPerOwner, events }) =>
    events.map((e, i): XrefEvent => {
      const owner = e.owner % (users + 1); // owner `users` is "nobody"
      const ids: Record<string, string> = {};
      for (const n of e.ids) {
        const local = n % idsPerOwner;
        ids[KINDS[local % KINDS.length]!] ??= `o${owner}-${local}`;
      }
      if (e.withInternal && owner < users) {
        // one user = one internal id (its kind fixed per user)
        ids[owner % 2 === 0 ? 'db_id' : 'user_id'] = `u${owner}`;
      }
      return { id: `e${i}`, name: 'x', ids };
    }),
  );

function asSets(doc: Record<string, Record<string, string[]>>) {
  return Object.fromEntries(Object.entries(doc).map(([user, vias]) => [user, Object.fromEntries(Object.entries(vias).map(([via, ids]) => [via, [...ids].sort()]))]));
}

describe('grouping properties', () => {
  it('any permutation of a conflict-free log gives the same groups (as sets)', () => {
    fc.assert(
      fc.property(
        conflictFreeLog.chain((log) => fc.tuple(fc.constant(log), fc.shuffledSubarray(log, { minLength: log.length, maxLength: log.length }))),
        ([log, shuffled]) => {
          const a = groupEvents(log);
          const b = groupEvents(shuffled);
          expect(asSets(idsOf(b.groups))).toEqual(asSets(idsOf(a.groups)));
          expect(b.unmatched.map((u) => u.event.id).sort()).toEqual(a.unmatched.map((u) => u.event.id).sort());
        },
      ),
      { numRuns: 500 },
    );
  });

  it('agrees with the reference model on random logs, lists in log order', () => {
    fc.assert(
      fc.property(conflictFreeLog, (log) => {
        const { groups, unmatched, audit } = groupEvents(log);
        const expected = referenceGroups(log, ['db_id', 'user_id']);
        expect(idsOf(groups)).toEqual(expected.groups);
        expect(unmatched.map((u) => u.event.id).sort()).toEqual([...expected.unplaced].sort());
        expect(unmatched.every((u) => u.reason === 'unlinked')).toBe(true);
        expect(audit.filter((r) => r.reason !== 'link')).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it('places every event exactly once: grouped or unmatched', () => {
    fc.assert(
      fc.property(conflictFreeLog, fc.integer({ min: 1, max: 5 }), (log, maxEvents) => {
        const { groups, unmatched } = groupEvents(log, { buffer: { maxEvents } });
        const placed = Object.values(idsOf(groups)).flatMap((vias) => Object.values(vias).flat());
        const all = [...placed, ...unmatched.map((u) => u.event.id)].sort();
        expect(all).toEqual(log.map((e) => e.id).sort());
      }),
      { numRuns: 300 },
    );
  });
});

/** Any log over small pools of ids: shared ids, conflicts, chains, junk, caps and both relink policies. */
const conflictingLog = fc.array(
  fc.record({
    ids: fc.uniqueArray(fc.constantFrom('db_id', 'cookie', 'device', 'anonymous_id'), { minLength: 1, maxLength: 4 }),
    values: fc.array(fc.constantFrom('a', 'b', 'c', 'null'), { minLength: 4, maxLength: 4 }),
    minute: fc.nat({ max: 600 }),
  }),
  { minLength: 1, maxLength: 60, size: 'max' },
).map((events) =>
  events.map((e, i): XrefEvent => ({
    id: `e${i % 37}`,
    timestamp: new Date(Date.UTC(2026, 0, 1) + e.minute * 60_000).toISOString(),
    ids: Object.fromEntries(e.ids.map((kind, k) => [kind, e.values[k]!])),
  })),
);

describe('exactly one effect', () => {
  it('every output id is emitted once, whatever the log and the rules', () => {
    fc.assert(
      fc.property(conflictingLog, fc.constantFrom('first', 'latest'), fc.integer({ min: 1, max: 2 }), (log, policy, cap) => {
        const { groups, unmatched, audit } = groupEvents(log, {
          relink: { cookie: policy },
          maxIdsPerUser: { device: cap, cookie: cap },
          buffer: { maxEvents: 3, ttlMs: 120 * 60_000 },
        });
        const resolved = Object.entries(groups).flatMap(([kind, users]) =>
          Object.entries(users).flatMap(([id, vias]) => Object.values(vias).flatMap((values) => Object.values(values).flat().map((e) => `${e.id}:${kind}.${id}`))),
        );
        for (const ids of [resolved, unmatched.map((u) => u.outputId), audit.map((r) => r.outputId)]) expect(ids.length - new Set(ids).size).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });
});
