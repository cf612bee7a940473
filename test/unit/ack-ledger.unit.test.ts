import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckLedger, type LedgerInput } from '../../src/runtime/ack-ledger.ts';

const input = (seq: number, ackable = true): LedgerInput => ({ seq, ackable });

/** A ledger that records when an ack became due, and acks (takes) only when told. */
function ledger() {
  let due = 0;
  const l = new AckLedger<LedgerInput>(() => due++);
  return { l, dueCalls: () => due, ackNow: () => l.takeAck()?.seq };
}

/** Whether `promise` has resolved by now (after the microtasks already queued). */
async function resolved(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('ack ledger', () => {
  it('acks the highest input such that it and every one before it has all its outputs stored', () => {
    const { l, ackNow } = ledger();
    const one = l.applied(input(1), 2);
    const two = l.applied(input(2), 1);
    const three = l.applied(input(3), 1);
    l.stored(two);
    l.stored(three);
    expect(ackNow()).toBeUndefined(); // input 1 still waits for its outputs
    l.stored(one);
    expect(ackNow()).toBeUndefined(); // one of two
    l.stored(one);
    expect(ackNow()).toBe(3);
    expect(l.size).toBe(0);
  });

  it('one ack covers a whole batch: the ack becomes due once, for the last input settled before it is taken', () => {
    const { l, dueCalls, ackNow } = ledger();
    const entries = [1, 2, 3, 4].map((seq) => l.applied(input(seq), 1));
    for (const entry of entries) l.stored(entry);
    expect(dueCalls()).toBe(1);
    expect(ackNow()).toBe(4);
    expect(ackNow()).toBeUndefined();
    l.stored(l.applied(input(5), 1));
    expect(dueCalls()).toBe(2);
    expect(ackNow()).toBe(5);
  });

  it('an input without outputs is settled at once, in its place', () => {
    const { l, ackNow } = ledger();
    l.applied(input(1), 0);
    expect(ackNow()).toBe(1);
    const two = l.applied(input(2), 1);
    l.applied(input(3), 0);
    expect(ackNow()).toBeUndefined(); // 3 has nothing to store, but 2 is in flight
    l.stored(two);
    expect(ackNow()).toBe(3);
  });

  it('an input with many outputs is acked only after the last of them', () => {
    const { l, ackNow } = ledger();
    const many = l.applied(input(1), 1000);
    for (let i = 0; i < 999; i++) l.stored(many);
    expect(ackNow()).toBeUndefined();
    l.stored(many);
    expect(ackNow()).toBe(1);
  });

  it('a refused output keeps its input, and every input after it, unacked; it is reported once', () => {
    const { l, ackNow } = ledger();
    l.stored(l.applied(input(1), 1));
    expect(ackNow()).toBe(1);
    const two = l.applied(input(2), 2);
    const three = l.applied(input(3), 1);
    expect(l.refused(two)).toBe(true);
    expect(l.refused(two)).toBe(false);
    l.stored(three);
    expect(ackNow()).toBeUndefined();
    expect(l.lowestInFlight()).toBe(2);
    expect(l.mayAckRedelivered(1)).toBe(true);
    expect(l.mayAckRedelivered(3)).toBe(false);
  });

  it('an input read by sequence (not ackable) is settled, and the ack goes to the last ackable one', () => {
    const { l, ackNow } = ledger();
    const entries = [l.applied(input(1), 1), l.applied(input(2, false), 1), l.applied(input(3, false), 1)];
    for (const entry of entries) l.stored(entry);
    expect(ackNow()).toBe(1);
    expect(l.size).toBe(0);
    l.stored(l.applied(input(4, false), 1));
    expect(ackNow()).toBeUndefined();
  });

  it('an input delivered again after it was applied may be acked at once only if no earlier input is in flight', () => {
    const { l } = ledger();
    expect(l.mayAckRedelivered(7)).toBe(true); // nothing in flight
    const five = l.applied(input(5), 1);
    l.applied(input(6), 1);
    expect(l.mayAckRedelivered(4)).toBe(true);
    expect(l.mayAckRedelivered(5)).toBe(false); // acking 5 would ack it before its outputs are stored
    expect(l.mayAckRedelivered(6)).toBe(false);
    l.stored(five);
    expect(l.mayAckRedelivered(5)).toBe(true);
    expect(l.mayAckRedelivered(6)).toBe(false);
  });

  it('storedThrough(seq) resolves once every input up to seq has its outputs stored, not before', async () => {
    const { l } = ledger();
    const one = l.applied(input(1), 1);
    const two = l.applied(input(2), 1);
    const three = l.applied(input(3), 1);
    const throughTwo = l.storedThrough(2);
    const throughThree = l.storedThrough(3);
    l.stored(two);
    l.stored(three);
    expect(await resolved(throughTwo)).toBe(false);
    l.stored(one);
    expect(await resolved(throughTwo)).toBe(true);
    expect(await resolved(throughThree)).toBe(true);
    // nothing in flight: at once
    expect(await resolved(l.storedThrough(3))).toBe(true);
  });

  it('storedThrough never passes a refused input', async () => {
    const { l } = ledger();
    const one = l.applied(input(1), 1);
    l.stored(l.applied(input(2), 1));
    l.refused(one);
    expect(await resolved(l.storedThrough(1))).toBe(false);
    expect(await resolved(l.storedThrough(0))).toBe(true);
  });

  it('whatever order outputs are stored in, every ack is of an input whose outputs, and all before, are stored', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 30 }), fc.infiniteStream(fc.nat()), (outputs, picks) => {
        const { l, ackNow } = ledger();
        const left = outputs.map((n) => n);
        const entries = outputs.map((n, i) => l.applied(input(i + 1), n));
        const acks: number[] = [];
        const take = () => {
          const acked = ackNow();
          if (acked !== undefined) acks.push(acked);
        };
        take();
        const pending = () => left.flatMap((n, i) => Array.from({ length: n }, () => i));
        const it = picks[Symbol.iterator]();
        for (let open = pending(); open.length > 0; open = pending()) {
          const i = open[it.next().value % open.length]!;
          left[i]!--;
          l.stored(entries[i]!);
          take();
          const last = acks.at(-1);
          if (last !== undefined) expect(left.slice(0, last).every((n) => n === 0)).toBe(true);
        }
        expect(acks.at(-1)).toBe(outputs.length);
        expect(acks).toEqual([...acks].sort((a, b) => a - b));
      }),
    );
  });
});
