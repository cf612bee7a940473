import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { STREAMS, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { natsBackend, type NatsBackendOptions } from '../../src/tracker/nats.ts';
import type { BackendHost, DropReason, TrackerEvent } from '../../src/tracker/types.ts';
import { type NatsServerHandle, freePort, startNatsServer, useNatsServer } from '../helpers/nats-server.ts';
import { readStream } from '../helpers/streams.ts';

const nats = useNatsServer();

beforeAll(async () => {
  await ensureTopology(nats.nc, await jetstreamManager(nats.nc), logger.child({ component: 'test-topology' }));
});

let n = 0;
function event(extra: Partial<TrackerEvent> = {}): TrackerEvent {
  n++;
  return { id: `nats-trk-${n}`, name: 'page_viewed', timestamp: new Date().toISOString(), ids: { cookie: `visitor-${n % 5}` }, data: { path: `/p/${n}` }, context: {}, ...extra };
}

interface Drop {
  readonly ids: string[];
  readonly reason: DropReason;
  readonly error: Error | undefined;
}

function backend(options: NatsBackendOptions) {
  const own: Drop[] = [];
  const host: Drop[] = [];
  const record = (into: Drop[]) => (events: readonly TrackerEvent[], reason: DropReason, error?: Error) => into.push({ ids: events.map((e) => e.id), reason, error });
  const b = natsBackend({ onDrop: record(own), ...options });
  const mount: BackendHost = { name: 'xref', logger: logger.child({ component: 'test-tracker' }), onDrop: record(host), child: () => mount };
  b.attach(mount);
  return { backend: b, own, host };
}

/** The messages of XREF_IN (on `server`) that belong to `events`. */
async function stored(events: readonly TrackerEvent[], url = nats.server.url) {
  const wanted = new Set(events.map((e) => e.id));
  const nc = await connect({ servers: url });
  try {
    return (await readStream<{ id: string }>(nc, STREAMS.in)).filter((m) => wanted.has(m.data.id));
  } finally {
    await nc.close();
  }
}

function sendAll(b: { send(e: TrackerEvent): void }, events: readonly TrackerEvent[]): number {
  const started = performance.now();
  for (const e of events) b.send(e);
  return performance.now() - started;
}

describe('natsBackend against a real nats-server', () => {
  it('publishes each event with Nats-Msg-Id = its id, on the given subject, and flush() waits for the acks', async () => {
    const { backend: b, own } = backend({ nc: nats.nc, subject: subjects.in('shop'), flushAt: 100 });
    const events = Array.from({ length: 750 }, () => event());
    sendAll(b, events);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 750, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    const messages = await stored(events);
    expect(messages.map((m) => m.data.id).sort()).toEqual(events.map((e) => e.id).sort());
    for (const m of messages) {
      expect(m.msgId).toBe(m.data.id);
      expect(m.subject).toBe('xref.in.shop');
    }
    expect(own).toEqual([]);
    await b.close();
    expect(nats.nc.isClosed()).toBe(false); // the caller's connection stays open
  });

  it('publishes to xref.in.tracker by default, and an id sent twice is stored once', async () => {
    const { backend: b } = backend({ nc: nats.nc });
    const once = event();
    b.send(once);
    b.send({ ...once, data: { again: true } });
    await b.flush();
    expect(b.stats()).toMatchObject({ sent: 2, pending: 0 }); // both acked, the second as a duplicate
    const messages = await stored([once]);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ subject: 'xref.in.tracker', msgId: once.id });
    await b.close();
  });

  it('drops an event without ids as no_ids', async () => {
    const { backend: b, own, host } = backend({ nc: nats.nc });
    const anonymous = event({ ids: {} });
    b.send(anonymous);
    await b.close();
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 1, pending: 0, droppedBy: { no_ids: 1 } });
    expect(own).toEqual([{ ids: [anonymous.id], reason: 'no_ids', error: undefined }]);
    expect(host).toEqual(own);
    expect(await stored([anonymous])).toEqual([]);
  });

  it('names a bad option', () => {
    expect(() => natsBackend({ nc: nats.nc, subject: 'events.tracker' })).toThrow(/natsBackend\.subject must be one of xref's input subjects, xref\.in\.<source>/);
    expect(() => natsBackend({ nc: nats.nc, subject: 'xref.in.*' })).toThrow(/natsBackend\.subject/);
    expect(() => natsBackend({} as NatsBackendOptions)).toThrow(/natsBackend needs exactly one of nc .* and servers/);
    expect(() => natsBackend({ nc: nats.nc, servers: nats.server.url })).toThrow(/exactly one of nc/);
  });
});

describe('natsBackend through a nats-server outage', () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    await ensureTopology(nc, await jetstreamManager(nc), logger.child({ component: 'test-topology' }));
    await nc.close();
  });
  afterAll(() => server?.stop());

  it('keeps taking events, fast, while the server is dead, then delivers every one once after it is back', async () => {
    const { backend: b } = backend({ servers: server.url, flushAt: 200 });
    const before = Array.from({ length: 1000 }, () => event());
    sendAll(b, before);
    await b.flush();
    expect(b.stats()).toMatchObject({ sent: 1000, pending: 0 });

    await server.kill();
    const during = Array.from({ length: 3000 }, () => event());
    expect(sendAll(b, during)).toBeLessThan(500); // 3,000 sends; the benchmark measures the real figure
    expect(b.stats()).toMatchObject({ sent: 1000, failed: 0, dropped: 0, pending: 3000 });
    await b.flush({ timeoutMs: 300 }); // resolves with the server down, never rejects
    expect(b.stats()).toMatchObject({ sent: 1000, pending: 3000 });

    await server.restart();
    await b.flush({ timeoutMs: 30_000 });
    expect(b.stats()).toEqual({ sent: 4000, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    const messages = await stored([...before, ...during], server.url);
    expect(messages).toHaveLength(4000); // nothing lost, nothing doubled
    expect(new Set(messages.map((m) => m.data.id)).size).toBe(4000);
    await b.close();
  });

  it('close({ timeoutMs }) while the server is dead: the undelivered are dropped as closed, nothing stays pending', async () => {
    const { backend: b, own, host } = backend({ servers: server.url, flushAt: 50 });
    b.send(event());
    await b.flush();
    await server.kill();
    try {
      const events = Array.from({ length: 120 }, () => event());
      sendAll(b, events);
      await b.close({ timeoutMs: 300 });
      expect(b.stats()).toEqual({ sent: 1, failed: 0, dropped: 120, pending: 0, droppedBy: { closed: 120 } });
      expect(own.flatMap((d) => (d.reason === 'closed' ? d.ids : [])).sort()).toEqual(events.map((e) => e.id).sort());
      expect(host.flatMap((d) => d.ids).sort()).toEqual(events.map((e) => e.id).sort());
      const late = event();
      b.send(late);
      await b.close();
      expect(b.stats()).toMatchObject({ dropped: 121, pending: 0, droppedBy: { closed: 121 } });
    } finally {
      await server.restart();
    }
  });
});

describe('natsBackend with no server up yet', () => {
  let server: NatsServerHandle | undefined;
  afterAll(() => server?.stop());

  it('takes events before the first connection, and delivers them once a server comes up', async () => {
    const port = await freePort();
    const { backend: b } = backend({ servers: `nats://127.0.0.1:${port}`, flushAt: 100, minRetryDelayMs: 20, maxRetryDelayMs: 200 });
    const events = Array.from({ length: 300 }, () => event());
    expect(sendAll(b, events)).toBeLessThan(500);
    await b.flush({ timeoutMs: 300 });
    expect(b.stats()).toEqual({ sent: 0, failed: 0, dropped: 0, pending: 300, droppedBy: {} });
    server = await startNatsServer({ port });
    const nc = await connect({ servers: server.url });
    await ensureTopology(nc, await jetstreamManager(nc), logger.child({ component: 'test-topology' }));
    await nc.close();
    await b.flush({ timeoutMs: 20_000 });
    expect(b.stats()).toEqual({ sent: 300, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    expect((await stored(events, server.url)).map((m) => m.data.id).sort()).toEqual(events.map((e) => e.id).sort());
    await b.close();
  });
});

describe('natsBackend: an event JetStream refuses', () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    // a stream of the test's own that takes no message over 400 bytes
    await (await jetstreamManager(nc)).streams.add({ name: 'TRACKER_LIMITED', subjects: [subjects.inAll], max_msg_size: 400 });
    await nc.close();
  });
  afterAll(() => server?.stop());

  it("fails it as rejected with JetStream's error; the others are stored", async () => {
    const { backend: b, own } = backend({ servers: server.url, flushAt: 3 });
    const big = event({ data: { pad: 'x'.repeat(600) } });
    const events = [event(), big, event()];
    sendAll(b, events);
    await b.flush();
    expect(b.stats()).toEqual({ sent: 2, failed: 1, dropped: 0, pending: 0, droppedBy: { rejected: 1 } });
    expect(own).toHaveLength(1);
    expect(own[0]).toMatchObject({ ids: [big.id], reason: 'rejected' });
    expect(own[0]!.error).toMatchObject({ code: 'XREF_PUBLISH_REFUSED' });
    expect(own[0]!.error?.message).toMatch(/JetStream refused a message on xref\.in\.tracker: .*(size|maximum)/i);
    await b.close();
  });
});
