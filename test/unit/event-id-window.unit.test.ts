import { describe, expect, it } from 'vitest';
import { EventIdWindow } from '../../src/engine/event-id-window.ts';

describe('the event-id dedup window', () => {
  it('remembers an id for the given number of inputs after its latest occurrence', () => {
    const window = new EventIdWindow(3);
    expect(window.check('a', 1)).toBe(false);
    expect(window.check('b', 2)).toBe(false);
    expect(window.check('a', 4)).toBe(true); // 3 inputs after it: still in the window
    expect(window.check('b', 6)).toBe(false); // 4 inputs after it: forgotten
    expect(window.check('a', 7)).toBe(true); // its repeat at 4 renewed it
    expect(window.check('a', 11)).toBe(false);
  });

  it('counts inputs, not ids: inputs without an id still move it on', () => {
    const window = new EventIdWindow(2);
    window.check('a', 1);
    expect(window.check('a', 4)).toBe(false);
  });

  it('keeps only the ids of the window in memory, however long the log', () => {
    const window = new EventIdWindow(1000);
    for (let seq = 1; seq <= 200_000; seq++) window.check(`ev-${seq}`, seq);
    expect(window.count).toBe(1001); // the last 1000 inputs, and the one just noted
    expect(window.check('ev-199001', 200_001)).toBe(true);
    expect(window.check('ev-199000', 200_002)).toBe(false);
  });

  it('without a size, remembers every id', () => {
    const window = new EventIdWindow();
    window.check('a', 1);
    expect(window.check('a', 1_000_000)).toBe(true);
  });

  it('a window of 0 remembers nothing', () => {
    const window = new EventIdWindow(0);
    window.check('a', 1);
    expect(window.check('a', 2)).toBe(false);
  });
});
