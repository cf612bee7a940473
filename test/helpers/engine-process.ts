import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { killOnExit } from '../../src/child-processes.ts';
import { ENGINE_CONSUMER } from '../../src/service/engine-service.ts';
import { STREAMS } from '../../src/nats/subjects.ts';

/** `xref serve` as a child process (so it can be killed -9), pointed at a test server. */
export function startEngineProcess(natsUrl: string, env: Record<string, string> = {}): ChildProcess & { output: () => string } {
  let output = '';
  const child = spawn(process.execPath, ['bin/xref.js', 'serve', '--no-http'], {
    env: { ...process.env, NATS_URL: natsUrl, XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')), XREF_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  killOnExit(child);
  return Object.assign(child, { output: () => output });
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
    const info = await jsm.consumers.info(STREAMS.in, ENGINE_CONSUMER);
    // a consumer just created may answer without an ack floor yet
    return createdAfter !== undefined && new Date(info.created) < createdAfter ? 0 : (info.ack_floor?.stream_seq ?? 0);
  } catch (error) {
    if (error instanceof JetStreamApiError) return 0; // between restarts the consumer is recreated
    throw error;
  }
}
