import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { resolveConfig } from '../domain/config.ts';
import { type Settings, loadSettings, natsHostPort, settingDefaults } from '../settings.ts';
import { XrefError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { assertNatsHostResolves, connectNats } from '../nats/connection.ts';
import { isListening, natsServerOnPath, startEmbeddedNatsServer } from '../nats/embedded-server.ts';
import { EngineRunner } from '../service/engine-runner.ts';
import { controlActions } from '../control/actions.ts';
import { type XrefApp, buildApp, markShuttingDown } from '../http/app.ts';
import { collectorSettings } from '../http/collector.ts';
import { createMetrics, setEngineGauges } from '../http/metrics.ts';
import { JetStreamSink } from '../nats/jetstream-sink.ts';
import { JetStreamPublisher } from '../nats/publisher.ts';
import { natsReadiness } from '../nats/readiness.ts';
import { ensureTopology } from '../nats/topology.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { openReadModel } from '../projection/open-store.ts';
import { Projection } from '../projection/projection.ts';
import { ReadModelQueries } from '../projection/queries.ts';
import type { ReadModelStore } from '../projection/read-model.ts';
import { inputDecoder } from '../service/input.ts';
import { loadConfigFile } from './group-command.ts';
import { takeStopSignals } from './stop-signals.ts';

/** How to get a NATS server, for the message when none is reachable. */
export function noNatsMessage(url: string): string {
  return [
    `no NATS server answers at ${url}.`,
    '  Start one with JetStream, then run this again:',
    '    nats-server -js                      # Debian/Ubuntu: apt-get install nats-server',
    '    docker compose up -d nats            # or with Docker, from this checkout',
    '  Or set NATS_URL to your server. Without any server, group a file offline:',
    '    npx xref group events.ndjson',
  ].join('\n');
}

export interface Running {
  nc: NatsConnection;
  stop(): Promise<void>;
}

/**
 * Connects to NATS_URL. When nothing listens there, the URL is the default and `nats-server` is on
 * PATH, starts one as a child with its store under <data dir>/nats, stopped again on exit.
 */
export async function connectOrEmbed(url: string, dataDir: string, name: string): Promise<Running> {
  const logger = componentLogger('nats');
  const { host, port } = natsHostPort(url);
  // a host that does not resolve is named as such, not taken for "no NATS server answers"
  await assertNatsHostResolves(url);
  let embedded: Awaited<ReturnType<typeof startEmbeddedNatsServer>> | undefined;
  if (!(await isListening(host, port))) {
    if (url !== settingDefaults().natsUrl || !natsServerOnPath()) throw new XrefError('XREF_NATS_UNAVAILABLE', noNatsMessage(url));
    logger.info({ storeDir: join(dataDir, 'nats'), port }, 'no NATS server running: starting an embedded nats-server');
    embedded = await startEmbeddedNatsServer({ storeDir: join(dataDir, 'nats'), port, host: '127.0.0.1', logger });
  }
  const nc = await connectNats(url, name, logger);
  return {
    nc,
    async stop() {
      await nc.drain().catch(() => undefined);
      await embedded?.stop();
    },
  };
}

export interface ServeOptions {
  /** Run the streaming engine (default true; `--no-engine`). */
  engine?: boolean;
  /** Run the HTTP collector (default true; `--no-http`). */
  http?: boolean;
  /** Run the read-model projection (default true; `--no-projection`): the query routes answer from the read model either way. */
  projection?: boolean;
  /** Accept requests without a write key when XREF_WRITE_KEYS is empty. */
  insecureNoAuth?: boolean;
}

/**
 * `xref serve`: the streaming engine, the read-model projection and the HTTP collector with the
 * query routes on PORT, until SIGTERM/SIGINT. Then: /readyz answers 503, the HTTP server stops
 * taking requests, the engine stops pulling, finishes what is in flight and writes a checkpoint,
 * the projection writes what it read, the read model closes, the connection drains, and the
 * process exits 0.
 */
export async function serveCommand(options: ServeOptions = {}, settings: Settings = loadSettings()): Promise<void> {
  const logger = componentLogger('serve');
  // a shutdown that cannot finish (NATS gone for good) must not hang: a second signal, or the
  // deadline, ends the process; the next start resumes from the last checkpoint
  const force = (why: string) => {
    logger.error({ why }, 'shutdown did not finish: exiting without a final checkpoint');
    process.exit(1);
  };
  let stopping = false;
  let stopped: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (stopped = resolve));
  const shutdown = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why, deadlineMs: settings.shutdownMs }, 'stopping: finishing in-flight work and writing a checkpoint');
    setTimeout(() => force(`no clean stop within ${settings.shutdownMs} ms`), settings.shutdownMs).unref();
    stopped();
  };
  // caught since the process began (bin/xref.js): a signal during start-up lets it finish starting, then stops cleanly
  takeStopSignals((signal) => (stopping ? force(`second ${signal}`) : shutdown(signal)));
  const config = resolveConfig(loadConfigFile(settings.configFile));
  const withEngine = options.engine !== false;
  const withHttp = options.http !== false;
  const withProjection = options.projection !== false;
  // checked before connecting: refuse to start without write keys unless told to
  const collector = withHttp ? collectorSettings(settings, { config, ...(options.insecureNoAuth ? { insecureNoAuth: true } : {}) }) : undefined;
  if (collector?.writeKeys === 'insecure-no-auth') logger.warn('the HTTP collector accepts requests without a write key (--insecure-no-auth)');
  const running = await connectOrEmbed(settings.natsUrl, settings.dataDir, 'xref');
  const jsm = await jetstreamManager(running.nc);
  // the topology first: the collector may take events while this process stands by
  await ensureTopology(running.nc, jsm, logger);
  // one engine per log: this one runs while it holds the engine lease, else stands by. An engine
  // that stops for good (not an outage: it waits those out) ends the process, exit 1, so that a
  // supervisor sees it and starts it again from the last checkpoint
  const runner = withEngine
    ? new EngineRunner({ nc: running.nc, config, settings, logger: componentLogger('engine'), onFailure: () => shutdown('the engine stopped processing') })
    : undefined;
  // the read model: filled by the projection (one per database: the others stand by), read by the query routes
  const store: ReadModelStore | undefined =
    withProjection || withHttp ? await openReadModel({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger: componentLogger('read-model') }) : undefined;
  const projection =
    store !== undefined && withProjection
      ? await Projection.start({
          nc: running.nc,
          store,
          settings,
          logger: componentLogger('projection'),
          decode: inputDecoder(config),
          ...(settings.noActivity ? {} : { activity: config }),
          onFailure: () => shutdown('the projection stopped processing'),
        })
      : undefined;
  const metrics = createMetrics();
  let app: XrefApp | undefined;
  let publisher: JetStreamPublisher | undefined;
  if (collector !== undefined) {
    publisher = new JetStreamPublisher(running.nc, componentLogger('collector-publisher'));
    app = buildApp({
      ...collector,
      publisher: new JetStreamSink(publisher, { maxPending: settings.httpMaxPendingEvents }),
      logger: componentLogger('http'),
      readiness: natsReadiness({ nc: running.nc, jsm, ...(runner ? { engine: runner } : {}) }),
      metrics,
      ...(store === undefined ? {} : { queries: new ReadModelQueries(store, { config, userEventsCap: settings.userEventsCap, logger: componentLogger('queries') }) }),
      // the admin routes: a forget is `done` once the read model's part is too, when this process runs the projection
      control: controlActions(running.nc, projection === undefined ? undefined : store),
      ...(settings.adminTokens.length === 0 ? {} : { adminTokens: new Set(settings.adminTokens) }),
    });
    await app.listen({ port: settings.port, host: settings.httpHost });
  }
  const gauges =
    runner &&
    setInterval(() => {
      const engine = runner.engine;
      setEngineGauges(metrics, { role: runner.role, waitingForNats: engine?.waits.current ?? [] });
      void engine?.lag().then(
        (lag) =>
          setEngineGauges(metrics, {
            lag,
            liveActors: engine.engineSize.liveActors,
            bufferedIdentifiers: engine.engineSize.buffering,
            unmatched: engine.engineStats.unmatchedBy,
            audit: engine.engineStats.auditsBy,
            suppressed: engine.engineStats.suppressed,
          }),
        () => undefined,
      );
    }, 1000).unref();
  logger.info(
    { nats: settings.natsUrl, engine: withEngine, projection: withProjection, http: app === undefined ? false : `${settings.httpHost}:${settings.port}` },
    'xref is running: publish events to xref.in.<source> or POST them to /v1/events, /v1/batch',
  );
  await stopRequested;
  clearInterval(gauges);
  if (app !== undefined) {
    markShuttingDown(app);
    await app.close();
  }
  await publisher?.close();
  await runner?.stop();
  await projection?.stop();
  await store?.close();
  await running.stop();
  const failed = runner?.error !== undefined || runner?.engine?.error !== undefined || projection?.error !== undefined;
  process.exitCode = failed ? 1 : 0;
}
