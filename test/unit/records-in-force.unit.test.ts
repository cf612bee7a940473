import { describe, expect, it } from 'vitest';
import { InForce } from '../../src/nats/records-in-force.ts';

const since = () => ({ links: 100, snapshots: 50 });

describe('which checkpoint records are in force', () => {
  it('without a lease (epoch 0): records up to the meta, not those of an interrupted checkpoint', () => {
    const state = InForce.fromMeta({ at: 20, seq: 20, watermark: null }, 0, since);
    expect(state.covers('links', 5, { at: 20 })).toBe(true);
    expect(state.covers('links', 6, { at: 30 })).toBe(false);
  });

  it("a new holder fences the meta's epoch: its records count up to its last checkpoint, stored before the takeover", () => {
    const state = InForce.fromMeta({ at: 20, seq: 20, watermark: null, epoch: 3 }, 7, since);
    expect(state.fences).toEqual([{ epoch: 3, ceiling: 20, since: { links: 100, snapshots: 50 } }]);
    expect(state.covers('links', 90, { at: 20, e: 3 })).toBe(true);
    // written by the fenced holder after the takeover (a paused process resumed), or past its last checkpoint
    expect(state.covers('links', 101, { at: 20, e: 3 })).toBe(false);
    expect(state.covers('links', 90, { at: 25, e: 3 })).toBe(false);
    // the new holder's own records count up to its checkpoint in force; an epoch never fenced never counts
    expect(state.covers('links', 200, { at: 20, e: 7 })).toBe(true);
    expect(state.covers('links', 200, { at: 21, e: 7 })).toBe(false);
    expect(state.covers('links', 80, { at: 1, e: 5 })).toBe(false);
  });

  it('the same holder reloading keeps its fences; the meta it writes carries them', () => {
    const state = InForce.fromMeta({ at: 40, seq: 40, watermark: 5, epoch: 7, fences: [{ epoch: 3, ceiling: 20, since: { links: 100 } }] }, 7, since);
    expect(state.fences).toHaveLength(1);
    expect(state.meta(60, 9)).toEqual({ at: 60, seq: 60, watermark: 9, epoch: 7, fences: [{ epoch: 3, ceiling: 20, since: { links: 100 } }] });
  });

  it('of two records in force, the later epoch wins, then the later checkpoint, then the later revision', () => {
    const old = { record: { at: 90, e: 3 }, revision: 500 };
    const newer = { record: { at: 10, e: 7 }, revision: 400 };
    expect(InForce.later(old, newer)).toBe(newer);
    expect(InForce.later({ record: { at: 5 }, revision: 9 }, { record: { at: 6 }, revision: 1 }).record.at).toBe(6);
    expect(InForce.later({ record: { at: 5 }, revision: 9 }, { record: { at: 5 }, revision: 1 }).revision).toBe(9);
  });
});
