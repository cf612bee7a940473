import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsHostPort, resolveConfig, serviceSettings } from '../domain/config.ts';
import { XrefError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { connectNats } from '../nats/connection.ts';
import { isListening, natsServerOnPath, startEmbeddedNatsServer } from '../nats/embedded-server.ts';
import { EngineService } from '../service/engine-service.ts';
import { loadConfigFile } from './group-command.ts';

const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

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
  let embedded: Awaited<ReturnType<typeof startEmbeddedNatsServer>> | undefined;
  if (!(await isListening(host, port))) {
    if (url !== DEFAULT_NATS_URL || !natsServerOnPath()) throw new XrefError('XREF_NATS_UNAVAILABLE', noNatsMessage(url));
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

/** `xref serve`: the streaming engine until SIGTERM/SIGINT. */
export async function serveCommand(): Promise<void> {
  const logger = componentLogger('serve');
  const settings = serviceSettings();
  const config = resolveConfig(loadConfigFile(settings.configFile));
  const running = await connectOrEmbed(settings.natsUrl, settings.dataDir, 'xref-engine');
  const engine = await EngineService.start({ nc: running.nc, config, settings, logger: componentLogger('engine') });
  logger.info({ nats: settings.natsUrl, seq: engine.seq }, 'xref is running: publish events to xref.in.<source>');
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'shutting down: finishing in-flight work');
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  await engine.stop();
  await running.stop();
  process.exitCode = engine.error === undefined ? 0 : 1;
}
