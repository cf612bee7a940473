import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { requestForget } from '../../src/control/requests.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { logger } from '../../src/log.ts';
import { type ControlRecord, ControlStore } from '../../src/nats/control-store.ts';
import { NatsStateStore } from '../../src/nats/state-store.ts';
import { StreamEraser } from '../../src/nats/stream-eraser.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { compareStates, replayLog } from '../../src/service/replay.ts';
import { loadSettings } from '../../src/settings.ts';
import { groupEvents } from '../../src/group.ts';
import { exited, startEngineProcess } from '../helpers/engine-process.ts';
import { ev, idsOf } from '../helpers/events.ts';
import { webLog } from '../helpers/web-log.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { groupsFromMessages, publishEvents, readStream, sortLists, waitFor } from '../helpers/streams.ts';

const config = resolveConfig({ internal: ['user_id'], maxIdsPerUser: { cookie: 2 }, buffer: { ttlMs: 60 * 60_000 } });
const silent = logger.child({ component: 'test' }, { level: 'silent' });

/** What identifies the forgotten person: none of it may be left anywhere. */
const FORGOTTEN = ['u-forget', 'ck-f1', 'ck-f2', 'ck-f3', 'dv-f1'];

/**
 * The person: two cookies and a device linked, a third cookie refused by the cap of 2, and two
 * events of ck-f1 that expired unmatched before ck-f1 was linked. Beside them, u-keep.
 */
const before: XrefEvent[] = [
  ev('e1', { cookie: 'ck-f1' }, { minute: 0 }),
  ev('e2', { cookie: 'ck-f1' }, { minute: 1 }),
  ev('e3', { cookie: 'ck-k1' }, { minute: 200 }),
  ev('e4', { user_id: 'u-forget', cookie: 'ck-f1' }, { minute: 201 }),
  ev('e5', { user_id: 'u-forget', cookie: 'ck-f2' }, { minute: 202 }),
  ev('e6', { user_id: 'u-forget', device: 'dv-f1' }, { minute: 203 }),
  ev('e7', { user_id: 'u-forget', cookie: 'ck-f3' }, { minute: 204 }),
  ev('e8', { cookie: 'ck-f2' }, { minute: 205 }),
  ev('e9', { user_id: 'u-keep', cookie: 'ck-k1' }, { minute: 206 }),
  ev('e10', { cookie: 'ck-k1' }, { minute: 207 }),
];

/** Every message of a stream as raw text (subject, headers and data), deleted ones excluded. */
async function rawTexts(nc: NatsConnection, stream: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return [];
  const out: string[] = [];
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  for await (const msg of (await consumer.consume({ max_messages: 1000 })) as AsyncIterable<JsMsg>) {
    out.push(`${msg.subject} ${msg.headers?.toString() ?? ''} ${msg.string()}`);
    if (msg.info.pending === 0) break;
  }
  return out;
}

/** Every stream and bucket where a trace of the person would show. */
async function tracesOf(nc: NatsConnection, values: readonly string[]): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const found: string[] = [];
  for await (const info of jsm.streams.list()) {
    for (const text of await rawTexts(nc, info.config.name)) for (const value of values) if (text.includes(value)) found.push(`${info.config.name}: ${value} in ${text.slice(0, 200)}`);
  }
  return found;
}

async function forgetRecord(nc: NatsConnection, request: string): Promise<ControlRecord | undefined> {
  return new ControlStore(nc).get('forget', request);
}

async function startEngine(nc: NatsConnection, url: string) {
  return EngineService.start({ nc, config, settings: loadSettings({ NATS_URL: url, XREF_CHECKPOINT_EVERY: '5', XREF_CHECKPOINT_MS: '50' }), logger: silent });
}

describe('forget a user', () => {
  const nats = useNatsServer('each');

  it('erases the whole cluster from every stream and bucket, suppresses its ids, and a replay does not bring it back', async () => {
    const { nc } = nats;
    const engine = await startEngine(nc, nats.server.url);
    await publishEvents(nc, before);
    await waitFor('the events applied', () => engine.seq >= before.length);
    expect(await tracesOf(nc, FORGOTTEN)).not.toEqual([]);
    const keptBefore = (await rawTexts(nc, 'XREF_GROUPS')).filter((text) => text.includes('u-keep'));

    const { request } = await requestForget(nc, { kind: 'user_id', id: 'u-forget', by: 'test' });
    await waitFor('the receipt', async () => (await forgetRecord(nc, request))?.status === 'erased');

    const record = (await forgetRecord(nc, request))!;
    expect(record.receipt).toMatchObject({
      XREF_IN: { erased: 7, remaining: 0 }, // e1, e2 (unmatched) and e4 to e8
      XREF_GROUPS: { erased: 5, remaining: 0 },
      XREF_UNMATCHED: { erased: 2, remaining: 0 },
      XREF_AUDIT: { remaining: 0 },
      xref_links: { remaining: 0 },
      xref_snapshots: { remaining: 0 },
    });
    expect(record.receipt!.XREF_AUDIT!.erased).toBeGreaterThanOrEqual(4); // three links and the refusal of ck-f3
    expect(record.erasedAt).toBeDefined();
    expect(await tracesOf(nc, FORGOTTEN)).toEqual([]);
    // every other user's groups byte-identical
    expect((await rawTexts(nc, 'XREF_GROUPS')).filter((text) => text.includes('u-keep'))).toEqual(keptBefore);
    const audit = await readStream<{ reason: string; request?: string; erased?: Record<string, number> }>(nc, 'XREF_AUDIT');
    expect(audit.filter((a) => a.data.reason === 'forget')).toMatchObject([{ data: { request, erased: record.receipt && { XREF_IN: 7 } } }]);

    // a new event with their cookie is suppressed: audited without its payload, its input erased
    await publishEvents(nc, [ev('e11', { cookie: 'ck-f1' }, { minute: 300 }), ev('e12', { cookie: 'ck-k1' }, { minute: 301 })]);
    await waitFor('the new events applied', () => engine.seq >= before.length + 3);
    expect(engine.engineStats.suppressed).toBe(1);
    const suppressed = (await readStream<{ reason: string; eventId?: string; request?: string }>(nc, 'XREF_AUDIT')).filter((a) => a.data.reason === 'suppressed');
    expect(suppressed.map((a) => a.data)).toMatchObject([{ eventId: 'e11', request }]);
    expect(await tracesOf(nc, FORGOTTEN)).toEqual([]);
    await engine.stop();
    const live = await new NatsStateStore(nc, jetstream(nc), new JetStreamPublisher(nc, silent), silent).loadImage();

    // a replay from scratch finds none of them, and rebuilds the same state
    const replayed = await replayLog({ nc, natsUrl: nats.server.url, config, logger: silent });
    expect(compareStates(live, replayed.image)).toEqual([]);
    expect([...replayed.image.links.keys()].filter((key) => FORGOTTEN.some((value) => key.includes(value)))).toEqual([]);
    // … and --republish rebuilds the output streams without them, u-keep's events as they were
    const kept = (await readStream(nc, 'XREF_GROUPS')).map((m) => m.msgId).sort();
    await replayLog({ nc, natsUrl: nats.server.url, config, logger: silent, republish: true });
    expect((await readStream(nc, 'XREF_GROUPS')).map((m) => m.msgId).sort()).toEqual(kept);
    expect(await tracesOf(nc, FORGOTTEN)).toEqual([]);
  });

  it('erasing an input again (a forget applied again after a crash) is a no-op, whatever the server says of the gone message', async () => {
    const { nc } = nats;
    await publishEvents(nc, Array.from({ length: 10 }, (_, i) => ev(`g${i}`, { cookie: 'ck-g' }, { minute: i })));
    const eraser = new StreamEraser(nc, jetstream(nc), await jetstreamManager(nc));
    for (const seq of [4, 3, 5, 1]) await eraser.eraseInput(seq);
    // "sequence 4 not found" (code 10043), "no message found" (10057), and past the end
    for (const seq of [4, 1, 3, 99]) await eraser.eraseInput(seq);
    expect((await jetstreamManager(nc).then((jsm) => jsm.streams.info('XREF_IN'))).state.messages).toBe(6);
  });

  const trials = 3;
  it(`kill -9 of the engine in the middle of a forget, ${trials} times: each completes after the restart, exactly once`, async () => {
    const { nc } = nats;
    const background = webLog({ events: 4_000, identifiers: 800, seed: 5 });
    // users the background never names, 1,300 events each through 10 cookies, among the others
    const log: XrefEvent[] = [];
    const people = Array.from({ length: trials }, (_, t) => `u-big${t}`);
    background.forEach((event, i) => {
      log.push(event);
      const person = people[i % trials]!;
      const cookie = `ck-${person}-${i % 10}`;
      const ids = i < 100 ? { user_id: person, cookie } : { cookie };
      log.push({ id: `${person}-${i}`, timestamp: event.timestamp!, ids } as XrefEvent);
    });
    await publishEvents(nc, log);
    const jsm = await jetstreamManager(nc);
    let engine = startEngineProcess(nats.server.url, { XREF_CHECKPOINT_EVERY: '500' });
    let midway = 0;
    for (const person of people) {
      const { request } = await requestForget(nc, { kind: 'user_id', id: person, by: 'test' });
      // a random point of the erasure (it may be done already when the poll comes late)
      let status: string | undefined;
      await waitFor(`the forget of ${person} under way`, async () => ['erasing', 'erased'].includes((status = (await forgetRecord(nc, request))?.status)!), 60_000);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 150));
      if (status === 'erasing' && (await forgetRecord(nc, request))?.status === 'erasing') midway++;
      engine.kill('SIGKILL');
      await exited(engine);
      engine = startEngineProcess(nats.server.url, { XREF_CHECKPOINT_EVERY: '500' });
      await waitFor(`the forget of ${person} done after the restart`, async () => (await forgetRecord(nc, request))?.status === 'erased', 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; engine output: ${engine.output().slice(-3000)}`);
      });
      const record = (await forgetRecord(nc, request))!;
      for (const [store, { remaining }] of Object.entries(record.receipt!)) expect(remaining, store).toBe(0);
    }
    const last = (await jsm.streams.info('XREF_IN')).state.last_seq;
    await waitFor('the engine past the last forget', async () => (await new ControlStore(nc).all('forget')).every((r) => r.status === 'erased') && (await engineAt(nc)) >= last, 60_000);
    engine.kill('SIGTERM');
    expect(await exited(engine), engine.output()).toBe(0);

    expect(midway, 'kills while a forget was still erasing').toBeGreaterThan(0);
    const audit = await readStream<{ reason: string }>(nc, 'XREF_AUDIT');
    const forgets = audit.filter((a) => a.data.reason === 'forget').map((a) => a.msgId);
    expect(forgets).toHaveLength(trials);
    expect(new Set(audit.map((a) => a.msgId)).size).toBe(audit.length);
    expect(await tracesOf(nc, people)).toEqual([]);
    const groups = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nc, 'XREF_GROUPS');
    expect(new Set(groups.map((m) => m.msgId)).size).toBe(groups.length);
    expect(groupsFromMessages(groups)).toEqual(sortLists(idsOf(groupEvents(background).groups)));
  }, 240_000);
});

/** The input the engine's checkpoint is at. */
async function engineAt(nc: NatsConnection): Promise<number> {
  return (await new NatsStateStore(nc, jetstream(nc), new JetStreamPublisher(nc, silent), silent).loadImage()).seq;
}
