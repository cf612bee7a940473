/**
 * The HTTP collector as `xref serve` runs it, on a private nats-server: topology ensured, the real
 * JetStream sink, listening on 127.0.0.1 on a random port; and the streaming engine on demand.
 *
 *   let collector: Collector;
 *   beforeAll(async () => (collector = await startCollector({ writeKey: 'wk_…' })));
 *   afterAll(() => collector?.close());
 *   … fetch(`${collector.url}/readyz`), readStream(collector.nc, 'XREF_IN') …
 *   await collector.runEngine(inputs.length); … readStream(collector.nc, 'XREF_GROUPS') …
 */
import type { AddressInfo } from 'node:net';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { resolveConfig } from '../../src/domain/config.ts';
import { loadSettings } from '../../src/settings.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { type AppDeps, type XrefApp, buildApp } from '../../src/http/app.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { logger } from '../../src/log.ts';
import { JetStreamSink } from '../../src/nats/jetstream-sink.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { natsReadiness } from '../../src/nats/readiness.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { type NatsServerHandle, startNatsServer } from './nats-server.ts';
import { waitFor } from './streams.ts';

export interface CollectorOptions {
  /** The one accepted write key (default `wk_test_collector`). */
  readonly writeKey?: string;
  /** More (or other) `buildApp` deps, e.g. `publicUrl`. */
  readonly deps?: Partial<AppDeps>;
  /** Called for every answered request (a Fastify onResponse hook), e.g. to record what was seen. */
  readonly onResponse?: (request: FastifyRequest, reply: FastifyReply) => void;
}

export interface Collector {
  readonly server: NatsServerHandle;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly publisher: JetStreamPublisher;
  readonly app: XrefApp;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /**
   * Runs the streaming engine in this process on the server (internal kind: user_id) until it has
   * applied `inputs` inputs, then stops it.
   */
  runEngine(inputs: number): Promise<void>;
  /** Closes the app, the publisher, the connection, then stops the server. */
  close(): Promise<void>;
}

export async function startCollector(options: CollectorOptions = {}): Promise<Collector> {
  const server = await startNatsServer();
  let nc: NatsConnection | undefined;
  let publisher: JetStreamPublisher | undefined;
  let app: XrefApp | undefined;
  const close = async () => {
    await app?.close();
    await publisher?.close();
    await nc?.close();
    await server.stop();
  };
  try {
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await ensureTopology(nc, jsm, logger.child({ component: 'test-topology' }));
    publisher = new JetStreamPublisher(nc, logger.child({ component: 'test-publisher' }));
    app = buildApp({
      publisher: new JetStreamSink(publisher),
      writeKeys: new Set([options.writeKey ?? 'wk_test_collector']),
      limits: defaultLimits(),
      logger: logger.child({ component: 'test-http' }),
      readiness: natsReadiness({ nc, jsm }),
      metrics: createMetrics({ processMetrics: false }),
      publishDeadlineMs: 5000,
      ...options.deps,
    });
    const { onResponse } = options;
    if (onResponse) {
      app.addHook('onResponse', async (request, reply) => {
        onResponse(request, reply);
      });
    }
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const connection = nc;
    const runEngine = async (inputs: number) => {
      const service = await EngineService.start({
        nc: connection,
        config: resolveConfig({ internal: ['user_id'] }),
        settings: loadSettings({ NATS_URL: server.url }),
        logger: logger.child({ component: 'test-engine' }),
      });
      try {
        await waitFor('the engine to apply every input', () => service.seq >= inputs, 30_000);
      } finally {
        await service.stop();
      }
    };
    return { server, nc, jsm, publisher, app, url, runEngine, close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
