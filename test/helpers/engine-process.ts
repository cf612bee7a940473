import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { onTestFinished } from 'vitest';
import { killOnExit } from '../../src/child-processes.ts';
import { isEngineConsumer } from '../../src/service/engine-service.ts';
import { consumersOf } from '../../src/nats/jetstream-input-log.ts';
import { STREAMS } from '../../src/nats/subjects.ts';

/**
 * `xref serve` as a child process (so it can be killed -9), pointed at a test server; the engine
 * alone unless `env.PORT` is given (then with its HTTP collector, write key `key`, on 127.0.0.1).
 * `how`: node on bin/xref.js, or `npm start` as a user runs it (always with the collector).
 */
export function startEngineProcess(natsUrl: string, env: Record<string, string> = {}, how: 'node' | 'npm' = 'node'): ChildProcess & { output: () => string } {
  let output = '';
  const http = env.PORT !== undefined;
  const [command, args] = how === 'npm' ? ['npm', ['start', '--silent']] : [process.execPath, ['bin/xref.js', 'serve', ...(http ? [] : ['--no-http'])]];
  const child = spawn(command, args, {
    // a short lease: an engine started after one was killed takes over within 1.5 s, not 10
    env: {
      ...process.env,
      NATS_URL: natsUrl,
      XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')),
      XREF_LOG_LEVEL: 'warn',
      XREF_LEASE_TTL_MS: '1500',
      ...(http ? { XREF_WRITE_KEYS: 'key', XREF_HTTP_HOST: '127.0.0.1' } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  killOnExit(child);
  endWithTest(child);
  return Object.assign(child, { output: () => output });
}

/**
 * Kills `child` when the test that started it ends, passed or failed: an engine whose server is
 * gone waits for it forever, and a worker the runner stops never runs its exit handlers.
 */
export function endWithTest(child: ChildProcess): void {
  try {
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  } catch {
    // not inside a test (a script): killOnExit is the only guard
  }
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * Highest input sequence the engine has acked (all inputs up to it have their outputs stored).
 * With `createdAfter`, only an engine started since counts (each start recreates the consumer).
 */
export async function ackFloor(jsm: JetStreamManager, createdAfter?: Date): Promise<number> {
  try {
    // the newest engine's consumer (under a lease each engine has its own)
    const engines = (await consumersOf(jsm, STREAMS.in)).filter((c) => isEngineConsumer(c.name));
    const info = engines.sort((a, b) => Date.parse(b.created) - Date.parse(a.created))[0];
    if (info === undefined) return 0;
    // a consumer just created may answer without an ack floor yet
    return createdAfter !== undefined && new Date(info.created) < createdAfter ? 0 : (info.ack_floor?.stream_seq ?? 0);
  } catch (error) {
    if (error instanceof JetStreamApiError) return 0; // between restarts the consumer is recreated
    throw error;
  }
}
