/**
 * The tracker: the envelope `emit` builds (and that it never throws), identifiers from the
 * context and the data, contexts (merge order, copies at entry, left after a throw, isolated
 * between concurrent chains), backends called in order and kept apart from each other's
 * failures, the delivery report of `flush` and `close`, and the registry.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isXrefError } from '../../src/domain/errors.ts';
import {
  type Backend,
  type BackendHost,
  type BackendStats,
  type DropReason,
  EventEmissionExit,
  type TrackerEvent,
  createTracker,
  getTracker,
  memoryBackend,
  registerTracker,
  routingBackend,
  unregisterTracker,
  uuidv7,
} from '../../src/tracker/index.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'trace' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { logger, lines };
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A backend that queues what it is given and keeps its own account, like a network backend; `deliver` settles the queue. */
function queueBackend(closeBehaviour: 'settle' | 'hang' = 'settle') {
  const queued: TrackerEvent[] = [];
  const stats: BackendStats = { sent: 0, failed: 0, dropped: 0, pending: 0, droppedBy: {} };
  let host: BackendHost | undefined;
  const closeCalls: number[] = [];
  const backend = {
    queued,
    closeCalls,
    get host() {
      return host;
    },
    attach(h: BackendHost) {
      host = h;
    },
    send(event: TrackerEvent) {
      queued.push(event);
    },
    deliver() {
      stats.sent += queued.length;
      queued.length = 0;
    },
    refuse(reason: DropReason) {
      const events = queued.splice(0);
      if (reason === 'rejected') stats.failed += events.length;
      else stats.dropped += events.length;
      stats.droppedBy[reason] = (stats.droppedBy[reason] ?? 0) + events.length;
      host?.onDrop(events, reason);
    },
    stats: (): BackendStats => ({ ...stats, pending: queued.length, droppedBy: { ...stats.droppedBy } }),
    async flush() {
      backend.deliver();
    },
    close(options?: { timeoutMs?: number }): Promise<void> {
      closeCalls.push(options?.timeoutMs ?? -1);
      if (closeBehaviour === 'hang') return new Promise(() => {});
      backend.deliver();
      return Promise.resolve();
    },
  };
  return backend;
}

/** Runs `fn` in an async chain of its own (an enterContext there never reaches the caller). */
function isolated<T>(fn: () => T | Promise<T>): Promise<T> {
  return Promise.resolve().then(fn);
}

describe('emit', () => {
  it('with no arguments, builds the whole envelope: a UUID v7 id (returned), name unknown, a UTC timestamp with ms, empty data, context and ids', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const before = Date.now();
    const id = tracker.emit();
    const [event] = memory.events;
    expect(event).toEqual({ id, name: 'unknown', timestamp: expect.any(String), ids: {}, data: {}, context: {} });
    expect(id).toMatch(UUID_V7);
    expect(event?.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(event?.timestamp ?? '')).toBeGreaterThanOrEqual(before);
    expect(Date.parse(event?.timestamp ?? '')).toBeLessThanOrEqual(Date.now());
  });

  it('takes an empty name as unknown, and keeps its own copy of the data', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const data = { path: '/', items: 2 };
    tracker.emit('', data);
    tracker.emit('pageview', data);
    data.items = 3;
    expect(memory.events.map((e) => [e.name, e.data])).toEqual([
      ['unknown', { path: '/', items: 2 }],
      ['pageview', { path: '/', items: 2 }],
    ]);
  });

  it('keeps data that is not an object under value', () => {
    const memory = memoryBackend();
    createTracker({ backends: { memory } }).emit('x', [1, 2] as unknown as Record<string, unknown>);
    expect(memory.events[0]?.data).toEqual({ value: [1, 2] });
  });

  it('never throws: not for a name that cannot be printed, nor a failing processor, nor a failing backend', () => {
    const { logger, lines } = captureLogger();
    const tracker = createTracker({
      logger,
      processors: [
        () => {
          throw new RangeError('processor bug');
        },
      ],
      backends: {
        broken: {
          send() {
            throw new Error('backend bug');
          },
        },
      },
    });
    const unprintable = { toString: () => { throw new Error('no'); } } as unknown as string;
    expect(tracker.emit(unprintable)).toMatch(UUID_V7);
    expect(tracker.emit('ok')).toMatch(UUID_V7);
    expect(lines.some((line) => line.msg === 'emit failed')).toBe(true);
    expect(tracker.stats().processors.errors).toBe(1);
    expect(tracker.stats().backends.broken).toMatchObject({ failed: 1 });
  });

  it('gives ids that are unique and ordered by time, within one millisecond too', () => {
    const ids = Array.from({ length: 20_000 }, () => uuidv7(1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(UUID_V7);
    expect(uuidv7(1_700_000_000_000 + 10) > (ids.at(-1) as string)).toBe(true);
    // the first 48 bits are the time
    expect(Number.parseInt(uuidv7(1_800_000_000_000).replace('-', '').slice(0, 12), 16)).toBe(1_800_000_000_000);
  });
});

describe('ids', () => {
  it('fills identifiers from the merged context and the data: strings, and integers as decimal strings', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory }, ids: { 'context.user_id': 'db_id', 'context.cookie': 'cookie', 'data.user.email': 'email' } });
    tracker.context('request', { user_id: 123, cookie: 'nice_page_visitor' }, () => tracker.emit('pageview', { user: { email: 'a@b.c' } }));
    expect(memory.events[0]?.ids).toEqual({ db_id: '123', cookie: 'nice_page_visitor', email: 'a@b.c' });
  });

  it('leaves out what is not a string or an integer, and an empty mapping result is ids: {}', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory }, ids: { 'data.a': 'a', 'data.b': 'b', 'data.c': 'c', 'data.d': 'd', 'data.e': 'e', 'context.none': 'f' } });
    tracker.emit('x', { a: 1.5, b: { id: 'x' }, c: true, d: '', e: null });
    expect(memory.events[0]?.ids).toEqual({});
  });

  it('takes the first listed path that has a value when two give one kind', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory }, ids: { 'data.user_id': 'db_id', 'context.user_id': 'db_id' } });
    tracker.context('r', { user_id: 'from-context' }, () => {
      tracker.emit('a', { user_id: 'from-data' });
      tracker.emit('b');
    });
    expect(memory.events.map((e) => e.ids.db_id)).toEqual(['from-data', 'from-context']);
  });

  it('refuses a path outside the context and the data, or a bad kind, naming it', () => {
    const bad = (ids: Record<string, string>): [string | undefined, string] => {
      try {
        createTracker({ ids });
      } catch (error) {
        if (isXrefError(error, 'XREF_INVALID_CONFIG')) return [error.field, error.message];
        throw error;
      }
      throw new Error('the ids were taken');
    };
    expect(bad({ 'user.id': 'db_id' })).toEqual(['ids.user.id', expect.stringContaining('context.user_id')]);
    expect(bad({ 'context.': 'db_id' })[0]).toBe('ids.context.');
    expect(bad({ 'context.user_id': 'db id' })).toEqual(['ids.context.user_id', expect.stringContaining('"db id"')]);
  });
});

describe('contexts', () => {
  it('merge in the order they were entered, later ones winning on shared keys', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    tracker.context('app', { app: 'shop', page: 'none', level: 'app' }, () =>
      tracker.context('request', { user_id: 'u1', level: 'request' }, () =>
        tracker.context('page', { page: '/cart', level: 'page' }, () => tracker.emit('view')),
      ),
    );
    expect(memory.events[0]?.context).toEqual({ app: 'shop', page: '/cart', level: 'page', user_id: 'u1' });
    expect(Object.keys(memory.events[0]?.context ?? {})).toEqual(['app', 'page', 'level', 'user_id']);
  });

  it('copy their values at entry: changing the object afterwards, at any depth, changes no later event', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const values = { user: { id: 'u1', roles: ['a'] }, plan: 'free' };
    tracker.context('request', values, () => {
      values.plan = 'pro';
      values.user.id = 'u2';
      values.user.roles.push('b');
      tracker.emit('x');
    });
    expect(memory.events[0]?.context).toEqual({ user: { id: 'u1', roles: ['a'] }, plan: 'free' });
  });

  it('do not let an event change the context later events get', () => {
    const memory = memoryBackend();
    const tracker = createTracker({
      backends: { memory },
      processors: [
        (event) => {
          event.context.extra = 1;
          (event.context.user as Record<string, unknown>).id = 'changed'; // nested values are frozen: this throws, and is undone
        },
      ],
    });
    tracker.context('request', { user: { id: 'u1' } }, () => {
      tracker.emit('a');
      tracker.emit('b');
    });
    expect(memory.events.map((e) => e.context)).toEqual([{ user: { id: 'u1' } }, { user: { id: 'u1' } }]);
    expect(tracker.stats().processors.errors).toBe(2);
  });

  it('context() returns what fn returns, sync or async', async () => {
    const tracker = createTracker();
    expect(tracker.context('a', {}, () => 42)).toBe(42);
    await expect(tracker.context('a', {}, async () => 'later')).resolves.toBe('later');
  });

  it('is left after fn throws, and the error passes on', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const boom = new Error('boom');
    expect(() =>
      tracker.context('outer', { outer: true }, () =>
        tracker.context('inner', { inner: true }, () => {
          throw boom;
        }),
      ),
    ).toThrow(boom);
    tracker.emit('after');
    expect(memory.events[0]?.context).toEqual({});
    expect(tracker.currentContext()).toEqual({});
  });

  it('is left after an async fn rejects, and the rejection passes on', async () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    await tracker.context('outer', { outer: true }, async () => {
      const boom = new Error('async boom');
      await expect(
        tracker.context('inner', { inner: true }, async () => {
          await Promise.resolve();
          tracker.emit('inside');
          throw boom;
        }),
      ).rejects.toBe(boom);
      tracker.emit('back in outer');
    });
    tracker.emit('outside');
    expect(memory.events.map((e) => [e.name, e.context])).toEqual([
      ['inside', { outer: true, inner: true }],
      ['back in outer', { outer: true }],
      ['outside', {}],
    ]);
  });

  it('follow the async call chain: two concurrent chains never see each other', async () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const bEmitted = deferred();
    const a = tracker.context('request', { user_id: 'a' }, async () => {
      await bEmitted.promise; // b opens and emits while a is suspended here
      tracker.emit('from a');
      await tracker.context('step', { step: 'a2' }, async () => tracker.emit('from a, step'));
    });
    const b = tracker.context('request', { user_id: 'b' }, async () => {
      await Promise.resolve();
      tracker.context('step', { step: 'b1' }, () => tracker.emit('from b, step'));
      bEmitted.resolve();
      await Promise.resolve();
      tracker.emit('from b');
    });
    await Promise.all([a, b]);
    const byName = Object.fromEntries(memory.events.map((e) => [e.name, e.context]));
    expect(byName).toEqual({
      'from b, step': { user_id: 'b', step: 'b1' },
      'from a': { user_id: 'a' },
      'from a, step': { user_id: 'a', step: 'a2' },
      'from b': { user_id: 'b' },
    });
  });

  it('enterContext / exitContext serve code that cannot wrap, per async chain', async () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    const gate = deferred();
    const chain = (who: string, last: boolean) =>
      isolated(async () => {
        tracker.enterContext('request', { who });
        if (!last) await gate.promise;
        tracker.emit(`${who} inside`);
        if (last) gate.resolve();
        tracker.exitContext('request');
        tracker.emit(`${who} after`);
      });
    await Promise.all([chain('a', false), chain('b', true)]);
    tracker.emit('caller');
    expect(Object.fromEntries(memory.events.map((e) => [e.name, e.context]))).toEqual({
      'b inside': { who: 'b' },
      'b after': {},
      'a inside': { who: 'a' },
      'a after': {},
      caller: {},
    });
  });

  it('exitContext leaves the named context and keeps the ones entered after it', async () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory } });
    await isolated(() => {
      tracker.enterContext('app', { app: 'shop', who: 'app' });
      tracker.enterContext('request', { user_id: 'u1', who: 'request' });
      tracker.enterContext('page', { page: '/' });
      tracker.exitContext('request');
      tracker.emit('x');
      tracker.exitContext('page');
      tracker.exitContext('app');
      tracker.emit('y');
    });
    expect(memory.events.map((e) => e.context)).toEqual([{ app: 'shop', who: 'app', page: '/' }, {}]);
  });

  it('exiting a context that is not open is a clear error naming it and the open ones', async () => {
    const tracker = createTracker();
    await isolated(() => {
      tracker.enterContext('request', {});
      let caught: unknown;
      try {
        tracker.exitContext('page');
      } catch (error) {
        caught = error;
      }
      expect(isXrefError(caught, 'XREF_INVALID_ARGUMENT')).toBe(true);
      expect((caught as Error).message).toBe('exitContext name must be an open context (open: request), got "page"');
      tracker.exitContext('request');
      expect(() => tracker.exitContext('request')).toThrow('exitContext name must be an open context (none is open), got "request"');
    });
  });

  it('refuses a context without a name or with values that are not an object', () => {
    const tracker = createTracker();
    expect(() => tracker.context('', {}, () => 1)).toThrow('context name must be a non-empty string, got ""');
    expect(() => tracker.context('a', 'x' as unknown as Record<string, unknown>, () => 1)).toThrow('context values of context "a" must be a plain object, got "x"');
  });
});

describe('backends', () => {
  it('each get the event in the order given, and one that throws stops none of the other four', async () => {
    const order: string[] = [];
    const memories = [memoryBackend(), memoryBackend(), memoryBackend(), memoryBackend()];
    const drops: Array<[string, DropReason, string | undefined]> = [];
    const { logger, lines } = captureLogger();
    const tracked = (name: string, backend: Backend): Backend => ({ send: (e) => (order.push(name), backend.send(e)) });
    const tracker = createTracker({
      logger,
      onDrop: (events, reason, error) => drops.push([events[0]?.name ?? '', reason, error?.message]),
      backends: {
        one: tracked('one', memories[0] as Backend),
        two: tracked('two', memories[1] as Backend),
        broken: {
          send() {
            order.push('broken');
            throw new Error('disk full');
          },
        },
        four: tracked('four', memories[2] as Backend),
        five: tracked('five', memories[3] as Backend),
      },
    });
    tracker.emit('signup');
    expect(order).toEqual(['one', 'two', 'broken', 'four', 'five']);
    for (const memory of memories) expect(memory.events.map((e) => e.name)).toEqual(['signup']);
    expect(drops).toEqual([]); // onDrop never runs inside emit
    await tracker.flush();
    expect(drops).toEqual([['signup', 'rejected', 'disk full']]);
    expect(lines.find((line) => line.backend === 'broken')).toMatchObject({ level: 50, err: { message: 'disk full' } });
    const report = tracker.stats();
    expect(report.backends.broken).toEqual({ sent: 0, failed: 1, dropped: 0, pending: 0, droppedBy: { rejected: 1 } });
    expect(report.backends.one).toEqual({ sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
  });

  it('get the event only after the top-level processors, and a cancelled event reaches none and is counted for none', () => {
    const memory = memoryBackend();
    const tracker = createTracker({
      backends: { memory },
      processors: [
        (event) => {
          if (event.name === 'debug') throw new EventEmissionExit();
          event.data.seen = true;
        },
      ],
    });
    tracker.emit('debug');
    tracker.emit('kept');
    expect(memory.events.map((e) => [e.name, e.data])).toEqual([['kept', { seen: true }]]);
    expect(tracker.stats()).toMatchObject({ emitted: 2, processors: { cancelled: 1, errors: 0 }, backends: { memory: { sent: 1 } } });
  });

  it('are mounted with their name, a child logger and the tracker onDrop, which hears their drops', async () => {
    const { logger, lines } = captureLogger();
    const heard: Array<[number, DropReason]> = [];
    const queue = queueBackend();
    const tracker = createTracker({ logger, onDrop: (events, reason) => heard.push([events.length, reason]), backends: { xref: queue } });
    expect(queue.host?.name).toBe('xref');
    queue.host?.logger.info('hello');
    expect(lines.at(-1)).toMatchObject({ component: 'tracker', backend: 'xref', msg: 'hello' });
    tracker.emit('a');
    tracker.emit('b');
    queue.refuse('overflow');
    await tracker.flush();
    expect(heard).toEqual([[2, 'overflow']]);
  });

  it('refuses a backend without send, or a name with a dot, naming it', () => {
    expect(() => createTracker({ backends: { a: {} as Backend } })).toThrow('config backends.a must be a backend: an object with send(event), got {}');
    expect(() => createTracker({ backends: { 'a.b': memoryBackend() } })).toThrow(/config backends\.a\.b must be named without dots/);
  });

  it('keep the source for the backends (default tracker)', () => {
    expect(createTracker().source).toBe('tracker');
    expect(createTracker({ source: 'web' }).source).toBe('web');
  });
});

describe('the delivery report', () => {
  it('counts every event given to each leaf: sent + failed + dropped + pending', async () => {
    const queue = queueBackend();
    const memory = memoryBackend();
    const tracker = createTracker({
      backends: {
        xref: queue,
        tests: memory,
        analytics: routingBackend({
          processors: [(e) => { if (e.name === 'b') throw new EventEmissionExit(); }],
          backends: { store: memoryBackend() },
        }),
      },
    });
    for (const name of ['a', 'b', 'c', 'd']) tracker.emit(name);
    queue.deliver();
    tracker.emit('e');
    tracker.emit('f');
    queue.refuse('rejected');
    tracker.emit('g');
    expect(tracker.stats()).toMatchObject({
      total: { sent: 7 + 6 + 4, failed: 2, dropped: 0, pending: 1 },
      backends: {
        xref: { sent: 4, failed: 2, dropped: 0, pending: 1, droppedBy: { rejected: 2 } },
        tests: { sent: 7, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
        'analytics.store': { sent: 6, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
      },
    });
    const report = await tracker.flush();
    expect(report).toEqual({
      total: { sent: 5 + 7 + 6, failed: 2, dropped: 0, pending: 0 },
      backends: {
        xref: { sent: 5, failed: 2, dropped: 0, pending: 0, droppedBy: { rejected: 2 } },
        tests: { sent: 7, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
        'analytics.store': { sent: 6, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
      },
    });
  });

  it('flush resolves after timeoutMs with what is still pending, and never rejects', async () => {
    const stuck: Backend = { send() {}, stats: () => ({ sent: 0, failed: 0, dropped: 0, pending: 1, droppedBy: {} }), flush: () => new Promise(() => {}) };
    const failing: Backend = { send() {}, flush: () => Promise.reject(new Error('flush failed')) };
    const tracker = createTracker({ backends: { stuck, failing } });
    tracker.emit('x');
    const started = Date.now();
    const report = await tracker.flush({ timeoutMs: 30 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(29);
    expect(report.backends).toEqual({
      stuck: { sent: 0, failed: 0, dropped: 0, pending: 1, droppedBy: {} },
      failing: { sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} },
    });
  });

  it('close reports what is undelivered when its timeout ends as dropped (closed): pending is 0', async () => {
    const hanging = queueBackend('hang');
    const tracker = createTracker({ backends: { hanging } });
    tracker.emit('a');
    tracker.emit('b');
    const report = await tracker.close({ timeoutMs: 20 });
    expect(hanging.closeCalls).toEqual([20]);
    expect(report).toEqual({ total: { sent: 0, failed: 0, dropped: 2, pending: 0 }, backends: { hanging: { sent: 0, failed: 0, dropped: 2, pending: 0, droppedBy: { closed: 2 } } } });
  });

  it('close is idempotent: the backends are closed once, and every call reports', async () => {
    const queue = queueBackend();
    const tracker = createTracker({ backends: { queue } });
    tracker.emit('a');
    const [first, second] = await Promise.all([tracker.close(), tracker.close()]);
    const third = await tracker.close();
    expect(queue.closeCalls).toHaveLength(1);
    expect(first).toEqual({ total: { sent: 1, failed: 0, dropped: 0, pending: 0 }, backends: { queue: { sent: 1, failed: 0, dropped: 0, pending: 0, droppedBy: {} } } });
    expect(second).toEqual(first);
    expect(third).toEqual(first);
  });

  it('close never rejects, even when a backend close throws', async () => {
    const tracker = createTracker({
      backends: {
        bad: {
          send() {},
          close() {
            throw new Error('sync close bug');
          },
        },
      },
    });
    tracker.emit('a');
    await expect(tracker.close()).resolves.toMatchObject({ backends: { bad: { sent: 1 } } });
  });

  it('an emit after close reaches no backend and is dropped (closed) for every leaf, and told to onDrop once per leaf', async () => {
    const memory = memoryBackend();
    const branch = memoryBackend();
    const drops: Array<[string[], DropReason]> = [];
    const tracker = createTracker({
      onDrop: (events, reason) => drops.push([events.map((e) => e.name), reason]),
      backends: { memory, analytics: routingBackend({ backends: { branch } }) },
    });
    tracker.emit('before');
    await tracker.close();
    const id = tracker.emit('late');
    expect(id).toMatch(UUID_V7);
    expect(memory.events.map((e) => e.name)).toEqual(['before']);
    expect(branch.events.map((e) => e.name)).toEqual(['before']);
    expect(drops).toEqual([]); // onDrop never runs inside emit
    const report = await tracker.close();
    expect(drops).toEqual([[['late', 'late'], 'closed']]);
    expect(report.backends).toEqual({
      memory: { sent: 1, failed: 0, dropped: 1, pending: 0, droppedBy: { closed: 1 } },
      'analytics.branch': { sent: 1, failed: 0, dropped: 1, pending: 0, droppedBy: { closed: 1 } },
    });
    expect(report.total).toEqual({ sent: 2, failed: 0, dropped: 2, pending: 0 });
    expect(tracker.stats()).toMatchObject({ emitted: 2, closed: true });
  });

  it('a backend mounted in the tree can be found by its path', () => {
    const store = memoryBackend();
    const tracker = createTracker({ backends: { analytics: routingBackend({ backends: { store } }) } });
    expect(tracker.backend('analytics.store')).toBe(store);
    expect(tracker.backend('nope')).toBeUndefined();
  });
});

describe('the registry', () => {
  it('gives back a registered tracker, by default under default', () => {
    const main = createTracker();
    const audit = createTracker();
    registerTracker(main);
    registerTracker('audit', audit);
    expect(getTracker()).toBe(main);
    expect(getTracker('default')).toBe(main);
    expect(getTracker('audit')).toBe(audit);
    unregisterTracker('default');
    unregisterTracker('audit');
  });

  it('an unknown name is a clear error naming it and the registered ones', () => {
    registerTracker('web', createTracker());
    let caught: unknown;
    try {
      getTracker('mobile');
    } catch (error) {
      caught = error;
    }
    expect(isXrefError(caught, 'XREF_NOT_FOUND')).toBe(true);
    expect((caught as Error).message).toBe('tracker "mobile" is not known (registered: "web")');
    unregisterTracker('web');
    expect(() => getTracker()).toThrow('tracker "default" is not known (registered: none)');
  });
});
