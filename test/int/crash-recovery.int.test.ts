import { jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { webLog } from '../helpers/web-log.ts';
import { defaultConfig } from '../../src/domain/config.ts';
import { loadSettings } from '../../src/settings.ts';
import { groupEvents } from '../../src/group.ts';
import { logger } from '../../src/log.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { ackFloor, exited, startEngineProcess } from '../helpers/engine-process.ts';
import { idsOf } from '../helpers/events.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { groupsFromMessages, publishEvents, readStream, sortLists, waitFor } from '../helpers/streams.ts';

type GroupMessage = Parameters<typeof groupsFromMessages>[0][number]['data'];

/** Every output stream holds each output id once, and XREF_GROUPS equals the offline grouping. */
async function expectExactlyOnce(nc: NatsConnection, log: ReturnType<typeof webLog>) {
  for (const stream of ['XREF_GROUPS', 'XREF_UNMATCHED', 'XREF_AUDIT']) {
    const ids = (await readStream(nc, stream)).map((m) => m.msgId);
    expect(new Set(ids).size, `${stream} holds a duplicate`).toBe(ids.length);
  }
  const groups = await readStream<GroupMessage>(nc, 'XREF_GROUPS');
  expect(groupsFromMessages(groups)).toEqual(sortLists(idsOf(groupEvents(log).groups)));
}

describe('recovery', () => {
  const nats = useNatsServer('each');

  const trials = Number(process.env.XREF_KILL_TRIALS ?? 5);
  it(`kill -9 of the engine at ${trials} random points, then restart: nothing lost, nothing twice`, async () => {
    const log = webLog({ events: 20_000, identifiers: 3_000, seed: 11 });
    await publishEvents(nats.nc, log);
    const jsm = await jetstreamManager(nats.nc);
    let killed = 0;
    for (let trial = 1; trial <= trials; trial++) {
      const target = Math.floor((log.length * (trial + Math.random() * 0.8)) / (trials + 1));
      const engine = startEngineProcess(nats.server.url, { XREF_CHECKPOINT_EVERY: String(300 + Math.floor(Math.random() * 3000)) });
      await waitFor(`trial ${trial}: the engine to pass input ${target}`, async () => (await ackFloor(jsm)) >= target || engine.exitCode !== null, 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; engine output: ${engine.output().slice(-3000)}`);
      });
      expect(engine.exitCode, engine.output()).toBeNull();
      engine.kill('SIGKILL');
      await exited(engine);
      killed++;
    }
    const lastStarted = new Date();
    const last = startEngineProcess(nats.server.url);
    // the killed engine may have finished the log already: wait for this one's own consumer
    await waitFor('the engine to finish the log', async () => (await ackFloor(jsm, lastStarted)) >= log.length, 60_000);
    last.kill('SIGTERM');
    expect(await exited(last), last.output()).toBe(0);
    expect(killed).toBe(trials);
    await expectExactlyOnce(nats.nc, log);
  }, 300_000);

  it('nats-server killed and restarted mid-run: the engine reconnects and finishes with the same result', async () => {
    const log = webLog({ events: 20_000, identifiers: 3_000, seed: 12 });
    await publishEvents(nats.nc, log);
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '2000' });
    const engineNc = await connect({ servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const service = await EngineService.start({ nc: engineNc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    await waitFor('a third of the log', () => service.seq >= log.length / 3);
    await nats.server.restart();
    await waitFor('the engine to finish the log after the restart', () => service.seq >= log.length, 60_000);
    await service.stop();
    expect(service.error).toBeUndefined();
    await engineNc.close();
    await nats.nc.close();
    nats.nc = await connect({ servers: nats.server.url });
    await expectExactlyOnce(nats.nc, log);
  }, 120_000);

  it('SIGTERM with the NATS server gone for good still ends the engine, after the shutdown deadline, exit 1', async () => {
    const engine = startEngineProcess(nats.server.url, { XREF_SHUTDOWN_MS: '1500', XREF_LOG_LEVEL: 'info' });
    await waitFor('the engine to run', () => engine.output().includes('xref is running') || engine.exitCode !== null);
    await nats.server.kill('SIGKILL');
    engine.kill('SIGTERM');
    expect(await exited(engine)).toBe(1);
    expect(engine.output()).toMatch(/shutdown did not finish: exiting without a final checkpoint/);
  });
});
