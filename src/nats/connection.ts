import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { AuthorizationError, type ConnectionOptions, type NatsConnection, connect, credsAuthenticator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type NatsAuth, natsAuth, natsHostPort, refuseUrlCredentials } from '../settings.ts';
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

/** What the log and the messages say of `auth`: the scheme, and the user or the file; never a secret. */
export function authName(auth: NatsAuth): string {
  switch (auth.scheme) {
    case 'none':
      return 'no credentials';
    case 'user':
      return `the user ${quote(auth.user)} (NATS_USER, NATS_PASSWORD)`;
    case 'token':
      return 'the token of NATS_TOKEN';
    case 'creds':
      return `the credentials file ${quote(auth.credsFile)} (NATS_CREDS)`;
  }
}

/** The contents of a .creds file, checked to hold a JWT and a seed; else an XREF_INVALID_CONFIG naming NATS_CREDS and the path. */
function readCreds(file: string): Uint8Array {
  let creds: Uint8Array;
  try {
    creds = readFileSync(file);
  } catch (cause) {
    throw new XrefError('XREF_INVALID_CONFIG', `NATS_CREDS ${quote(file)} cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { field: 'NATS_CREDS', cause });
  }
  try {
    credsAuthenticator(creds)();
  } catch (cause) {
    throw new XrefError('XREF_INVALID_CONFIG', `NATS_CREDS ${quote(file)} is not a NATS credentials file (a user JWT and its NKEY seed, as nsc writes it): ${(cause as Error).message}`, { field: 'NATS_CREDS', cause });
  }
  return creds;
}

/**
 * `auth` as connect() takes it. A creds file is read and checked now, and read again at each
 * reconnect, so that a renewed file is used (an unreadable one then: the last one read).
 */
export function authOptions(auth: NatsAuth): Pick<ConnectionOptions, 'user' | 'pass' | 'token' | 'authenticator'> {
  switch (auth.scheme) {
    case 'none':
      return {};
    case 'user':
      return { user: auth.user, pass: auth.pass };
    case 'token':
      return { token: auth.token };
    case 'creds': {
      let creds = readCreds(auth.credsFile);
      const current = () => {
        try {
          creds = readFileSync(auth.credsFile);
        } catch {
          // moved or being rewritten: the last one read
        }
        return creds;
      };
      return { authenticator: credsAuthenticator(current) };
    }
  }
}

/** The message for a server that refused the connection's credentials (or wants some). */
function refusedMessage(url: string, auth: NatsAuth, reason: string): string {
  if (auth.scheme === 'none') {
    return `NATS at ${url} wants credentials (${reason}): set xref's credentials in NATS_USER and NATS_PASSWORD, NATS_TOKEN or NATS_CREDS (docs/security.md)`;
  }
  return `NATS at ${url} refused ${authName(auth)} (${reason}): check them against the users of nats-server's authorization config (docs/security.md)`;
}

/**
 * Connects for good: reconnects forever, logs every status change, and refuses a server older
 * than MIN_SERVER_VERSION or one without JetStream. `auth`: the credentials to send (default
 * NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS from the environment, as loadSettings reads
 * them).
 */
export async function connectNats(url: string, name: string, logger: Logger, auth: NatsAuth = natsAuth()): Promise<NatsConnection> {
  refuseUrlCredentials(url);
  const credentials = authOptions(auth);
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true, timeout: 3000, ...credentials });
  } catch (cause) {
    if (isDnsFailure(cause)) throw new XrefError('XREF_NATS_UNAVAILABLE', unresolvedHostMessage(url, natsHostPort(url).host, cause), { cause });
    if (cause instanceof AuthorizationError) throw new XrefError('XREF_NATS_UNAVAILABLE', refusedMessage(url, auth, cause.message), { cause });
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
  logger.info({ url, version, auth: authName(auth) }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') logger.warn({ status: status.type, server: status.server }, `NATS ${status.type}`);
      else if (status.type === 'error') logger.error({ err: status.error }, 'NATS error');
    }
  })();
  return nc;
}
