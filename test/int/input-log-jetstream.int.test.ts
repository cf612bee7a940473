import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { JetStreamInputLog } from '../../src/nats/jetstream-input-log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsWaits } from '../../src/nats/retry.ts';
import { FencedError } from '../../src/engine/state-store.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { type InputLogFixture, inputLogContract, readFrom } from '../helpers/input-log-contract.ts';
import { type NatsServerHandle, startNatsServer, useNatsServer } from '../helpers/nats-server.ts';

const log = logger.child({ component: 'test-input-log' });

/** A server of the test's own, XREF_IN on it, and the adapter on a connection that reconnects forever. */
async function jetStreamFixture(): Promise<InputLogFixture> {
  const server: NatsServerHandle = await startNatsServer();
  const nc: NatsConnection = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(nc, jsm, log);
  const publisher = new JetStreamPublisher(nc, log);
  let count = 0;
  return {
    log: new JetStreamInputLog({ js: jetstream(nc), jsm, logger: log, waits: new NatsWaits(nc) }),
    append: (messages) => Promise.all(messages.map((m) => publisher.publish(m.subject, m.data, `contract-${++count}`).then((ack) => ack.seq))),
    delete: async (seq) => void (await jsm.streams.deleteMessage(STREAMS.in, seq)),
    ackedThrough: async (consumer) => (await jsm.consumers.info(STREAMS.in, consumer).catch(() => undefined))?.ack_floor.stream_seq ?? 0,
    fail: () => server.restart(),
    close: async () => {
      await publisher.close();
      await nc.close();
      await server.stop();
    },
  };
}

inputLogContract('JetStream', jetStreamFixture);

describe('durable consumers on XREF_IN', () => {
  const nats = useNatsServer('each');
  const consumers = async () => {
    const jsm = await jetstreamManager(nats.nc);
    return (await jsm.consumers.list(STREAMS.in).next()).map((c) => c.name).sort();
  };
  const lease = (epoch: number, valid = true) => ({ epoch, valid: () => valid });

  it("a consumer's delivery deletes its own earlier durable consumers, never another consumer's", async () => {
    const jsm = await jetstreamManager(nats.nc);
    await ensureTopology(nats.nc, jsm, log);
    const input = new JetStreamInputLog({ js: jetstream(nats.nc), jsm, logger: log });
    const deliveries = [
      await readFrom(input, 'xref-engine', 1),
      await readFrom(input, 'xref-projection', 1),
      // named like one of the engine's, yet another consumer's
      await readFrom(input, 'xref-engine-audit', 1),
    ];
    const engine = await input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(5), delivered: () => {}, fenced: () => {}, failed: () => {} });
    expect(await consumers()).toEqual(['xref-engine-5', 'xref-engine-audit', 'xref-projection']);
    const projection = await readFrom(input, 'xref-projection', 1); // made again: the engine's stays
    expect(await consumers()).toEqual(['xref-engine-5', 'xref-engine-audit', 'xref-projection']);
    const next = await input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(6), delivered: () => {}, fenced: () => {}, failed: () => {} });
    expect(await consumers()).toEqual(['xref-engine-6', 'xref-engine-audit', 'xref-projection']);
    for (const delivery of [...deliveries.map((r) => r.delivery), engine, projection.delivery, next]) await delivery.close();
  });

  it('no delivery is made under a lease that is not valid, and nothing is deleted', async () => {
    const jsm = await jetstreamManager(nats.nc);
    await ensureTopology(nats.nc, jsm, log);
    const input = new JetStreamInputLog({ js: jetstream(nats.nc), jsm, logger: log });
    const held = await input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(3), delivered: () => {}, fenced: () => {}, failed: () => {} });
    await expect(input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(4, false), delivered: () => {}, fenced: () => {}, failed: () => {} })).rejects.toBeInstanceOf(
      FencedError,
    );
    expect(await consumers()).toEqual(['xref-engine-3']);
    await held.close();
  });
});
