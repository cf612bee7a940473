/**
 * The collector on a real nats-server: the EventSink contract against JetStreamSink, readiness,
 * and the durability promise through an outage (503 with Retry-After while NATS is down, never a
 * 2xx; the client's retry afterwards is stored once).
 */
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { ErrorRecord } from '../../src/domain/error-record.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { type XrefApp, buildApp } from '../../src/http/app.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { logger } from '../../src/log.ts';
import { JetStreamSink } from '../../src/nats/jetstream-sink.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { natsReadiness } from '../../src/nats/readiness.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { AUTH, WRITE_KEY } from '../helpers/http.ts';
import { type NatsServerHandle, startNatsServer } from '../helpers/nats-server.ts';
import { sinkContract } from '../helpers/sink-contract.ts';
import { readStream, waitFor } from '../helpers/streams.ts';

let server: NatsServerHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  jsm = await jetstreamManager(nc);
  await ensureTopology(nc, jsm, logger.child({ component: 'test-topology' }));
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

sinkContract('JetStreamSink on nats-server', async () => {
  const publisher = new JetStreamPublisher(nc, logger.child({ component: 'test-publisher' }));
  return {
    sink: new JetStreamSink(publisher),
    stored: async () => (await readStream<XrefEvent>(nc, 'XREF_IN')).map((m) => m.data),
    recorded: async () => (await readStream<ErrorRecord>(nc, 'XREF_ERRORS')).map((m) => m.data),
    close: () => publisher.close(),
  };
});

describe('collector through a NATS outage', () => {
  let app: XrefApp;
  let publisher: JetStreamPublisher;

  beforeAll(() => {
    publisher = new JetStreamPublisher(nc, logger.child({ component: 'test-publisher' }), 1000);
    app = buildApp({
      publisher: new JetStreamSink(publisher),
      writeKeys: new Set([WRITE_KEY]),
      limits: defaultLimits(),
      logger: logger.child({ component: 'test-http' }),
      readiness: natsReadiness({ nc, jsm, engine: { role: 'active', engine: { lag: async () => 0, waits: { current: [] } } } }),
      metrics: createMetrics({ processMetrics: false }),
      publishDeadlineMs: 400,
    });
  });
  afterAll(async () => {
    await app?.close();
    await publisher?.close();
  });

  const batch = { batch: [1, 2, 3].map((i) => ({ type: 'track', messageId: `outage-${i}`, event: 'During Outage', anonymousId: 'a-outage' })) };
  const send = () => app.inject({ method: 'POST', url: '/v1/batch', headers: AUTH, payload: batch });

  it('ready with NATS up; 503 with Retry-After and not ready while it is down; stored once after', async () => {
    const ready = await app.inject({ url: '/readyz' });
    expect(ready.json()).toEqual({ ready: true, checks: { nats: true, 'stream XREF_IN': true, engine: true }, engine: 'active' });

    await server.kill('SIGKILL');
    const started = Date.now();
    const down = await send();
    expect(down.statusCode, down.body).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(down.headers['retry-after']).toBe('1');
    expect(down.json()).toMatchObject({ code: 'XREF_NATS_UNAVAILABLE', error: expect.stringMatching(/did not confirm all 3 events within 400 ms/) });
    await waitFor('readyz to say NATS is down', async () => (await app.inject({ url: '/readyz' })).statusCode === 503, 10_000);
    expect((await app.inject({ url: '/readyz' })).json().checks.nats).not.toBe(true);

    await server.restart();
    await waitFor('readyz to recover', async () => (await app.inject({ url: '/readyz' })).statusCode === 200, 20_000);
    // the client retries until a 2xx (the publisher may still be storing its own retries)
    let response = await send();
    await waitFor('a 2xx for the retried batch', async () => {
      if (response.statusCode === 200) return true;
      response = await send();
      return response.statusCode === 200;
    }, 20_000);
    expect(response.json()).toMatchObject({ success: true, rejected: [] });
    expect(response.json().accepted + response.json().duplicates).toBe(3);

    const stored = (await readStream<XrefEvent>(nc, 'XREF_IN')).filter((m) => m.data.id.startsWith('outage-'));
    expect(stored.map((m) => m.msgId).sort()).toEqual(['outage-1', 'outage-2', 'outage-3']);
  });
});
