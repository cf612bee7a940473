import { readFileSync } from 'node:fs';
import { AckPolicy, DeliverPolicy, type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { defaultConfig } from '../src/domain/config.ts';
import { loadSettings } from '../src/settings.ts';
import type { XrefEvent } from '../src/domain/envelope.ts';
import { logger } from '../src/log.ts';
import { readLog } from '../src/nats/log-reader.ts';
import { JetStreamPublisher } from '../src/nats/publisher.ts';
import { STREAMS, subjects } from '../src/nats/subjects.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { ENGINE_CONSUMER, isEngineConsumer, EngineService } from '../src/service/engine-service.ts';
import { replayLog } from '../src/service/replay.ts';
import { ackFloor, exited, startEngineProcess } from '../test/helpers/engine-process.ts';
import { type NatsServerHandle, startNatsServer } from '../test/helpers/nats-server.ts';
import { webLog } from '../test/helpers/web-log.ts';

const log = logger.child({ component: 'bench' });
const decoder = new TextDecoder();
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function until(check: () => boolean | Promise<boolean>, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('bench step timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Publishes events pipelined (bounded in flight); returns events/s. */
export async function publishAll(nc: NatsConnection, events: readonly XrefEvent[], subject = subjects.in('bench')): Promise<number> {
  const publisher = new JetStreamPublisher(nc, log);
  const start = now();
  for (const event of events) {
    void publisher.publish(subject, JSON.stringify(event), event.id);
    if (publisher.pending >= 5000) await publisher.flushed();
  }
  await publisher.flushed();
  await publisher.close();
  return events.length / ((now() - start) / 1000);
}

/**
 * (a) The raw ceiling: consume, parse, republish one message, ack once it is stored; nothing
 * else. `stock`: the client's own `js.publish` (many in flight); `inbox`: plain publishes with
 * replies on one shared inbox, the technique xref's publisher uses.
 */
async function passThrough(nc: NatsConnection, count: number, mode: 'stock' | 'inbox'): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: 'BENCH_OUT', subjects: ['bench.out.>'] });
  const durable = `bench-${mode}`;
  await jsm.consumers.add(STREAMS.in, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 20_000 });
  const consumer = await js.consumers.get(STREAMS.in, durable);
  const publisher = new JetStreamPublisher(nc, log);
  const republish = (subject: string, data: string, msgID: string) =>
    mode === 'stock' ? js.publish(subject, data, { msgID }) : publisher.publish(subject, data, msgID);
  let acked = 0;
  const start = now();
  const messages = await consumer.consume({
    max_messages: 2000,
    callback: (msg: JsMsg) => {
      const event = JSON.parse(decoder.decode(msg.data)) as XrefEvent;
      void republish(`bench.out.${mode}`, JSON.stringify({ event }), `${event.id}:${mode}`).then(() => {
        msg.ack();
        acked++;
      });
    },
  });
  await until(() => acked >= count);
  const rate = count / ((now() - start) / 1000);
  await messages.close();
  await publisher.close();
  await jsm.streams.delete('BENCH_OUT');
  return rate;
}

/** (b) xref end to end: from start to every input acked, i.e. every output stored. */
async function xrefEndToEnd(nc: NatsConnection, count: number): Promise<{ rate: number; service: EngineService }> {
  const settings = loadSettings({ NATS_URL: 'nats://unused', XREF_LOG_LEVEL: 'warn' });
  const start = now();
  const service = await EngineService.start({ nc, config: defaultConfig(), settings, logger: log });
  await engineThrough(service, await jetstreamManager(nc), count);
  return { rate: count / ((now() - start) / 1000), service };
}

/**
 * Resolves once `engine` has every input through `seq` acked (an input is acked once its outputs
 * are stored): first its own count of inputs applied, free to look at, then the consumer's ack
 * floor, asked of the server only for that tail so that the asking does not load the run timed.
 */
export async function engineThrough(engine: EngineService, jsm: JetStreamManager, seq: number): Promise<void> {
  await until(() => engine.seq >= seq);
  await until(async () => (await ackFloor(jsm)) >= seq);
}

/** (c) Replay vs reading the log with JSON.parse and nothing else. */
async function replayVsRead(nc: NatsConnection, natsUrl: string, count: number): Promise<{ replay: number; read: number }> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  let start = now();
  let parsed = 0;
  await readLog(js, jsm, 1, count, (msg) => {
    JSON.parse(decoder.decode(msg.data));
    parsed++;
  });
  const read = parsed / ((now() - start) / 1000);
  start = now();
  const result = await replayLog({ nc, natsUrl, config: defaultConfig(), logger: log, toSeq: count });
  return { replay: result.events / ((now() - start) / 1000), read };
}

interface Percentiles {
  p50: number;
  p99: number;
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
  return { p50: pct(50), p99: pct(99) };
}

/**
 * (d) Link → flush latency under load: at `rate` events/s of background traffic, probes send an
 * anonymous event for a fresh cookie, then its link. Two measures of each probe:
 * - stored: from the link stored in XREF_IN to the flushed anonymous event stored in XREF_GROUPS,
 *   both stamped by the server's clock: what xref itself adds;
 * - seen: from the load generator publishing the link to it receiving the flushed event, which
 *   also counts the generator's own delays (it shares this machine's two cores with the server
 *   and with xref).
 * `tag` prefixes every id and identifier, so that two runs share none.
 */
async function linkLatency(nc: NatsConnection, rate: number, seconds: number, stamp: string, tag: string): Promise<{ stored: Percentiles; seen: Percentiles; probes: number; achieved: number }> {
  const publisher = new JetStreamPublisher(nc, log);
  const jsm = await jetstreamManager(nc);
  const sent = new Map<string, number>();
  const seen: number[] = [];
  /** Probe anonymous event id → the XREF_IN sequence of its link. */
  const linkSeqs = new Map<string, Promise<number>>();
  // probes sign in with a kind of their own, so the bench reads only their users' subjects
  const sub = nc.subscribe('xref.groups.user_id.>', {
    callback: (_e, msg) => {
      const data = JSON.parse(decoder.decode(msg.data)) as { event: { id: string } };
      const at = sent.get(data.event.id);
      if (at !== undefined) {
        seen.push(now() - at);
        sent.delete(data.event.id);
      }
    },
  });
  // the same shape of traffic as the log (b) was measured on (ten events per identifier), so that
  // this is half of that load; everything at the log's latest event time: nothing expires, the
  // watermark stays put; encoded before the clock starts, so the generator takes as little as it
  // can of the shared cores
  const events = Math.ceil(rate * seconds);
  const background = webLog({ events, identifiers: Math.ceil(events / 10), seed: 99 }).map((event) => {
    // identifiers of its own: this measures the live path, not actors coming back from KV
    const ids = Object.fromEntries(Object.entries(event.ids).map(([kind, value]) => [kind, `${tag}-${value}`]));
    return { id: `${tag}-${event.id}`, data: Buffer.from(JSON.stringify({ ...event, ids, id: `${tag}-${event.id}`, timestamp: stamp })) };
  });
  const start = now();
  let i = 0;
  let probe = 0;
  while (now() - start < seconds * 1000) {
    const due = Math.floor(((now() - start) / 1000) * rate);
    for (; i < due && i < background.length; i++) {
      void publisher.publish(subjects.in('bench'), background[i]!.data, background[i]!.id);
      if (i % 50 === 0) {
        probe++;
        const anon = { id: `${tag}-probe-${probe}-a`, timestamp: stamp, ids: { cookie: `${tag}-probe-cookie-${probe}` } };
        const link = { id: `${tag}-probe-${probe}-l`, timestamp: stamp, ids: { user_id: `${tag}-probe-${probe}`, cookie: `${tag}-probe-cookie-${probe}` } };
        void publisher.publish(subjects.in('bench'), JSON.stringify(anon), anon.id);
        linkSeqs.set(anon.id, publisher.publish(subjects.in('bench'), JSON.stringify(link), link.id).then((ack) => ack.seq));
        sent.set(anon.id, now());
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const achieved = i / ((now() - start) / 1000);
  await until(() => sent.size === 0, 30_000).catch(() => undefined);
  sub.unsubscribe();
  await publisher.close();

  // server-side stamps: the flushed events in XREF_GROUPS, and each link's in XREF_IN
  const storedAt = (nanos: bigint) => Number(nanos / 1000n) / 1000;
  const flushedAt = new Map<string, number>();
  await readStoredMessages(nc, STREAMS.groups, 'xref.groups.user_id.>', (msg) => {
    const id = (JSON.parse(decoder.decode(msg.data)) as { event: { id: string } }).event.id;
    flushedAt.set(id, storedAt(msg.timestampNanos));
  });
  const stored: number[] = [];
  for (const [anonId, seqPromise] of linkSeqs) {
    const flushed = flushedAt.get(anonId);
    const link = await jsm.streams.getMessage(STREAMS.in, { seq: await seqPromise });
    if (flushed !== undefined && link !== null) stored.push(flushed - Date.parse(link.timestamp));
  }
  return { stored: percentiles(stored), seen: percentiles(seen), probes: stored.length, achieved };
}

/** Every message of `stream` on `filter`, from the start, in order. */
async function readStoredMessages(nc: NatsConnection, stream: string, filter: string, onMessage: (msg: JsMsg) => void): Promise<void> {
  const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  if ((await consumer.info(true)).num_pending === 0) return;
  for await (const msg of (await consumer.consume({ max_messages: 1000 })) as AsyncIterable<JsMsg>) {
    onMessage(msg);
    if (msg.info.pending === 0) break;
  }
}

export interface StreamingBenchResult {
  events: number;
  publishRate: number;
  stock: number;
  inbox: number;
  xref: number;
  replay: number;
  read: number;
  latency: { stored: Percentiles; seen: Percentiles; probes: number; rate: number; achieved: number };
  rssMb: number;
  identifiers: number;
}

/** Everything on one nats-server of our own, side by side on the same events. */
export async function benchStreaming(events = 200_000): Promise<StreamingBenchResult> {
  let server: NatsServerHandle | undefined = await startNatsServer();
  try {
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const data = webLog({ events, identifiers: events / 10, seed: 3 });
    const publishRate = await publishAll(nc, data);
    const stock = await passThrough(nc, events, 'stock');
    const inbox = await passThrough(nc, events, 'inbox');
    const { rate: xref, service } = await xrefEndToEnd(nc, events);
    await service.stop();
    const { replay, read } = await replayVsRead(nc, server.url, events);

    // (d) and (e) run against `xref serve` in its own process, as producers would see it
    const jsm = await jetstreamManager(nc);
    // the child recreates the engine's consumer: drop the old one, so "caught up" means the child's
    await jsm.consumers.delete(STREAMS.in, ENGINE_CONSUMER);
    const child = startEngineProcess(server.url);
    // caught up: the child's consumer exists, has nothing left to deliver and nothing unacked
    const caughtUp = async () =>
      until(async () => {
        if (child.exitCode !== null) throw new Error(`xref serve exited (${child.exitCode}): ${child.output().slice(-2000)}`);
        // the child runs under the engine lease: its consumer is `xref-engine-<epoch>`
        const info = (await jsm.consumers.list(STREAMS.in).next()).find((c) => isEngineConsumer(c.name));
        return info !== undefined && info.num_pending === 0 && info.num_ack_pending === 0;
      }, 600_000);
    await caughtUp();
    const target = xref / 2;
    const stamp = data[data.length - 1]!.timestamp!;
    // the child resumed from (b)'s checkpoint and has applied nothing yet: warm it up at the same
    // load first, so that this measures the steady state, not the JIT compiler's first seconds
    await linkLatency(nc, target, 3, stamp, 'warm');
    await caughtUp();
    const latency = await linkLatency(nc, target, 10, stamp, 'lat');
    await caughtUp();

    // (e) RSS after 1M more distinct identifiers: 250k events linking 4 new third-party ids each
    const linking: XrefEvent[] = [];
    for (let i = 0; i < 250_000; i++) {
      linking.push({ id: `m${i}`, timestamp: data[data.length - 1]!.timestamp!, ids: { db_id: `1${i % 100_000}`, cookie: `mc${i}`, device_id: `md${i}`, anonymous_id: `ma${i}`, partner_id: `mp${i}` } });
    }
    await publishAll(nc, linking);
    await caughtUp();
    const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;
    child.kill('SIGTERM');
    await exited(child);
    const identifiers = 1_000_000;
    await nc.close();
    return { events, publishRate, stock, inbox, xref, replay, read, latency: { ...latency, rate: target }, rssMb, identifiers };
  } finally {
    await server?.stop();
    server = undefined;
  }
}
