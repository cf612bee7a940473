import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectCommand } from '../../src/cli/project-command.ts';
import { defaultConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { STREAMS, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { Projection } from '../../src/projection/projection.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { inputDecoder } from '../../src/service/input.ts';
import { replayLog } from '../../src/service/replay.ts';
import { type Settings, loadSettings } from '../../src/settings.ts';
import { capture } from '../helpers/cli.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/postgres.ts';
import { referenceDump } from '../helpers/projection-reference.ts';
import { publishEvents, waitFor } from '../helpers/streams.ts';
import { webLog } from '../helpers/web-log.ts';

const log = logger.child({ component: 'test-projection' });
const config = defaultConfig();
const decode = inputDecoder(config);

/** Settings for a test: small batches, a short claim TTL (a standby takes over within 2 s). */
function testSettings(natsUrl: string, env: Record<string, string> = {}): Settings {
  return loadSettings({ NATS_URL: natsUrl, XREF_PROJECTION_BATCH: '300', XREF_PROJECTION_MS: '20', XREF_LEASE_TTL_MS: '2000', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')), ...env });
}

/** A SQLite read model in a temp file, and its URL. */
async function sqliteStore(): Promise<{ store: ReadModelStore; url: string }> {
  const url = `sqlite:${join(mkdtempSync(join(tmpdir(), 'xref-rm-')), 'xref.sqlite')}`;
  return { store: await openReadModel({ databaseUrl: url, dataDir: tmpdir(), logger: log }), url };
}

/** Events with identifiers, plus inputs the engine rejects (so XREF_ERRORS has records too). */
function someLog(events: number, seed: number): { events: XrefEvent[]; rejected: Array<{ id: string; body: string }> } {
  const rejected = Array.from({ length: 5 }, (_, i) => ({ id: `bad-${seed}-${i}`, body: JSON.stringify({ id: `bad-${seed}-${i}`, ids: {} }) }));
  // ids of their own per seed: the streams' duplicate window would drop a second log's `ev-0`
  const log = webLog({ events, identifiers: Math.ceil(events / 6), seed, rich: true }).map((event) => ({ ...event, id: `s${seed}-${event.id}` }));
  return { events: log, rejected };
}

/** Publishes the log and runs the engine over it until it applied every input. */
async function runEngine(nc: NatsConnection, settings: Settings, input: ReturnType<typeof someLog>): Promise<void> {
  const engine = await EngineService.start({ nc, config, settings, logger: log });
  const before = engine.seq;
  await publishEvents(nc, input.events);
  const publisher = new JetStreamPublisher(nc, log);
  await Promise.all(input.rejected.map((raw) => publisher.publish(subjects.in('test'), raw.body, raw.id)));
  await publisher.close();
  await waitFor('the engine to apply the log', () => engine.seq >= before + input.events.length + input.rejected.length);
  await engine.stop();
}

/** Waits until the projection has written every stream through its end now, and counted the active people of what the engine decided. */
async function caughtUp(projection: Projection): Promise<void> {
  await Promise.race([
    projection.caughtUp().then(() => projection.activityCaughtUp()),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`the projection did not catch up: at ${JSON.stringify([...projection.positions])}, active people counted through ${projection.activityPosition}`)), 30_000)),
  ]);
}

const start = (nc: NatsConnection, store: ReadModelStore, settings: Settings, extra: Partial<Parameters<typeof Projection.start>[0]> = {}) =>
  Projection.start({ nc, store, settings, logger: log, decode, activity: config, activityMs: 50, checkMs: 100, ...extra });

/** The whole test of a database: the live projection equals a clean one, a restart changes nothing. */
function projectsEveryStream(nats: ReturnType<typeof useNatsServer>, open: () => Promise<ReadModelStore>) {
  return async () => {
    const settings = testSettings(nats.server.url);
    const store = await open();
    try {
      const projection = await start(nats.nc, store, settings);
      await runEngine(nats.nc, settings, someLog(3000, 1));
      await caughtUp(projection);
      const dump = await store.dump();
      expect(dump).toEqual(await referenceDump(nats.nc, decode, config));
      const counts = await store.counts();
      const jsm = await jetstreamManager(nats.nc);
      const held = async (stream: string) => (await jsm.streams.info(stream)).state.messages;
      expect(counts.events).toBe((await held(STREAMS.in)) - 5);
      expect(counts.resolutions).toBe(await held(STREAMS.groups));
      expect(counts.unmatched).toBe(await held(STREAMS.unmatched));
      expect(counts.audit).toBe(await held(STREAMS.audit));
      expect(counts.errors).toBe(5);
      expect(counts.resolutions).toBeGreaterThan(1000);
      expect(projection.watermark).toBe((await jsm.streams.info(STREAMS.in)).state.last_seq);
      // XREF_GROUPS is read headers only: the engine's messages carry what the projection keeps
      expect(projection.stats.get('groups')!.readWhole).toBe(0);
      await projection.stop();

      // a restart reads nothing again and changes nothing
      const again = await start(nats.nc, store, settings);
      await caughtUp(again);
      expect(await store.dump()).toEqual(dump);
      expect(again.stats.get('in')!.inputs).toBe(0);
      // and goes on with what comes next
      await runEngine(nats.nc, settings, someLog(1000, 2));
      // a resolved event without its Xref-Resolution header (as another writer may publish it) is read whole
      const first = await jsm.streams.getMessage(STREAMS.groups, { seq: 1 });
      const publisher = new JetStreamPublisher(nats.nc, log);
      await publisher.publish(first!.subject, first!.data, 'without-the-header');
      await publisher.close();
      await caughtUp(again);
      expect(again.stats.get('groups')!.readWhole).toBe(1);
      await again.stop();
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, config));
    } finally {
      await store.close();
    }
  };
}

describe('the projection on SQLite', () => {
  const nats = useNatsServer('each');

  it('projects every stream as it holds it; a restart reads nothing again and changes nothing', projectsEveryStream(nats, async () => (await sqliteStore()).store));

  it('notices a stream made again while it runs (xref replay --republish, or other content) and reads it anew: no stale rows', async () => {
    const settings = testSettings(nats.server.url);
    const { store } = await sqliteStore();
    const projection = await start(nats.nc, store, settings);
    try {
      await runEngine(nats.nc, settings, someLog(2000, 3));
      await caughtUp(projection);
      const before = projection.positions.get('groups')!;

      // the output streams deleted and published again, the same content in new streams
      await replayLog({ nc: nats.nc, natsUrl: nats.server.url, config, logger: log, republish: true });
      await waitFor('the republished streams to be read anew', () => projection.positions.get('groups')?.created !== before.created);
      await caughtUp(projection);
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, config));
      expect(projection.stats.get('groups')!.resets).toBe(1);

      // other content: XREF_GROUPS with more messages than before (only its creation time tells), XREF_AUDIT empty
      const jsm = await jetstreamManager(nats.nc);
      const groupsEnd = (await jsm.streams.info(STREAMS.groups)).state.last_seq;
      const auditCreated = projection.positions.get('audit')!.created;
      await jsm.streams.delete(STREAMS.groups);
      await jsm.streams.delete(STREAMS.audit);
      await ensureTopology(nats.nc, jsm, log);
      const publisher = new JetStreamPublisher(nats.nc, log);
      const other: XrefEvent[] = Array.from({ length: groupsEnd + 10 }, (_, i) => ({ id: `other-${i}`, ids: { db_id: `u${i % 7}` } }));
      await Promise.all(
        other.map((event, i) =>
          publisher.publish(subjects.group('db_id', `u${i % 7}`), JSON.stringify({ seq: i + 1, user: { kind: 'db_id', id: `u${i % 7}` }, via: { kind: 'db_id', value: `u${i % 7}` }, event }), `other-${i}`),
        ),
      );
      await publisher.close();
      await waitFor('the new XREF_GROUPS to be read', () => projection.positions.get('groups')?.seq === other.length);
      await waitFor('the rows of the old XREF_AUDIT to go', async () => (await store.counts()).audit === 0 && !projection.positions.has('audit'));
      await caughtUp(projection);
      const dump = await store.dump();
      expect(dump).toEqual(await referenceDump(nats.nc, decode, config));
      expect(dump.resolutions).toHaveLength(other.length);
      expect(dump.links).toEqual([]);
      expect(auditCreated).not.toBe((await jsm.streams.info(STREAMS.audit)).created);
    } finally {
      await projection.stop();
      await store.close();
    }
  });

  it('notices at its start a stream made again while it was stopped', async () => {
    const settings = testSettings(nats.server.url);
    const { store } = await sqliteStore();
    try {
      const first = await start(nats.nc, store, settings);
      await runEngine(nats.nc, settings, someLog(1500, 4));
      await caughtUp(first);
      await first.stop();
      await replayLog({ nc: nats.nc, natsUrl: nats.server.url, config, logger: log, republish: true });
      const second = await start(nats.nc, store, settings);
      await caughtUp(second);
      await second.stop();
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, config));
      expect(second.stats.get('groups')!.resets).toBe(1);
      expect(second.stats.get('in')!.resets).toBe(0);
      expect(second.stats.get('in')!.inputs).toBe(0);
    } finally {
      await store.close();
    }
  });

  // after a reconnect each consumer is made again where it was read (the server may have counted
  // inputs as delivered that never arrived): the projection goes on within seconds
  it('a nats-server killed and restarted mid-way: the projection waits for it and goes on, nothing lost or doubled', { timeout: 60_000 }, async () => {
    const settings = testSettings(nats.server.url);
    await runEngine(nats.nc, settings, someLog(10_000, 8));
    const { store } = await sqliteStore();
    const projection = await start(nats.nc, store, settings);
    try {
      await waitFor('a part to be projected', () => projection.watermark >= 500);
      const ends = await projection.ends();
      expect(projection.watermark).toBeLessThan(ends.get('in')!.seq);
      await nats.server.restart();
      await Promise.race([
        projection.caughtUp(ends).then(() => projection.activityCaughtUp()),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`not caught up: ${JSON.stringify([...projection.positions])} of ${JSON.stringify([...ends])}, ${JSON.stringify([...projection.stats])}`)), 30_000),
        ),
      ]);
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, config));
    } finally {
      await projection.stop();
      await store.close();
    }
  });

  it('one projection writes into a database: a second stands by and takes over when the first stops', async () => {
    const settings = testSettings(nats.server.url);
    const { store } = await sqliteStore();
    try {
      const first = await start(nats.nc, store, settings);
      const second = await start(nats.nc, store, settings);
      await waitFor('one to hold the database', () => first.role === 'active');
      expect(second.role).toBe('standby');
      await runEngine(nats.nc, settings, someLog(1000, 5));
      await caughtUp(first);
      await first.stop();
      await waitFor('the standby to take over', () => second.role === 'active');
      await runEngine(nats.nc, settings, someLog(1000, 6));
      await caughtUp(second);
      await second.stop();
      expect(await store.dump()).toEqual(await referenceDump(nats.nc, decode, config));
    } finally {
      await store.close();
    }
  });
});

describe('xref project --rebuild', () => {
  const nats = useNatsServer();
  let live: { store: ReadModelStore; url: string };
  let dump: Awaited<ReturnType<ReadModelStore['dump']>>;

  beforeAll(async () => {
    const settings = testSettings(nats.server.url);
    live = await sqliteStore();
    const projection = await start(nats.nc, live.store, settings);
    await runEngine(nats.nc, settings, someLog(3000, 7));
    await caughtUp(projection);
    await projection.stop();
    dump = await live.store.dump();
  });
  afterAll(async () => {
    await live?.store.close();
  });

  const rebuild = async (url: string) => {
    const { io, out } = capture();
    const code = await projectCommand({ rebuild: true }, io, testSettings(nats.server.url, { XREF_DATABASE_URL: url }), new AbortController().signal);
    return { code, out };
  };

  it('gives a new database the rows the live projection wrote, with a summary', async () => {
    const target = await sqliteStore();
    await target.store.close();
    const { code, out } = await rebuild(target.url);
    expect(out.stderr).toBe('');
    expect(code).toBe(0);
    expect(out.stdout).toMatch(/^rebuilt the read model \(SQLite .*xref\.sqlite\) in [\d.]+ s: [\d,]+ messages of 5 streams, 3,005 inputs, [\d,]+ events\/s\nrows: events 3,000, /);
    const rebuilt = await openReadModel({ databaseUrl: target.url, dataDir: tmpdir(), logger: log });
    try {
      expect(await rebuilt.dump()).toEqual(dump);
    } finally {
      await rebuilt.close();
    }
  });

  it('gives the live database itself the same rows again', async () => {
    const { code } = await rebuild(live.url);
    expect(code).toBe(0);
    expect(await live.store.dump()).toEqual(dump);
  });

  it('refuses, exit 2, while another projection writes into the database, saying what to stop', async () => {
    const projection = await start(nats.nc, live.store, testSettings(nats.server.url));
    try {
      await waitFor('the projection to hold the database', () => projection.role === 'active');
      const { code, out } = await rebuild(live.url);
      expect(code).toBe(2);
      expect(out.stderr).toMatch(/another projection writes into the read model \(SQLite .*\): stop it first \(`xref serve`.*`xref project`\)/);
    } finally {
      await projection.stop();
    }
    expect(await live.store.dump()).toEqual(dump);
  });
});

describe('the projection on PostgreSQL', () => {
  const nats = useNatsServer('each');
  let database: FreshDatabase;
  beforeAll(async () => {
    database = await freshDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it(
    'projects every stream as it holds it; a restart reads nothing again and changes nothing',
    projectsEveryStream(nats, () => openReadModel({ databaseUrl: database.url, dataDir: tmpdir(), logger: log })),
  );
});
