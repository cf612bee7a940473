/**
 * What the tracker drops and when it says so: an emit after close accounted for by the leaves it
 * reaches (after processors and routing), onDrop told a moment later and never inside emit,
 * close's timeout clamped to what a timer can hold, what a backend still holds at close's end told
 * to onDrop, and a backend instance mounted once.
 */
import { describe, expect, it } from 'vitest';
import { isXrefError } from '../../src/domain/errors.ts';
import {
  type Backend,
  type BackendStats,
  type DropReason,
  type TrackerEvent,
  createTracker,
  httpBackend,
  loggerBackend,
  memoryBackend,
  nameAllowlist,
  routingBackend,
} from '../../src/tracker/index.ts';
import { MAX_TIMER_MS, settledWithin } from '../../src/tracker/timing.ts';
import { waitFor } from '../helpers/streams.ts';

type Heard = Array<[string[], DropReason]>;
const recorder = (into: Heard) => (events: readonly TrackerEvent[], reason: DropReason) => void into.push([events.map((e) => e.name), reason]);
const notCalled = (async () => {
  throw new Error('fetch must not be called');
}) as unknown as typeof fetch;

describe('an emit after close', () => {
  it('is dropped (closed) only by the leaves its branch gives it to, and each backend own onDrop hears it', async () => {
    const trackerHeard: Heard = [];
    const httpHeard: Heard = [];
    const loggerHeard: Heard = [];
    const tracker = createTracker({
      onDrop: recorder(trackerHeard),
      backends: {
        all: memoryBackend(),
        logins: routingBackend({
          processors: [nameAllowlist(['login'])],
          backends: {
            store: memoryBackend(),
            log: loggerBackend({ onDrop: recorder(loggerHeard) }),
            xref: httpBackend({ url: 'http://collector.test', writeKey: 'k', fetch: notCalled, onDrop: recorder(httpHeard) }),
          },
        }),
      },
    });
    await tracker.close();
    tracker.emit('page');
    tracker.emit('login');
    const report = await tracker.close();
    const closedOnce = { sent: 0, failed: 0, dropped: 1, pending: 0, droppedBy: { closed: 1 } };
    expect(report.backends).toEqual({
      all: { sent: 0, failed: 0, dropped: 2, pending: 0, droppedBy: { closed: 2 } },
      'logins.store': closedOnce,
      'logins.log': closedOnce,
      'logins.xref': closedOnce,
    });
    expect(report.total).toEqual({ sent: 0, failed: 0, dropped: 5, pending: 0 });
    expect(httpHeard).toEqual([[['login'], 'closed']]);
    expect(loggerHeard).toEqual([[['login'], 'closed']]);
    expect(trackerHeard.flatMap(([names]) => names).sort()).toEqual(['login', 'login', 'login', 'login', 'page']);
    expect(trackerHeard.every(([, reason]) => reason === 'closed')).toBe(true);
  });
});

describe('onDrop', () => {
  it('never runs inside emit, and flush resolves once it heard every drop so far', async () => {
    const heard: Heard = [];
    const tracker = createTracker({
      onDrop: recorder(heard),
      backends: {
        broken: {
          send() {
            throw new Error('disk full');
          },
        },
        log: loggerBackend({ maxEventSize: 200 }),
      },
    });
    tracker.emit('a');
    tracker.emit('big', { text: 'x'.repeat(300) });
    expect(heard).toEqual([]);
    await tracker.flush();
    expect(heard).toEqual([
      [['a'], 'rejected'],
      [['big'], 'rejected'],
      [['big'], 'too_large'],
    ]);
  });

  it('that emits after close does not recurse: each drop it causes is told on a later turn', async () => {
    let depth = 0;
    let deepest = 0;
    let calls = 0;
    const tracker = createTracker({
      backends: { memory: memoryBackend() },
      onDrop: () => {
        depth++;
        deepest = Math.max(deepest, depth);
        calls++;
        if (calls < 100) tracker.emit('again');
        depth--;
      },
    });
    await tracker.close();
    tracker.emit('late');
    await waitFor('onDrop to have heard 100 drops', () => calls === 100, 5000);
    expect(deepest).toBe(1);
    expect(tracker.stats().backends.memory).toEqual({ sent: 0, failed: 0, dropped: 100, pending: 0, droppedBy: { closed: 100 } });
  });
});

describe('close', () => {
  it('with a timeoutMs above 2^31 - 1 waits for the backends instead of dropping at once', async () => {
    let pending = 1;
    let sent = 0;
    const slow: Backend = {
      send() {},
      stats: (): BackendStats => ({ sent, failed: 0, dropped: 0, pending, droppedBy: {} }),
      close: () =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            sent = 1;
            pending = 0;
            resolve();
          }, 30),
        ),
    };
    const tracker = createTracker({ backends: { slow } });
    const report = await tracker.close({ timeoutMs: 2 ** 31 });
    expect(report.backends.slow).toEqual({ sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
  });

  it('tells onDrop of what a backend still held at its end, with the count and the backend path', async () => {
    const calls: Array<{ events: number; reason: DropReason; message: string | undefined; count: unknown }> = [];
    const stuck: Backend = { send() {}, stats: () => ({ sent: 0, failed: 0, dropped: 0, pending: 3, droppedBy: {} }), close: () => new Promise(() => {}) };
    const tracker = createTracker({
      onDrop: (events, reason, error) => void calls.push({ events: events.length, reason, message: error?.message, count: (error as { count?: unknown } | undefined)?.count }),
      backends: { r: routingBackend({ backends: { stuck } }) },
    });
    const report = await tracker.close({ timeoutMs: 10 });
    expect(report.backends['r.stuck']).toEqual({ sent: 0, failed: 0, dropped: 3, pending: 0, droppedBy: { closed: 3 } });
    expect(calls).toEqual([{ events: 0, reason: 'closed', message: 'backend r.stuck closed before 3 events it held were delivered: counted as dropped (closed)', count: 3 }]);
    await tracker.close();
    expect(calls).toHaveLength(1);
  });
});

describe('settledWithin', () => {
  it('holds a wait above 2^31 - 1 ms instead of ending it after 1 ms', async () => {
    const later = new Promise((resolve) => setTimeout(resolve, 20));
    expect(await settledWithin(later, 2 ** 40)).toBe(true);
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
  });
});

describe('a backend', () => {
  const configError = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return isXrefError(error, 'XREF_INVALID_CONFIG') ? error.message : error;
    }
    return 'no error';
  };

  it('instance mounted twice in the tree is refused, naming both paths', () => {
    const shared = memoryBackend();
    expect(configError(() => createTracker({ backends: { a: shared, b: shared } }))).toBe(
      'config backends.b is the same backend instance as backends.a: mount each instance once (make one backend per name)',
    );
    expect(configError(() => createTracker({ backends: { a: shared, r: routingBackend({ backends: { deep: routingBackend({ backends: { c: shared } }) } }) } }))).toBe(
      'config backends.r.deep.c is the same backend instance as backends.a: mount each instance once (make one backend per name)',
    );
    expect(configError(() => routingBackend({ backends: { x: shared, y: shared } }))).toBe(
      'config routingBackend backends.y is the same backend instance as routingBackend backends.x: mount each instance once (make one backend per name)',
    );
    const branch = routingBackend({ backends: { m: memoryBackend() } });
    expect(configError(() => createTracker({ backends: { one: branch, two: branch } }))).toMatch(/^config backends\.two is the same backend instance as backends\.one/);
  });

  it('name that looks like an integer is refused, naming it: integer keys are listed first, so the order given would be lost', () => {
    expect(configError(() => createTracker({ backends: { b: memoryBackend(), 10: memoryBackend() } }))).toMatch(/^config backends\.10 must not be an integer/);
    expect(configError(() => routingBackend({ backends: { 0: memoryBackend() } }))).toMatch(/^config routingBackend backends\.0 must not be an integer/);
    const tracker = createTracker({ backends: { b: memoryBackend(), '01': memoryBackend(), '-1': memoryBackend() } });
    expect(Object.keys(tracker.stats().backends)).toEqual(['b', '01', '-1']);
  });
});
