import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { requestForget } from '../src/control/requests.ts';
import { resolveConfig } from '../src/domain/config.ts';
import type { XrefEvent } from '../src/domain/envelope.ts';
import { logger } from '../src/log.ts';
import { ControlStore } from '../src/nats/control-store.ts';
import { readLog } from '../src/nats/log-reader.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { EngineService } from '../src/service/engine-service.ts';
import { replayLog } from '../src/service/replay.ts';
import { loadSettings } from '../src/settings.ts';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { webLog } from '../test/helpers/web-log.ts';
import { publishAll } from './streaming.bench.ts';

const log = logger.child({ component: 'bench' });
const now = () => performance.now();
const PERSON = 'u-bench-forget';

export interface ForgetBenchResult {
  events: number;
  personEvents: number;
  /** The engine's rate over the whole log, for scale. */
  engineRate: number;
  /** From the request to the receipt saying the engine's part is done (streams and buckets erased, checked). */
  forgetSeconds: number;
  receipt: Record<string, { erased: number; remaining: number }>;
  /** After the forget: inputs of the log that still name the person, and the links a replay from scratch rebuilds for them. */
  leftInLog: number;
  replayedLinks: number;
  replaySeconds: number;
}

/**
 * Forgetting one person with `personEvents` events (through 20 cookies and a device) in a log of
 * `events`: the time from the request to the receipt, on a log the engine has applied; then
 * whether the log and a replay from scratch still hold anything of them.
 */
export async function benchForget(events = 1_000_000, personEvents = 10_000): Promise<ForgetBenchResult> {
  const server = await startNatsServer();
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  try {
    const config = resolveConfig({});
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const others = webLog({ events: events - personEvents, identifiers: events / 10, seed: 9 });
    const every = Math.floor(others.length / personEvents);
    const all: XrefEvent[] = [];
    let mine = 0;
    others.forEach((event, i) => {
      all.push(event);
      if (i % every !== 0 || mine >= personEvents) return;
      const cookie = `ck-${PERSON}-${mine % 20}`;
      all.push({ id: `${PERSON}-${mine}`, timestamp: event.timestamp!, ids: mine < 40 ? { user_id: PERSON, cookie, ...(mine === 0 ? { device: `dv-${PERSON}` } : {}) } : { cookie } } as XrefEvent);
      mine++;
    });
    await publishAll(nc, all);
    const settings = loadSettings({ NATS_URL: server.url });
    const started = now();
    const engine = await EngineService.start({ nc, config, settings, logger: log });
    while (engine.seq < all.length) await new Promise((resolve) => setTimeout(resolve, 20));
    const engineRate = all.length / ((now() - started) / 1000);

    const control = new ControlStore(nc);
    const asked = now();
    const { request } = await requestForget(nc, { kind: 'user_id', id: PERSON, by: 'bench' });
    for (;;) {
      const record = await control.get('forget', request);
      if (record?.status === 'erased') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const forgetSeconds = (now() - asked) / 1000;
    const record = (await control.get('forget', request))!;
    await engine.stop();

    let leftInLog = 0;
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await readLog(js, jsm, 1, Number.MAX_SAFE_INTEGER, (msg) => {
      if (msg.string().includes(PERSON)) leftInLog++;
    });
    const replayStarted = now();
    const replay = await replayLog({ nc, natsUrl: server.url, config, logger: log });
    const replaySeconds = (now() - replayStarted) / 1000;
    const replayedLinks = [...replay.image.links.keys()].filter((key) => key.includes(PERSON)).length;
    return { events: all.length, personEvents: mine, engineRate, forgetSeconds, receipt: { ...record.receipt } as ForgetBenchResult['receipt'], leftInLog, replayedLinks, replaySeconds };
  } finally {
    await nc.close();
    await server.stop();
  }
}
