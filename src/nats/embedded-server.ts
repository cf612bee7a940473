/**
 * An embedded NATS server for `xref serve`: when nothing listens on the default NATS URL and a
 * `nats-server` binary is on PATH, serve starts one as a child process with JetStream and a local
 * store dir, and stops it on shutdown.
 *
 * The child runs in its own process group (`detached`), so a Ctrl-C in the terminal reaches only
 * xref: serve drains its NATS connection first and then calls `stop()`. If xref exits without
 * calling `stop()`, a process 'exit' handler SIGKILLs the child.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import { killOnExit } from '../child-processes.ts';
import { XrefError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';

export interface EmbeddedNatsServerOptions {
  /** JetStream store dir (`-sd`); created if missing. nats-server keeps its data in `<storeDir>/jetstream`. */
  storeDir: string;
  port: number;
  /** Address to bind and to advertise in `url`. Default 127.0.0.1. */
  host?: string;
  logger?: Logger;
}

export interface EmbeddedNatsServer {
  /** `nats://host:port` */
  url: string;
  pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 5 s). Safe to call more than once. */
  stop(): Promise<void>;
}

const BINARY = process.platform === 'win32' ? 'nats-server.exe' : 'nats-server';
const READY_DEADLINE_MS = 10_000;
const POLL_INTERVAL_MS = 50;
const STOP_GRACE_MS = 5_000;
const STDERR_TAIL_LINES = 30;

/** True if an executable `nats-server` is in one of the PATH directories. */
export function natsServerOnPath(): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir.length === 0) continue;
    const candidate = join(dir, BINARY);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** True if a TCP connection to host:port is accepted within `timeoutMs`. */
export async function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const done = (result: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Spawns `nats-server -js -a <host> -p <port> -sd <storeDir>` and resolves once it accepts TCP
 * connections (nats-server enables JetStream before it opens its client listener) and has logged
 * "Server is ready". Rejects with
 * the tail of the server's stderr if it exits or is not listening within 10 s.
 */
export async function startEmbeddedNatsServer(opts: EmbeddedNatsServerOptions): Promise<EmbeddedNatsServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.logger ?? componentLogger('nats-server');
  const url = `nats://${host}:${opts.port}`;
  await mkdir(opts.storeDir, { recursive: true });

  const args = ['-js', '-a', host, '-p', String(opts.port), '-sd', opts.storeDir];
  const child = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  killOnExit(child);

  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      log.debug({ pid: child.pid, code, signal }, 'nats-server exited');
      resolve();
    });
    child.on('error', (err) => {
      // spawn failed (ENOENT, EACCES): no 'exit' follows
      spawnError = err;
      resolve();
    });
  });
  const isRunning = (): boolean =>
    spawnError === undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null;

  const tail: string[] = [];
  let partial = '';
  let saidReady = false;
  const onLine = (line: string): void => {
    if (line.length === 0) return;
    if (line.includes('Server is ready')) saidReady = true;
    tail.push(line);
    if (tail.length > STDERR_TAIL_LINES) tail.shift();
    log.debug({ pid: child.pid }, line);
  };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  child.stderr?.on('end', () => {
    onLine(partial);
    partial = '';
  });
  const stderrTail = (): string => [...tail, partial].filter((l) => l.length > 0).join('\n') || '(no output)';

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!isRunning()) return exited;
      log.debug({ pid: child.pid }, 'stopping nats-server');
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
      });
      const outcome = await Promise.race([exited.then(() => 'exited' as const), graceOver]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        log.warn({ pid: child.pid }, `nats-server did not exit within ${STOP_GRACE_MS} ms of SIGTERM; sending SIGKILL`);
        child.kill('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };

  log.info({ pid: child.pid, url, storeDir: opts.storeDir }, 'starting embedded nats-server');
  const deadline = Date.now() + READY_DEADLINE_MS;
  let listeningSince: number | undefined;
  for (;;) {
    if (!isRunning()) {
      await exited;
      const why = spawnError
        ? `could not be started (${spawnError.message})`
        : `exited with code ${child.exitCode}, signal ${child.signalCode}`;
      throw new XrefError('XREF_NATS_UNAVAILABLE', `embedded nats-server on ${url} ${why}; stderr:\n${stderrTail()}`, spawnError ? { cause: spawnError } : {});
    }
    if (await isListening(host, opts.port)) {
      // The port might belong to another process while our child is about to die of EADDRINUSE:
      // also wait for the child's own "Server is ready" line (or, should a future version word it
      // differently, for the port to have answered for a second while the child stays up).
      listeningSince ??= Date.now();
      if (isRunning() && (saidReady || Date.now() - listeningSince >= 1_000)) break;
    } else {
      listeningSince = undefined;
    }
    if (Date.now() >= deadline) {
      await stop();
      throw new XrefError(
        'XREF_NATS_UNAVAILABLE',
        `embedded nats-server on ${url} did not accept connections within ${READY_DEADLINE_MS} ms; stderr:\n${stderrTail()}`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }

  log.info({ pid: child.pid, url }, 'embedded nats-server is ready');
  return { url, pid: child.pid ?? -1, stop };
}
