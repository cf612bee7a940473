import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingQueue } from '../../src/ring-queue.ts';

type Op = { op: 'push'; value: number } | { op: 'shift' } | { op: 'set'; at: number; value: number } | { op: 'clear' };

const ops = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('push' as const), value: fc.integer() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('shift' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(40), value: fc.integer() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  ) as fc.Arbitrary<Op>,
  { maxLength: 300 },
);

describe('RingQueue', () => {
  it('behaves as an array used as a queue, across growths and wrap-arounds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), ops, (capacity, script) => {
        const queue = new RingQueue<number>(capacity);
        const model: number[] = [];
        for (const step of script) {
          if (step.op === 'push') {
            queue.push(step.value);
            model.push(step.value);
          } else if (step.op === 'shift') {
            expect(queue.shift()).toBe(model.shift());
          } else if (step.op === 'set') {
            if (step.at < model.length) {
              queue.set(step.at, step.value);
              model[step.at] = step.value;
            } else expect(() => queue.set(step.at, step.value)).toThrow(RangeError);
          } else {
            queue.clear();
            model.length = 0;
          }
          expect(queue.length).toBe(model.length);
          expect(queue.peek()).toBe(model[0]);
          expect(queue.at(model.length)).toBeUndefined();
          expect([...queue]).toEqual(model);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('lets go of an item as soon as it leaves, however the queue grew meanwhile', () => {
    const queue = new RingQueue<object>(2);
    const slots = () => (queue as unknown as { slots: unknown[] }).slots;
    queue.push({});
    const before = slots();
    for (let i = 0; i < 5; i++) queue.push({});
    // the storage left behind by growing holds nothing any more
    expect(before.every((slot) => slot === undefined)).toBe(true);
    while (queue.length > 1) queue.shift();
    expect(slots().filter((slot) => slot !== undefined)).toHaveLength(1);
  });
});
