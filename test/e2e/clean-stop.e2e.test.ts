import { readFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { BUCKETS, snapshotKeys } from '../../src/nats/subjects.ts';
import { ackFloor, exited, startEngineProcess } from '../helpers/engine-process.ts';
import { freePort, useNatsServer } from '../helpers/nats-server.ts';
import { publishEvents, waitFor } from '../helpers/streams.ts';

/** `npm start` (or node on bin/xref.js serve) on a free port, against the test's server; only the final checkpoint is written. */
const serve = (how: 'npm' | 'node', natsUrl: string, port: number) =>
  startEngineProcess(natsUrl, { PORT: String(port), XREF_LOG_LEVEL: 'info', XREF_CHECKPOINT_EVERY: '1000000', XREF_CHECKPOINT_MS: '600000' }, how);

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ port, host: '127.0.0.1' });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Whether xref's own code runs in the process yet: its first line names the process `xref …`. */
function xrefRuns(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('xref');
  } catch {
    return false;
  }
}

const stopLines = (output: string) => output.split('\n').filter((line) => line.includes('"msg":"stopping'));

describe('clean stops', () => {
  const nats = useNatsServer();

  it.each(['SIGTERM', 'SIGINT'] as const)('%s sent to `npm start` stops xref: one line, a final checkpoint, exit 0, the port freed', async (signal) => {
    const port = await freePort();
    const npm = serve('npm', nats.server.url, port);
    await waitFor('xref to listen', () => listening(port), 30_000);
    const jsm = await jetstreamManager(nats.nc);
    const before = (await jsm.streams.info('XREF_IN')).state.last_seq;
    await publishEvents(nats.nc, [
      { id: `${signal}-1`, ids: { cookie: `c-${signal}` } },
      { id: `${signal}-2`, ids: { cookie: `c-${signal}`, db_id: `u-${signal}` } },
    ]);
    await waitFor('the engine to apply both', async () => (await ackFloor(jsm)) >= before + 2);
    npm.kill(signal);
    expect(await exited(npm), npm.output()).toBe(0);
    expect(stopLines(npm.output())).toHaveLength(1);
    expect(npm.output()).not.toMatch(/"level":(40|50|60)/);
    expect(await listening(port)).toBe(false);
    const meta = await (await new Kvm(nats.nc).open(BUCKETS.snapshots)).get(snapshotKeys.meta);
    expect(meta?.json<{ seq: number }>().seq).toBe(before + 2);
  });

  it('a SIGTERM at any moment of start-up stops it cleanly: exit 0, never 143, the port freed', async () => {
    for (const delay of [0, 150, 400, 700, 1100, 1600]) {
      const port = await freePort();
      const node = serve('node', nats.server.url, port);
      // from xref's first line (before it, node itself is still starting), then some way into start-up
      await waitFor("xref's code to run", () => xrefRuns(node.pid!) || node.exitCode !== null, 10_000);
      await new Promise((resolve) => setTimeout(resolve, delay)); // the moment of start-up to hit
      node.kill('SIGTERM');
      expect(await exited(node), `SIGTERM ${delay} ms into start-up: ${node.output()}`).toBe(0);
      expect(stopLines(node.output()), `after ${delay} ms`).toHaveLength(1);
      expect(await listening(port)).toBe(false);
    }
  }, 120_000);
});
