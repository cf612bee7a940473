import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webLog } from '../helpers/web-log.ts';
import { replayCommand } from '../../src/cli/replay-command.ts';
import { Lease, thisProcess } from '../../src/nats/lease.ts';
import { ENGINE_CONSUMER } from '../../src/service/engine-service.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import { loadSettings } from '../../src/settings.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsStateStore } from '../../src/nats/state-store.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { compareStates } from '../../src/service/replay.ts';
import { type NatsServerHandle, startNatsServer } from '../helpers/nats-server.ts';
import { groupsFromMessages, publishEvents, readStream, waitFor } from '../helpers/streams.ts';

const CONFIG = { buffer: { maxEvents: 5, ttlMs: 3 * 24 * 3600 * 1000 }, maxIdsPerUser: { device_id: 2 } };

function captureIo() {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: (s: string) => ((err += s), true) } } as never,
    out: () => out,
    err: () => err,
  };
}

describe('xref replay', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let log: XrefEvent[];
  let configFile: string;
  const target = () => ({ natsUrl: server.url, dataDir: mkdtempSync(join(tmpdir(), 'xref-replay-')), configFile });
  const liveImage = () => new NatsStateStore(nc, jetstream(nc), new JetStreamPublisher(nc, logger), logger).loadImage();

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    const dir = mkdtempSync(join(tmpdir(), 'xref-config-'));
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(CONFIG));
    // timed events, a few without a timestamp (they take the publish time), and one input that is no event
    log = webLog({ events: 8_000, identifiers: 1_500, seed: 5 }).map((e, i) => (i % 500 === 0 ? { id: e.id, ids: e.ids } : e));
    await publishEvents(nc, log);
    nc.publish('xref.in.test', 'this is not JSON');
    await nc.flush();
    const settings = loadSettings({ NATS_URL: server.url, XREF_CHECKPOINT_EVERY: '700', XREF_PASSIVATE_AFTER_MS: '0' });
    const service = await EngineService.start({ nc, config: resolveConfig(CONFIG), settings, logger: logger.child({ component: 'test-engine' }) });
    await waitFor('the engine to apply the whole log', () => service.seq >= log.length + 1);
    await service.stop();
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('--verify: a replay from scratch reproduces the live identity graph and snapshots (actors passivated to KV on the way)', async () => {
    const { io, out } = captureIo();
    expect(await replayCommand({ verify: true }, io, target())).toBe(0);
    expect(out()).toMatch(/replayed 8,000 events \(1 rejected inputs\)/);
    expect(out()).toMatch(/verify: the rebuilt state equals the live state at input 8,001/);
  });

  it('--verify reports the differences when the rules changed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-config-'));
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify({ ...CONFIG, buffer: { maxEvents: 1 } }));
    const { io, out } = captureIo();
    expect(await replayCommand({ verify: true, config: other }, io, target())).toBe(1);
    expect(out()).toMatch(/verify: \d+ differences/);
  });

  it('a rebuild replaces the live state with an equal one, and --republish refills the output streams exactly once', async () => {
    type Group = Parameters<typeof groupsFromMessages>[0][number]['data'];
    const before = await liveImage();
    const live = await readStream<Group>(nc, 'XREF_GROUPS');
    const { io } = captureIo();
    expect(await replayCommand({ republish: true }, io, target())).toBe(0);
    expect(compareStates(before, await liveImage())).toEqual([]);
    const groups = await readStream<Group>(nc, 'XREF_GROUPS');
    expect(new Set(groups.map((m) => m.msgId)).size).toBe(groups.length);
    expect(groupsFromMessages(groups)).toEqual(groupsFromMessages(live));
    expect(groups.length).toBeGreaterThan(log.length / 2);
    // the input that is no event: one error record, the live engine's, which the replay made again with the same id
    const errors = await readStream<{ reason: string; origin: string; seq: number }>(nc, 'XREF_ERRORS');
    expect(errors.map((m) => [m.subject, m.msgId, m.data.reason, m.data.origin])).toEqual([['xref.errors.invalid_json', `in-${log.length + 1}:rejected`, 'invalid_json', 'engine']]);
  });

  it('a rebuild refuses while an engine holds the engine lease, naming the holder, and changes nothing', async () => {
    const holder = new Lease(nc, ENGINE_CONSUMER, thisProcess(), 600, logger);
    expect((await holder.tryAcquire()).acquired).toBe(true);
    const before = await liveImage();
    const { io } = captureIo();
    await expect(replayCommand({}, io, { ...target(), leaseTtlMs: 600 })).rejects.toThrow(/the engine lease is held by .+ pid \d+ .*stop `xref serve`/);
    expect(compareStates(before, await liveImage())).toEqual([]);
    await holder.release();
  });
});
