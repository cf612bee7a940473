import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { killOnExit } from '../../src/child-processes.ts';
import { defaultConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { logger } from '../../src/log.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { PROJECTED_STREAMS, type ReadModelStore } from '../../src/projection/read-model.ts';
import { PROJECTED_STREAM_NAMES } from '../../src/projection/stream-identity.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { inputDecoder } from '../../src/service/input.ts';
import { loadSettings } from '../../src/settings.ts';
import { ackFloor, endWithTest, exited } from '../helpers/engine-process.ts';
import { freePort, useNatsServer } from '../helpers/nats-server.ts';
import { referenceDump } from '../helpers/projection-reference.ts';
import { publishEvents, waitFor } from '../helpers/streams.ts';
import { webLog } from '../helpers/web-log.ts';

const log = logger.child({ component: 'test-projection' });
const decode = inputDecoder(defaultConfig());

/** The last input the active-people counts are written through (0: none). */
async function counted(store: ReadModelStore): Promise<number> {
  return (await store.activity.scalars())?.seq ?? 0;
}

/** `xref <args>` as a child process, killed when the test ends. */
function xref(args: string[], env: Record<string, string>): ChildProcess & { output: () => string } {
  let output = '';
  const child = spawn(process.execPath, ['bin/xref.js', ...args], { env: { ...process.env, XREF_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  killOnExit(child);
  endWithTest(child);
  return Object.assign(child, { output: () => output });
}

/** A SQLite read model in a temp dir: its URL, and the env a child process writes into it with. */
function database(natsUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), 'xref-projection-'));
  const url = `sqlite:${join(dir, 'xref.sqlite')}`;
  // small batches, a short claim: many writes to be killed in, a restart takes over within 0.4 s
  const env = { NATS_URL: natsUrl, XREF_DATA_DIR: dir, XREF_DATABASE_URL: url, XREF_PROJECTION_BATCH: '200', XREF_PROJECTION_MS: '10', XREF_LEASE_TTL_MS: '400' };
  return { url, env, open: () => openReadModel({ databaseUrl: url, dataDir: dir, logger: log }) };
}

/** Messages every projected stream holds (the sum of their last sequences). */
async function streamEnds(jsm: JetStreamManager): Promise<number> {
  let sum = 0;
  for (const stream of PROJECTED_STREAMS) sum += (await jsm.streams.info(PROJECTED_STREAM_NAMES[stream].stream)).state.last_seq;
  return sum;
}

/** Messages the read model holds of every stream (the sum of its positions). */
async function projected(store: ReadModelStore): Promise<number> {
  return [...(await store.positions()).values()].reduce((sum, p) => sum + p.seq, 0);
}

describe('xref project survives kill -9', () => {
  const nats = useNatsServer();

  it('killed mid-way again and again while events keep coming, then run to the end: every row once, as a clean projection has it', async () => {
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '2000' });
    const engine = await EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: log });
    const chunks: XrefEvent[][] = [0, 1, 2, 3, 4].map((seed) =>
      webLog({ events: 6000, identifiers: 1000, seed, rich: true }).map((event) => ({ ...event, id: `s${seed}-${event.id}` })),
    );
    await publishEvents(nats.nc, chunks[0]!);
    const db = database(nats.server.url);
    const store = await db.open();
    try {
      let kills = 0;
      for (const chunk of chunks.slice(1)) {
        const child = xref(['project'], db.env);
        const before = await projected(store);
        // more events while it projects
        const publishing = publishEvents(nats.nc, chunk);
        await waitFor('the projection to write a part of what is there', async () => (await projected(store)) >= before + 3000, 60_000);
        child.kill('SIGKILL');
        await exited(child);
        kills++;
        await publishing;
      }
      expect(kills).toBe(4);
      const jsm = await jetstreamManager(nats.nc);
      await waitFor('the engine to apply every input', async () => (await ackFloor(jsm)) >= (await jsm.streams.info('XREF_IN')).state.last_seq, 60_000);
      await engine.stop();

      const last = xref(['project'], db.env);
      const total = await streamEnds(jsm);
      await waitFor('the projection to reach the end of every stream', async () => (await projected(store)) >= total, 60_000);
      const inputs = (await jsm.streams.info('XREF_IN')).state.last_seq;
      await waitFor('the active people of every input to be counted', async () => (await counted(store)) >= inputs, 60_000);
      last.kill('SIGTERM');
      expect(await exited(last), last.output()).toBe(0);
      expect(last.output()).not.toMatch(/"level":[56]0/);
      const dump = await store.dump();
      expect(dump).toEqual(await referenceDump(nats.nc, decode, defaultConfig()));
      expect(dump.events).toHaveLength(chunks.flat().length);
    } finally {
      await store.close();
    }
  });
});

describe('xref serve and the projection', () => {
  const nats = useNatsServer('each');

  it('projects by default, into the database XREF_DATABASE_URL names', async () => {
    const db = database(nats.server.url);
    const serve = xref(['serve', '--no-http'], { ...db.env, XREF_LEASE_TTL_MS: '1500' });
    const events = webLog({ events: 2000, identifiers: 300, seed: 9, rich: true });
    await publishEvents(nats.nc, events);
    const store = await db.open();
    try {
      // the engine's outputs too: XREF_IN projected does not mean the engine has written them all
      const jsm = await jetstreamManager(nats.nc);
      await waitFor('the engine to apply every input', async () => (await ackFloor(jsm)) >= events.length, 60_000);
      const total = await streamEnds(jsm);
      await waitFor('the projection to reach the end of every stream', async () => (await projected(store)) >= total, 60_000);
      await waitFor('the active people of every input to be counted', async () => (await counted(store)) >= events.length, 60_000);
      serve.kill('SIGTERM');
      expect(await exited(serve), serve.output()).toBe(0);
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, defaultConfig()));
    } finally {
      await store.close();
    }
  });

  it('--no-projection leaves the database untouched, while the query routes still answer from it', async () => {
    const db = database(nats.server.url);
    const port = await freePort();
    const serve = xref(['serve', '--no-projection', '--insecure-no-auth'], {
      ...db.env,
      XREF_LEASE_TTL_MS: '1500',
      XREF_LOG_LEVEL: 'info',
      PORT: String(port),
      XREF_HTTP_HOST: '127.0.0.1',
      XREF_READ_TOKENS: 'reader',
    });
    await waitFor('xref serve to listen', () => serve.output().includes('xref is running'), 60_000);
    const events = webLog({ events: 500, identifiers: 100, seed: 10 });
    await publishEvents(nats.nc, events);
    const jsm = await jetstreamManager(nats.nc);
    await waitFor('the engine to apply every input', async () => (await ackFloor(jsm)) >= events.length, 60_000);
    const answer = await fetch(`http://127.0.0.1:${port}/v1/events?limit=5`, { headers: { authorization: 'Bearer reader' } });
    expect(answer.status, serve.output()).toBe(200);
    expect(await answer.json()).toMatchObject({ events: [], watermark: 0 });
    serve.kill('SIGTERM');
    expect(await exited(serve), serve.output()).toBe(0);
    const store = await db.open();
    try {
      expect(await store.positions()).toEqual(new Map());
      expect(await store.counts()).toEqual({ events: 0, resolutions: 0, unmatched: 0, audit: 0, errors: 0, links: 0 });
    } finally {
      await store.close();
    }
  });
});
