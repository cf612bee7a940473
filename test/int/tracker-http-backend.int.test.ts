import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import { type HttpBackendOptions, httpBackend } from '../../src/tracker/http-backend.ts';
import { createTracker, memoryBackend } from '../../src/tracker/index.ts';
import type { BackendHost, DropReason, TrackerEvent } from '../../src/tracker/types.ts';
import { type Collector, startCollector } from '../helpers/collector.ts';
import { freePort } from '../helpers/nats-server.ts';
import { readStream, waitFor } from '../helpers/streams.ts';

const WRITE_KEY = 'wk_tracker_http';
let collector: Collector;

beforeAll(async () => {
  collector = await startCollector({ writeKey: WRITE_KEY });
});
afterAll(() => collector?.close());

let n = 0;
const run = `${Date.now().toString(36)}`;
function event(extra: Partial<TrackerEvent> = {}): TrackerEvent {
  n++;
  return { id: `trk-${run}-${n}`, name: 'page_viewed', timestamp: new Date().toISOString(), ids: { cookie: `visitor-${n % 7}` }, data: { path: `/p/${n}` }, context: { user_agent: 'test' }, ...extra };
}

/** The ids of `events` found in XREF_IN, each as many times as it is stored. */
async function storedIds(events: readonly TrackerEvent[]): Promise<string[]> {
  const wanted = new Set(events.map((e) => e.id));
  const messages = await readStream<{ id: string }>(collector.nc, STREAMS.in);
  return messages.filter((m) => wanted.has(m.data.id)).map((m) => m.data.id);
}

interface Drop {
  readonly ids: string[];
  readonly reason: DropReason;
  readonly error: Error | undefined;
}

/** A backend mounted as the tracker would mount it, with both onDrop callbacks recorded, and a count of its requests. */
function backend(options: Partial<HttpBackendOptions> & { url: string }) {
  const own: Drop[] = [];
  const host: Drop[] = [];
  let requests = 0;
  const record = (into: Drop[]) => (events: readonly TrackerEvent[], reason: DropReason, error?: Error) => into.push({ ids: events.map((e) => e.id), reason, error });
  const b = httpBackend({
    writeKey: WRITE_KEY,
    minRetryDelayMs: 20,
    maxRetryDelayMs: 200,
    fetch: (input, init) => {
      requests++;
      return fetch(input, init);
    },
    onDrop: record(own),
    ...options,
  });
  const mount: BackendHost = { name: 'xref', logger: logger.child({ component: 'test-tracker' }), onDrop: record(host), child: () => mount };
  b.attach(mount);
  return { backend: b, own, host, requests: () => requests };
}

/** A TCP door to the collector on a port of its own: shut, nothing listens there (connections are refused). */
class Door {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async open(): Promise<void> {
    const server = createServer((socket) => {
      const upstream = createConnection(this.target, '127.0.0.1');
      for (const s of [socket, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      socket.pipe(upstream).pipe(socket);
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    this.server = server;
  }

  async shut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

async function door(): Promise<Door> {
  return new Door(await freePort(), Number(new URL(collector.url).port));
}

/** Sends every event and says how long the slowest `send` took, in ms. */
function sendAll(b: { send(e: TrackerEvent): void }, events: readonly TrackerEvent[]): { slowestMs: number; totalMs: number } {
  let slowest = 0;
  const started = performance.now();
  for (const e of events) {
    const t = performance.now();
    b.send(e);
    slowest = Math.max(slowest, performance.now() - t);
  }
  return { slowestMs: slowest, totalMs: performance.now() - started };
}

describe('httpBackend against a real collector', () => {
  it('delivers every event to XREF_IN, once, and flush() resolves when all are stored', async () => {
    const { backend: b, own, requests } = backend({ url: collector.url, flushAt: 100 });
    const events = Array.from({ length: 1050 }, () => event());
    sendAll(b, events);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 1050, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    expect(requests()).toBeGreaterThanOrEqual(11);
    expect((await storedIds(events)).sort()).toEqual(events.map((e) => e.id).sort());
    expect(own).toEqual([]);
    await b.close();
  });

  it('keeps taking events, fast, while the collector is unreachable, and delivers them once it is back', async () => {
    const d = await door(); // shut: connections refused
    const { backend: b, requests } = backend({ url: d.url, flushAt: 200, maxInFlight: 2 });
    const events = Array.from({ length: 3000 }, () => event());
    const timing = sendAll(b, events);
    expect(timing.totalMs).toBeLessThan(500); // 3,000 sends; the benchmark measures the real figure
    await waitFor('a few failed attempts', () => requests() >= 4, 10_000);
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 0, pending: 3000, droppedBy: {} });
    const more = Array.from({ length: 1000 }, () => event());
    expect(sendAll(b, more).totalMs).toBeLessThan(500); // still fast while retrying
    await d.open();
    try {
      await b.flush({ timeoutMs: 20_000 });
      expect(b.stats()).toEqual({ sent: 4000, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
      const stored = await storedIds([...events, ...more]);
      expect(stored.length).toBe(4000);
      expect(new Set(stored).size).toBe(4000);
    } finally {
      await b.close();
      await d.shut();
    }
  });

  it('counts and reports overflow drops while the collector is down; the rest are delivered after', async () => {
    const d = await door();
    const { backend: b, own, host, requests } = backend({ url: d.url, flushAt: 50, maxInFlight: 1, maxQueueEvents: 100 });
    const first = Array.from({ length: 50 }, () => event());
    sendAll(b, first);
    await waitFor('the first batch in flight', () => requests() >= 1, 10_000);
    const rest = Array.from({ length: 300 }, () => event());
    sendAll(b, rest);
    // 50 in the batch being retried, the newest 100 queued, the 200 oldest queued dropped
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 200, pending: 150, droppedBy: { overflow: 200 } });
    await d.open();
    try {
      await b.flush({ timeoutMs: 20_000 });
      expect(b.stats()).toEqual({ sent: 150, failed: 0, dropped: 200, pending: 0, droppedBy: { overflow: 200 } });
      const droppedIds = rest.slice(0, 200).map((e) => e.id);
      expect(own.flatMap((x) => (x.reason === 'overflow' ? x.ids : []))).toEqual(droppedIds);
      expect(host.flatMap((x) => (x.reason === 'overflow' ? x.ids : []))).toEqual(droppedIds);
      expect((await storedIds([...first, ...rest])).sort()).toEqual([...first, ...rest.slice(200)].map((e) => e.id).sort());
    } finally {
      await b.close();
      await d.shut();
    }
  });

  it("a batch with one bad event: the good ones are stored, the bad one fails with the collector's error", async () => {
    const { backend: b, own, host } = backend({ url: collector.url, flushAt: 5 });
    const events = [event(), event(), event({ timestamp: 'yesterday' }), event(), event()];
    sendAll(b, events);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 4, failed: 1, dropped: 0, pending: 0, droppedBy: { rejected: 1 } });
    expect(own).toHaveLength(1);
    expect(own[0]).toMatchObject({ ids: [events[2]!.id], reason: 'rejected' });
    expect(own[0]!.error).toMatchObject({ code: 'XREF_INVALID_EVENT', field: 'timestamp', status: 200 });
    expect(own[0]!.error?.message).toMatch(/^the collector rejected the event \(200\): timestamp .*yesterday/);
    expect(host).toEqual(own);
    expect((await storedIds(events)).sort()).toEqual(events.filter((_, i) => i !== 2).map((e) => e.id).sort());
    await b.close();
  });

  it('an event without ids is dropped as no_ids and never reaches the collector', async () => {
    const { backend: b, own, requests } = backend({ url: collector.url });
    const anonymous = event({ ids: {} });
    b.send(anonymous);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 1, pending: 0, droppedBy: { no_ids: 1 } });
    expect(own).toEqual([{ ids: [anonymous.id], reason: 'no_ids', error: undefined }]);
    expect(requests()).toBe(0);
    await b.close();
  });

  it('a wrong write key fails the batch once (401), with the collector\'s error, and does not retry', async () => {
    const { backend: b, own, requests } = backend({ url: collector.url, writeKey: 'wk_not_this_one', flushAt: 3 });
    const events = [event(), event(), event()];
    sendAll(b, events);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 0, failed: 3, dropped: 0, pending: 0, droppedBy: { rejected: 3 } });
    expect(requests()).toBe(1);
    expect(own).toHaveLength(1);
    expect(own[0]!.ids).toEqual(events.map((e) => e.id));
    expect(own[0]!.error).toMatchObject({ code: 'XREF_UNAUTHORIZED', status: 401 });
    await b.close();
  });

  it('close({ timeoutMs }) with the collector down: what is undelivered is dropped as closed, nothing stays pending', async () => {
    const d = await door();
    const { backend: b, own, host } = backend({ url: d.url, flushAt: 20 });
    const events = Array.from({ length: 70 }, () => event());
    sendAll(b, events);
    const started = performance.now();
    await b.close({ timeoutMs: 300 });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 70, pending: 0, droppedBy: { closed: 70 } });
    const late = event();
    b.send(late);
    await b.close();
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 71, pending: 0, droppedBy: { closed: 71 } });
    await b.flush();
    expect(own.flatMap((x) => x.ids).sort()).toEqual([...events, late].map((e) => e.id).sort());
    expect(host.flatMap((x) => x.ids).sort()).toEqual([...events, late].map((e) => e.id).sort());
  });

  it('in a tracker: contexts give the ids, the report is exact, and an event without ids still reaches the memory backend', async () => {
    const drops: Array<{ reason: DropReason; ids: string[] }> = [];
    const memory = memoryBackend();
    const tracker = createTracker({
      source: 'shop',
      ids: { 'context.user_id': 'db_id', 'context.cookie': 'cookie' },
      backends: { xref: httpBackend({ url: collector.url, writeKey: WRITE_KEY, flushAt: 10 }), memory },
      onDrop: (events, reason) => drops.push({ reason, ids: events.map((e) => e.id) }),
    });
    const ids: string[] = [];
    await tracker.context('request', { cookie: `tracker-visitor-${run}`, path: '/cart' }, async () => {
      for (let i = 0; i < 25; i++) ids.push(tracker.emit('cart_viewed', { i }));
      await tracker.context('user', { user_id: 42 }, async () => {
        ids.push(tracker.emit('checkout'));
      });
    });
    const anonymous = tracker.emit('no_one');
    const report = await tracker.close();
    expect(report.backends.xref).toEqual({ sent: 26, failed: 0, dropped: 1, pending: 0, droppedBy: { no_ids: 1 } });
    expect(report.backends.memory).toMatchObject({ sent: 27, pending: 0 });
    expect(report.total).toEqual({ sent: 53, failed: 0, dropped: 1, pending: 0 });
    expect(drops).toEqual([{ reason: 'no_ids', ids: [anonymous] }]);
    const messages = await readStream<{ id: string; ids: Record<string, string>; context: Record<string, unknown> }>(collector.nc, STREAMS.in);
    const mine = messages.filter((m) => ids.includes(m.data.id));
    expect(mine).toHaveLength(26);
    const checkout = mine.find((m) => m.data.id === ids[25])!;
    expect(checkout.data.ids).toEqual({ db_id: '42', cookie: `tracker-visitor-${run}` });
    expect(checkout.data.context).toMatchObject({ path: '/cart', user_id: 42 });
  });
});
