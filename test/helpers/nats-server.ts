/**
 * Integration-test helper: runs a real `nats-server -js` child process on a free port of
 * 127.0.0.1, with its JetStream store in a fresh temp dir, and hands back a handle that can kill,
 * restart (same port, same store dir) and stop it.
 *
 *   const server = await startNatsServer();
 *   const nc = await connect({ servers: server.url });
 *   ...
 *   await server.restart();   // SIGKILL + start again on the same port and store dir
 *   await server.stop();      // SIGTERM, wait, remove the temp store dir
 *
 * Every child still alive when the test process exits is SIGKILLed by a process 'exit' handler,
 * which also removes (best effort) the temp store dirs of servers that were never stopped.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { killOnExit } from '../../src/child-processes.ts';

export interface StartNatsServerOptions {
  /** JetStream store dir (`-sd`). Default: a fresh `fs.mkdtemp` dir, removed by `stop()`. */
  storeDir?: string;
  /** Client port (`-p`). Default: a free port picked by the helper. */
  port?: number;
}

export interface NatsServerHandle {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** PID of the current child (changes on `restart()`). */
  readonly pid: number;
  /** Sends `signal` to the child and resolves once it has exited. No-op if it already has. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILLs the child, then starts a new one on the same port and store dir; resolves once JetStream is ready. */
  restart(): Promise<void>;
  /** SIGTERM, wait for exit, then remove the store dir if the helper created it. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_DEADLINE_MS = 10_000;
/** How long a fixed port (restart, or `options.port`) may stay busy before we give up. */
const PORT_BUSY_DEADLINE_MS = 5_000;
const EXIT_DEADLINE_MS = 10_000;
const STDERR_TAIL_LINES = 40;

// ---------------------------------------------------------------------------------------------
// Children still alive are killed on exit by killOnExit; then their temp store dirs go.

/** Temp store dirs the helper created and `stop()` has not removed yet. */
const ownedStoreDirs = new Set<string>();
process.on('exit', () => {
  // Best effort (synchronous: 'exit' handlers cannot await).
  for (const dir of ownedStoreDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a dying child may still be writing; leave it
    }
  }
});

// ---------------------------------------------------------------------------------------------

let cachedVersion: string | undefined;

/** Version of the `nats-server` binary on PATH, e.g. `"2.9.10"` (parsed from `nats-server --version`). */
export function natsServerVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  const out = execFileSync('nats-server', ['--version'], { encoding: 'utf8', timeout: 5_000 });
  const match = /v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)/.exec(out);
  if (!match?.[1]) throw new Error(`cannot parse the output of \`nats-server --version\`: ${JSON.stringify(out)}`);
  cachedVersion = match[1];
  return cachedVersion;
}

/** A port that was free a moment ago: bind 127.0.0.1:0, read the port, close. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      if (address === null || typeof address === 'string') {
        srv.close();
        reject(new Error('could not read the address of a port-0 listener'));
        return;
      }
      srv.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}

/** Thrown when the child exits because its port is taken (so the caller may retry). */
class PortInUseError extends Error {}

/** One running child, with the tail of its stderr. */
class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
  private readonly tail: string[] = [];
  private partial = '';
  /** Server ID from the startup banner (`ID: N...`), to be sure we talk to *this* server. */
  serverId: string | undefined;
  /** The banner line "Server is ready" was seen (the client listener is up). */
  saidReady = false;

  constructor(port: number, storeDir: string) {
    this.process = spawn('nats-server', ['-js', '-a', HOST, '-p', String(port), '-sd', storeDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    killOnExit(this.process);
    this.exited = new Promise<void>((resolve) => {
      this.process.once('exit', () => resolve());
      // spawn failure (ENOENT...): 'exit' may never come
      this.process.on('error', (err) => {
        this.push(`spawn error: ${err.message}`);
        resolve();
      });
    });
    this.process.stderr?.setEncoding('utf8');
    this.process.stderr?.on('data', (chunk: string) => {
      const lines = (this.partial + chunk).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.push(line);
    });
  }

  private push(line: string): void {
    if (line.includes('Server is ready')) this.saidReady = true;
    if (this.serverId === undefined) {
      const id = /\]\s+ID:\s+(N[A-Z0-9]{55})\b/.exec(line);
      if (id) this.serverId = id[1];
    }
    this.tail.push(line);
    if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get alive(): boolean {
    return this.process.pid !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  stderrTail(): string {
    return [...this.tail, this.partial].filter((l) => l.length > 0).join('\n');
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.alive) return this.exited;
    this.process.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), EXIT_DEADLINE_MS);
    });
    const result = await Promise.race([this.exited.then(() => 'exited' as const), timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.process.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Resolves once `child` accepts a NATS connection and answers `$JS.API.INFO`. */
async function waitUntilReady(child: Child, url: string): Promise<void> {
  const deadline = Date.now() + READY_DEADLINE_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!child.alive) {
      await child.exited;
      const tail = child.stderrTail();
      if (/address already in use/i.test(tail)) throw new PortInUseError(tail);
      throw new Error(
        `nats-server (pid ${child.pid}) exited before it was ready ` +
          `(code ${child.process.exitCode}, signal ${child.process.signalCode}); stderr:\n${tail}`,
      );
    }
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
      try {
        // Guard against another process that holds the port (our child then dies with
        // "address already in use"): the INFO must come from our child's server ID, as printed in
        // its startup banner. If no ID could be parsed, "Server is ready" (logged once it
        // listens) is the fallback proof that the child itself bound the port.
        const seen = nc.info?.server_id;
        const ours = child.serverId !== undefined ? seen === child.serverId : child.saidReady;
        if (!ours) throw new Error(`${url} answered as server ${seen}, not (yet) known to be our child`);
        await jetstreamManager(nc, { timeout: 1_000 });
        if (!child.alive) continue; // re-checked at the top of the loop
        return;
      } finally {
        await nc.close().catch(() => undefined);
      }
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const tail = child.stderrTail();
  await child.kill('SIGKILL');
  throw new Error(
    `nats-server on ${url} was not ready (JetStream) within ${READY_DEADLINE_MS} ms; ` +
      `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}; stderr:\n${tail}`,
  );
}

/**
 * Spawns a child on `port` (or on fresh free ports when `port` is undefined) and waits for
 * JetStream. A busy port is retried: new port each time if we pick it, the same one for up to
 * PORT_BUSY_DEADLINE_MS otherwise (e.g. a restart while the old socket lingers).
 */
async function spawnReady(port: number | undefined, storeDir: string): Promise<{ child: Child; port: number }> {
  const busyDeadline = Date.now() + PORT_BUSY_DEADLINE_MS;
  for (let attempt = 1; ; attempt++) {
    const chosen = port ?? (await freePort());
    const child = new Child(chosen, storeDir);
    try {
      await waitUntilReady(child, `nats://${HOST}:${chosen}`);
      return { child, port: chosen };
    } catch (err) {
      if (!(err instanceof PortInUseError)) throw err;
      const giveUp = port === undefined ? attempt >= 10 : Date.now() >= busyDeadline;
      if (giveUp) {
        throw new Error(`nats-server could not bind ${HOST}:${chosen} after ${attempt} attempt(s); stderr:\n${err.message}`);
      }
      if (port !== undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export class NatsServerProcess implements NatsServerHandle {
  private child: Child;
  readonly url: string;

  constructor(
    child: Child,
    readonly port: number,
    readonly storeDir: string,
    private readonly ownsStoreDir: boolean,
  ) {
    this.child = child;
    this.url = `nats://${HOST}:${port}`;
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Tail of the current child's stderr (handy in assertion messages). */
  stderrTail(): string {
    return this.child.stderrTail();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.child.kill(signal);
  }

  async restart(): Promise<void> {
    await this.child.kill('SIGKILL');
    this.child = (await spawnReady(this.port, this.storeDir)).child;
  }

  async stop(): Promise<void> {
    await this.child.kill('SIGTERM');
    if (this.ownsStoreDir) {
      await rm(this.storeDir, { recursive: true, force: true });
      ownedStoreDirs.delete(this.storeDir);
    }
  }
}

/** Starts `nats-server -js -a 127.0.0.1 -p <port> -sd <storeDir>`; resolves once JetStream answers. */
export async function startNatsServer(options: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const ownsStoreDir = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), 'xref-nats-')));
  if (ownsStoreDir) ownedStoreDirs.add(storeDir);
  try {
    const { child, port } = await spawnReady(options.port, storeDir);
    return new NatsServerProcess(child, port, storeDir, ownsStoreDir);
  } catch (err) {
    if (ownsStoreDir) {
      await rm(storeDir, { recursive: true, force: true });
      ownedStoreDirs.delete(storeDir);
    }
    throw err;
  }
}

/**
 * A nats-server and a connection to it for a suite, started before and stopped after all its
 * tests (`'all'`) or each test (`'each'`): `const nats = useNatsServer(); … nats.nc, nats.server`.
 */
export function useNatsServer(scope: 'all' | 'each' = 'all'): { readonly server: NatsServerHandle; nc: NatsConnection } {
  const state = {} as { server: NatsServerHandle; nc: NatsConnection };
  const [before, after] = scope === 'all' ? [beforeAll, afterAll] : [beforeEach, afterEach];
  before(async () => {
    state.server = await startNatsServer();
    state.nc = await connect({ servers: state.server.url });
  });
  after(async () => {
    await state.nc?.close();
    await state.server?.stop();
  });
  return state;
}
