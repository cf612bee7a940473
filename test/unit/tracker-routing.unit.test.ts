/**
 * The backend tree: routing branches (their own copy of each event, their own processors, their
 * backends in order, failures kept to one backend, EventEmissionExit kept to one branch), the
 * report by leaf path, and the memory and logger backends.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isXrefError } from '../../src/domain/errors.ts';
import {
  type Backend,
  type BackendHost,
  type DropReason,
  EventEmissionExit,
  type TrackerEvent,
  copyJson,
  createTracker,
  loggerBackend,
  memoryBackend,
  routingBackend,
} from '../../src/tracker/index.ts';

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const text: string[] = [];
  const logger = pino(
    { level: 'trace' },
    new Writable({
      write: (chunk, _encoding, done) => {
        text.push(String(chunk));
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  return { logger, lines, text };
}

const cancel = () => {
  throw new EventEmissionExit();
};

describe('routingBackend', () => {
  it('gives each branch its own deep copy: siblings never see each other changes, and the emitted event is left as it was', () => {
    const plain = memoryBackend();
    const left = memoryBackend();
    const right = memoryBackend();
    const tracker = createTracker({
      backends: {
        plain,
        left: routingBackend({
          processors: [
            (e) => {
              e.name = 'left.renamed';
              (e.data.cart as { items: string[] }).items.push('from left');
              (e.context.page as Record<string, unknown>).title = 'left';
            },
          ],
          backends: { store: left },
        }),
        right: routingBackend({ backends: { store: right } }),
      },
    });
    tracker.context('page', { page: { title: 'home' } }, () => tracker.emit('checkout', { cart: { items: ['book'] } }));
    expect(left.events[0]).toMatchObject({ name: 'left.renamed', data: { cart: { items: ['book', 'from left'] } }, context: { page: { title: 'left' } } });
    expect(right.events[0]).toMatchObject({ name: 'checkout', data: { cart: { items: ['book'] } }, context: { page: { title: 'home' } } });
    expect(plain.events[0]).toMatchObject({ name: 'checkout', data: { cart: { items: ['book'] } } });
    expect(right.events[0]?.id).toBe(left.events[0]?.id);
  });

  it('copies once per branch: the backends of one branch share its copy', () => {
    const a = memoryBackend();
    const b = memoryBackend();
    const routing = routingBackend({ backends: { a, b } });
    const emitted: TrackerEvent = { id: 'x', name: 'n', timestamp: 't', ids: {}, data: { deep: { v: 1 } }, context: {} };
    routing.send(emitted);
    expect(a.events[0]).toBe(b.events[0]);
    expect(a.events[0]).not.toBe(emitted);
    expect(a.events[0]?.data.deep).not.toBe(emitted.data.deep);
    expect(a.events[0]).toEqual(emitted);
  });

  it('calls its backends in the order given, and one that throws stops none of the others', async () => {
    const order: string[] = [];
    const drops: DropReason[] = [];
    const { logger, lines } = captureLogger();
    const probe = (name: string): Backend => ({ send: () => void order.push(name) });
    const tracker = createTracker({
      logger,
      onDrop: (_events, reason) => drops.push(reason),
      backends: {
        fanout: routingBackend({
          backends: {
            first: probe('first'),
            broken: {
              send() {
                order.push('broken');
                throw new Error('refused');
              },
            },
            third: probe('third'),
          },
        }),
      },
    });
    tracker.emit('x');
    tracker.emit('y');
    expect(order).toEqual(['first', 'broken', 'third', 'first', 'broken', 'third']);
    expect(drops).toEqual([]); // onDrop never runs inside emit
    await tracker.flush();
    expect(drops).toEqual(['rejected', 'rejected']);
    expect(tracker.stats().backends).toEqual({
      'fanout.first': { sent: 2, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
      'fanout.broken': { sent: 0, failed: 2, dropped: 0, pending: 0, droppedBy: { rejected: 2 } },
      'fanout.third': { sent: 2, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
    });
    expect(lines.find((line) => line.msg === 'a backend failed to take an event: counted as failed')).toMatchObject({ backend: 'fanout.broken', err: { message: 'refused' } });
  });

  it('EventEmissionExit stops only its branch: the sibling branch and the top-level backends still get the event', () => {
    const top = memoryBackend();
    const cancelled = memoryBackend();
    const nestedKept = memoryBackend();
    const sibling = memoryBackend();
    const tracker = createTracker({
      backends: {
        top,
        filtered: routingBackend({ processors: [cancel], backends: { store: cancelled } }),
        analytics: routingBackend({
          backends: {
            deep: routingBackend({ backends: { kept: nestedKept } }),
            sibling,
          },
        }),
      },
    });
    tracker.emit('x');
    expect([top, cancelled, nestedKept, sibling].map((m) => m.events.length)).toEqual([1, 0, 1, 1]);
    const stats = tracker.stats();
    expect(Object.keys(stats.backends)).toEqual(['top', 'filtered.store', 'analytics.deep.kept', 'analytics.sibling']);
    expect(stats.backends['filtered.store']).toEqual({ sent: 0, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    expect(stats.processors).toEqual({ cancelled: 1, errors: 0 });
  });

  it('mounts its children as <branch>.<child>, each with its own child logger and the tracker onDrop', async () => {
    const hosts: BackendHost[] = [];
    const heard: string[] = [];
    const recording = (): Backend => ({ attach: (host) => void hosts.push(host), send() {} });
    const { logger, text } = captureLogger();
    const tracker = createTracker({
      logger,
      onDrop: (events) => heard.push(events[0]?.name ?? ''),
      backends: { analytics: routingBackend({ backends: { caliper: recording(), deep: routingBackend({ backends: { leaf: recording() } }) } }) },
    });
    expect(hosts.map((h) => h.name)).toEqual(['analytics.caliper', 'analytics.deep.leaf']);
    hosts[1]?.logger.info('hi');
    expect(JSON.parse(text.at(-1) as string)).toMatchObject({ backend: 'analytics.deep.leaf', msg: 'hi' });
    expect(text.at(-1)?.match(/"backend"/g)).toHaveLength(1);
    hosts[0]?.onDrop([{ name: 'dropped' } as TrackerEvent], 'overflow');
    await tracker.flush();
    expect(heard).toEqual(['dropped']);
  });

  it('an event a branch cannot copy is counted as failed on every leaf below it, nested branches included', async () => {
    const heard: string[] = [];
    const top = memoryBackend();
    const tracker = createTracker({
      onDrop: (events, reason, error) => heard.push(`${events[0]?.name} ${reason} ${error?.message}`),
      processors: [
        (e) => {
          Object.defineProperty(e.data, 'secret', {
            enumerable: true,
            get() {
              throw new Error('no copy');
            },
          });
        },
      ],
      backends: { top, r: routingBackend({ backends: { a: memoryBackend(), inner: routingBackend({ backends: { b: memoryBackend(), c: memoryBackend() } }) } }) },
    });
    tracker.emit('x');
    const failedOnce = { sent: 0, failed: 1, dropped: 0, pending: 0, droppedBy: { rejected: 1 } };
    expect(tracker.stats().backends).toEqual({
      top: { sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
      'r.a': failedOnce,
      'r.inner.b': failedOnce,
      'r.inner.c': failedOnce,
    });
    await tracker.flush();
    expect(heard).toEqual(['x rejected no copy', 'x rejected no copy', 'x rejected no copy']);
  });

  it('works on its own, unmounted: its stats are the sum over its leaves', () => {
    const a = memoryBackend();
    const routing = routingBackend({
      backends: {
        a,
        broken: {
          send() {
            throw new Error('x');
          },
        },
      },
    });
    routing.send({ id: '1', name: 'n', timestamp: 't', ids: {}, data: {}, context: {} });
    expect(a.events).toHaveLength(1);
    expect(routing.stats()).toEqual({ sent: 1, failed: 1, dropped: 0, pending: 0, droppedBy: { rejected: 1 } });
  });

  it('flushes and closes its children', async () => {
    const calls: string[] = [];
    const child = (name: string): Backend => ({
      send() {},
      flush: async () => void calls.push(`flush ${name}`),
      close: async () => void calls.push(`close ${name}`),
    });
    const tracker = createTracker({ backends: { r: routingBackend({ backends: { a: child('a'), b: routingBackend({ backends: { c: child('c') } }) } }) } });
    await tracker.flush();
    await tracker.close();
    expect(calls.sort()).toEqual(['close a', 'close c', 'flush a', 'flush c']);
  });

  it('refuses a processor that is not a function or a child name with a dot, naming it', () => {
    expect(() => routingBackend({ processors: ['x' as unknown as () => void], backends: {} })).toThrow('config routingBackend processors[0] must be a function (event) => event | void, got "x"');
    expect(() => routingBackend({ backends: { 'a.b': memoryBackend() } })).toThrow(/config routingBackend backends\.a\.b must be named without dots/);
  });
});

describe('copyJson', () => {
  it('copies plain objects and arrays at any depth and shares everything else', () => {
    const date = new Date(0);
    const value = { a: [1, { b: 'c' }], d: date, n: null, u: undefined };
    const copy = copyJson(value);
    expect(copy).toEqual(value);
    expect(copy.a).not.toBe(value.a);
    expect(copy.a[1]).not.toBe(value.a[1]);
    expect(copy.d).toBe(date);
  });
});

describe('memoryBackend', () => {
  it('keeps the events it is given, in order, until cleared', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    tracker.emit('a');
    tracker.emit('b');
    expect(memory.events.map((e) => e.name)).toEqual(['a', 'b']);
    memory.clear();
    expect(memory.events).toEqual([]);
    tracker.emit('c');
    expect(memory.events.map((e) => e.name)).toEqual(['c']);
  });
});

describe('loggerBackend', () => {
  it('writes each event as one pino JSON line at its level, under the backend name', () => {
    const { logger, lines } = captureLogger();
    const tracker = createTracker({ logger, backends: { log: loggerBackend({ level: 'warn' }) } });
    const id = tracker.emit('signup', { plan: 'pro' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, component: 'tracker', backend: 'log', msg: 'signup', event: { id, name: 'signup', data: { plan: 'pro' }, ids: {}, context: {} } });
    expect(tracker.stats().backends.log).toEqual({ sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
  });

  it('writes to its own logger when given one', () => {
    const own = captureLogger();
    const trackerLog = captureLogger();
    const tracker = createTracker({ logger: trackerLog.logger, backends: { log: loggerBackend({ logger: own.logger }) } });
    tracker.emit('x');
    expect(own.lines).toHaveLength(1);
    expect(own.lines[0]).toMatchObject({ level: 30, msg: 'x' });
    expect(trackerLog.lines).toHaveLength(0);
  });

  it('drops an event over maxEventSize bytes (too_large), counts it and tells both onDrops, after emit', async () => {
    const { logger, lines } = captureLogger();
    const own: Array<[string, DropReason, string | undefined]> = [];
    const tracked: Array<[string, DropReason]> = [];
    const tracker = createTracker({
      logger,
      onDrop: (events, reason) => tracked.push([events[0]?.name ?? '', reason]),
      backends: { log: loggerBackend({ maxEventSize: 300, onDrop: (events, reason, error) => own.push([events[0]?.name ?? '', reason, error?.message]) }) },
    });
    tracker.emit('small', { text: 'x'.repeat(50) });
    // 60 three-byte characters: 60 UTF-16 units, 180 bytes, over the limit with the envelope around them
    tracker.emit('wide', { text: '€'.repeat(60) });
    expect(lines.filter((line) => line.event !== undefined && (line.event as TrackerEvent).data).map((line) => line.msg)).toEqual(['small']);
    expect([own, tracked]).toEqual([[], []]);
    await tracker.flush();
    expect(own).toEqual([['wide', 'too_large', expect.stringMatching(/^event is \d+ bytes, over the limit of 300 bytes$/)]]);
    expect(tracked).toEqual([['wide', 'too_large']]);
    expect(tracker.stats().backends.log).toEqual({ sent: 1, failed: 0, dropped: 1, pending: 0, droppedBy: { too_large: 1 } });
  });

  it('refuses an unknown level or a bad size at construction', () => {
    const message = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return isXrefError(error, 'XREF_INVALID_CONFIG') ? error.message : error;
      }
      return 'no error';
    };
    expect(message(() => loggerBackend({ level: 'loud' as 'info' }))).toBe('config loggerBackend.level must be one of trace, debug, info, warn, error, fatal, got "loud"');
    expect(message(() => loggerBackend({ maxEventSize: 0 }))).toBe('config loggerBackend.maxEventSize must be a positive integer (bytes), got 0');
  });
});
