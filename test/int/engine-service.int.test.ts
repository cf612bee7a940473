import { type NatsConnection, connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webLog } from '../../bench/data.ts';
import { defaultConfig, serviceSettings } from '../../src/domain/config.ts';
import { groupEvents } from '../../src/group.ts';
import { logger } from '../../src/log.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { idsOf } from '../helpers/events.ts';
import { type NatsServerHandle, startNatsServer } from '../helpers/nats-server.ts';
import { groupsFromMessages, publishEvents, readStream, sortLists, waitFor } from '../helpers/streams.ts';

describe('streaming engine on JetStream', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('publishes to XREF_GROUPS exactly what groupEvents() gives on the same log', async () => {
    const log = webLog({ events: 20_000, identifiers: 3_000, seed: 7 });
    const settings = serviceSettings({ NATS_URL: server.url, XREF_CHECKPOINT_EVERY: '3000' });
    const service = await EngineService.start({ nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    await publishEvents(nc, log);
    await waitFor('the engine to apply the whole log', () => service.seq >= log.length);
    await service.stop();

    const messages = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nc, 'XREF_GROUPS');
    const ids = messages.map((m) => m.msgId);
    expect(new Set(ids).size).toBe(ids.length); // each output exactly once
    expect(groupsFromMessages(messages)).toEqual(sortLists(idsOf(groupEvents(log).groups)));
    expect(service.stats.checkpoints).toBeGreaterThan(1);
  });
});
