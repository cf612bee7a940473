import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { JetStreamInputLog, consumersOf } from '../../src/nats/jetstream-input-log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsWaits } from '../../src/nats/retry.ts';
import { FencedError } from '../../src/engine/state-store.ts';
import { STREAMS, durableName } from '../../src/nats/subjects.ts';
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
    return (await consumersOf(jsm, STREAMS.in)).map((c) => c.name).sort();
  };
  const lease = (epoch: number, valid = true) => ({ epoch, valid: () => valid });

  it("a consumer's delivery deletes its own earlier durable consumers, never another consumer's", async () => {
    const jsm = await jetstreamManager(nats.nc);
    await ensureTopology(nats.nc, jsm, log);
    const input = new JetStreamInputLog({ js: jetstream(nats.nc), jsm, logger: log, waits: new NatsWaits(nats.nc) });
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
    const input = new JetStreamInputLog({ js: jetstream(nats.nc), jsm, logger: log, waits: new NatsWaits(nats.nc) });
    const held = await input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(3), delivered: () => {}, fenced: () => {}, failed: () => {} });
    await expect(input.deliver({ consumer: 'xref-engine', fromSeq: 1, lease: lease(4, false), delivered: () => {}, fenced: () => {}, failed: () => {} })).rejects.toBeInstanceOf(
      FencedError,
    );
    expect(await consumers()).toEqual(['xref-engine-3']);
    await held.close();
  });

  // a server killed may come back counting inputs as delivered that never reached the consumer:
  // here a second client takes them, while the consumer's connection is away, and acks none
  it('after a reconnect the consumer is made again where it was read: inputs the server counts as delivered elsewhere never hold it up', { timeout: 30_000 }, async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 2_000 });
    const jsm = await jetstreamManager(nc);
    await ensureTopology(nc, jsm, log);
    const input = new JetStreamInputLog({ js: jetstream(nc), jsm, logger: log, waits: new NatsWaits(nc), maxAckPending: 10 });
    const reader = await readFrom(input, 'xref-engine', 1);
    try {
      await server.kill();
      await server.restart();
      const other = await connect({ servers: server.url });
      const publisher = new JetStreamPublisher(other, log);
      for (let n = 1; n <= 30; n++) await publisher.publish(`xref.in.n${n}`, JSON.stringify({ n }), `held-${n}`);
      await publisher.close();
      const taken = await (await jetstream(other).consumers.get(STREAMS.in, durableName('xref-engine'))).fetch({ max_messages: 10, expires: 2_000 });
      let held = 0;
      for await (const _ of taken) held++;
      await other.close();
      // without the consumer made again, these 10 would hold every input until their ack wait (60 s) ran out
      expect(held).toBe(10);
      // read as a consumer does, acking as it goes (10 at a time at most are out)
      for (const last of [10, 20, 30]) {
        await reader.through(last, 10_000);
        reader.last().ack();
      }
      expect(reader.seqs()).toEqual(Array.from({ length: 30 }, (_, i) => String(i + 1)));
      expect(reader.problems).toEqual([]);
    } finally {
      await reader.delivery.close();
      await nc.close();
      await server.stop();
    }
  });

  it('inputs delivered before the consumer was made again, acked after, leave the new one alone', { timeout: 30_000 }, async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const jsm = await jetstreamManager(nc);
    await ensureTopology(nc, jsm, log);
    const publisher = new JetStreamPublisher(nc, log);
    for (let n = 1; n <= 60; n++) await publisher.publish(`xref.in.n${n}`, JSON.stringify({ n }), `stale-${n}`);
    await publisher.close();
    const input = new JetStreamInputLog({ js: jetstream(nc), jsm, logger: log, waits: new NatsWaits(nc), maxAckPending: 20 });
    const reader = await readFrom(input, 'xref-engine', 1);
    try {
      await reader.through(20, 10_000);
      const old = reader.last();
      await server.restart(); // the consumer is made again after the 20 queued
      await reader.through(40, 10_000);
      // the old consumer's 20th delivery acked to the new one would set its ack floor at its own
      // 20th delivery (input 40), and the ack of that would be ignored: nothing more would come
      old.ack();
      reader.last().ack();
      await reader.through(60, 10_000);
      expect(reader.seqs()).toEqual(Array.from({ length: 60 }, (_, i) => String(i + 1)));
      expect(reader.problems).toEqual([]);
    } finally {
      await reader.delivery.close();
      await nc.close();
      await server.stop();
    }
  });
});
