import { lookup } from 'node:dns/promises';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { natsHostPort } from '../settings.ts';
import { XrefError, quote } from '../domain/errors.ts';

/** The oldest server xref is built for; newer features are avoided or gated by version. */
export const MIN_SERVER_VERSION = '2.9.0';

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** getaddrinfo's answers that mean "this host name has no address", as Node reports them. */
const DNS_FAILURES: Readonly<Record<string, string>> = {
  ENOTFOUND: 'no such host',
  EAI_NONAME: 'no such host',
  EAI_NODATA: 'the name has no address',
  EAI_AGAIN: 'the DNS lookup failed for now (no DNS server answered): check the network, or try again',
  EAI_FAIL: 'the DNS server failed',
};

/** True if `error` is a failure to resolve a host name (not a refused or timed-out connection). */
export function isDnsFailure(error: unknown): error is NodeJS.ErrnoException {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && Object.hasOwn(DNS_FAILURES, code);
}

/** The message for a NATS URL whose host name does not resolve: it names the host and says so. */
export function unresolvedHostMessage(url: string, host: string, error: NodeJS.ErrnoException): string {
  const code = error.code ?? 'ENOTFOUND';
  return [
    `the NATS host ${quote(host)} (from ${url}) could not be resolved: ${DNS_FAILURES[code] ?? 'no address'} (${code}).`,
    '  Check the host name in NATS_URL, e.g. NATS_URL=nats://127.0.0.1:4222 for a server on this machine.',
  ].join('\n');
}

/**
 * Resolves the host of a NATS URL (IP addresses and `localhost` included; the OS answers those at
 * once). Throws an XrefError (XREF_NATS_UNAVAILABLE) naming the host when it does not resolve, so
 * that a typo in NATS_URL is not reported as "no NATS server answers". Other lookup failures are
 * left to the connection attempt to report.
 */
export async function assertNatsHostResolves(url: string): Promise<void> {
  const { host } = natsHostPort(url);
  try {
    await lookup(host.replace(/^\[(.*)\]$/, '$1'));
  } catch (error) {
    if (isDnsFailure(error)) throw new XrefError('XREF_NATS_UNAVAILABLE', unresolvedHostMessage(url, host, error), { cause: error });
  }
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
    if (isDnsFailure(cause)) throw new XrefError('XREF_NATS_UNAVAILABLE', unresolvedHostMessage(url, natsHostPort(url).host, cause), { cause });
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
