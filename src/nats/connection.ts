import { type NatsConnection, connect } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';

/** The oldest server xref is built for; newer features are avoided or gated by version. */
export const MIN_SERVER_VERSION = '2.9.0';

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * Connects for good: reconnects forever, logs every status change, and refuses a server older
 * than MIN_SERVER_VERSION or one without JetStream.
 */
export async function connectNats(url: string, name: string, logger: Logger): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true, timeout: 3000 });
  } catch (cause) {
    throw new XrefError('XREF_NATS_UNAVAILABLE', `cannot connect to NATS at ${url}: ${(cause as Error).message}`, { cause });
  }
  const version = nc.info?.version ?? '0.0.0';
  if (compareVersions(version, MIN_SERVER_VERSION) < 0) {
    await nc.close();
    throw new XrefError('XREF_NATS_UNAVAILABLE', `nats-server ${version} at ${url} is older than ${MIN_SERVER_VERSION}`);
  }
  if (nc.info?.jetstream !== true) {
    await nc.close();
    throw new XrefError('XREF_NATS_UNAVAILABLE', `nats-server at ${url} runs without JetStream: start it with -js`);
  }
  logger.info({ url, version }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') logger.warn({ status: status.type, server: status.server }, `NATS ${status.type}`);
      else if (status.type === 'error') logger.error({ err: status.error }, 'NATS error');
    }
  })();
  return nc;
}
