import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsWaits } from '../../src/nats/retry.ts';
import { NatsStateStore } from '../../src/nats/state-store.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { startNatsServer, useNatsServer } from '../helpers/nats-server.ts';
import { buffering, checkpointAt, stateStoreContract } from '../helpers/state-store-contract.ts';
import { waitFor } from '../helpers/streams.ts';

const log = logger.child({ component: 'test-state' });

/** A store as one engine process has it: its own publisher (closed by `close`). */
function natsStore(nc: NatsConnection, publishers: JetStreamPublisher[], retry?: ConstructorParameters<typeof NatsStateStore>[4]) {
  const publisher = new JetStreamPublisher(nc, log);
  publishers.push(publisher);
  return new NatsStateStore(nc, jetstream(nc), publisher, log, retry);
}

stateStoreContract('JetStream KV', async () => {
  const server = await startNatsServer();
  const nc = await connect({ servers: server.url });
  await ensureTopology(nc, await jetstreamManager(nc), log);
  const kvm = new Kvm(nc);
  const publishers: JetStreamPublisher[] = [];
  return {
    open: async () => natsStore(nc, publishers),
    stored: async (bucket, key) => {
      const entry = await (await kvm.open(bucket)).get(key);
      return entry?.operation === 'PUT' ? (entry.json() as { at: number; e?: number }) : undefined;
    },
    close: async () => {
      for (const publisher of publishers) await publisher.close();
      await nc.close();
      await server.stop();
    },
  };
});

describe('the engine state in KV while the server is down', () => {
  const nats = useNatsServer('each');

  it('a checkpoint written and a passivated actor read while the server is down wait for it and complete once it is back', async () => {
    const nc = await connect({ servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const publishers: JetStreamPublisher[] = [];
    const waits = new NatsWaits(nc);
    const store = natsStore(nc, publishers, { logger: log, waits });
    const x = buffering('cookie:x', ['cookie:x'], null);
    await store.write(checkpointAt(5, { identifiers: [['cookie:x', x]] }));
    await store.load();

    await nats.server.kill('SIGKILL');
    const y = buffering('cookie:y', ['cookie:y', 'device_id:y'], 60_000);
    let written = false;
    const writing = store.write(checkpointAt(9, { links: { 'cookie:y': 'db_id:u1' }, identifiers: [['cookie:y', y]] })).then(() => (written = true));
    const read = store.snapshot('i', 'cookie:x');
    await waitFor('the read to wait for the server', () => waits.current.includes('loading passivated actors'), 20_000);
    expect(written).toBe(false);
    // the same port and store dir: what was stored before the outage is still there
    await nats.server.restart();
    expect(await read).toEqual(x);
    await writing;
    expect(waits.current).toEqual([]);

    const fresh = natsStore(nc, publishers);
    const state = await fresh.load();
    expect(state).toMatchObject({ seq: 9, watermark: 9000, identifierAddresses: ['cookie:x', 'cookie:y'] });
    expect(Object.fromEntries(state.links)).toEqual({ 'cookie:y': { user: 'db_id:u1', seq: 9 } });
    expect(await fresh.snapshot('i', 'cookie:y')).toEqual(y);
    for (const publisher of publishers) await publisher.close();
    await nc.close();
  });
});
