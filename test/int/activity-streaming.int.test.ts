/**
 * The streaming active-people counts: the engine and the projection on a real nats-server, the
 * counts kept in a real read model (SQLite, PostgreSQL), compared with the offline oracle
 * (`activityOfLog`, what `xref activity FILE` prints) on random logs, frozen and restated counts
 * included; the projection stopped and started again mid-way, a rebuild into a new database, and
 * `GET /v1/activity` with its 400s.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { activityOfLog } from '../../src/activity/offline-activity.ts';
import { activityCommand } from '../../src/cli/activity-command.ts';
import { projectCommand } from '../../src/cli/project-command.ts';
import { replayCommand } from '../../src/cli/replay-command.ts';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { Projection } from '../../src/projection/projection.ts';
import { ReadModelQueries } from '../../src/projection/queries.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { inputDecoder } from '../../src/service/input.ts';
import { type Settings, loadSettings } from '../../src/settings.ts';
import { capture } from '../helpers/cli.ts';
import { expectError, testApp } from '../helpers/http.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { freshDatabase } from '../helpers/postgres.ts';
import { publishEvents, waitFor } from '../helpers/streams.ts';
import { random } from '../helpers/web-log.ts';

const silent = pino({ level: 'silent' });
const CONFIG: ConfigInput = {
  relink: { cookie: 'latest', device: 'latest' },
  activity: {
    close: { day: 1, week: 1, month: 1 },
    extraTimeZones: ['America/New_York'],
    buckets: { auth: { linked: true }, anon: { linked: false }, site1: { field: 'data.site', equals: 'site1' }, site2: { field: 'data.site', equals: 'site2' }, signups: { name: '/^sign/' } },
    aggregates: { total: ['site1', 'site2'] },
  },
};
const config = resolveConfig(CONFIG);
const KEYS = ['all', 'auth', 'anon', 'site1', 'site2', 'signups', 'total'];

/** A random log, roughly in time order with late events: users, shared cookies and devices, junk, logins. */
function randomLog(seed: number, n: number): XrefEvent[] {
  const draw = random(seed);
  const next = (k: number) => Math.floor(draw() * k);
  return Array.from({ length: n }, (_, i) => {
    const ids: Record<string, string> = {};
    if (next(3) === 0) ids.db_id = `u${next(6)}`;
    if (next(4) !== 0) ids.cookie = next(12) === 0 ? 'undefined' : `c${next(15)}`;
    if (next(3) === 0) ids.device = `d${next(8)}`;
    if (Object.keys(ids).length === 0) ids.cookie = `c${next(15)}`;
    const day = Math.max(0, Math.floor(i / 6) - next(3));
    const timestamp = new Date(Date.UTC(2024, 2, 20 + day, next(24), next(60))).toISOString();
    return { id: `s${seed}-e${i}`, timestamp, ids, name: next(10) === 0 ? 'signup' : 'page', data: { site: next(2) === 0 ? 'site1' : 'site2' } };
  });
}

function testSettings(natsUrl: string): Settings {
  return loadSettings({ NATS_URL: natsUrl, XREF_PROJECTION_BATCH: '200', XREF_PROJECTION_MS: '20', XREF_LEASE_TTL_MS: '2000', XREF_CHECKPOINT_EVERY: '150', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')) });
}

const stores: ReadModelStore[] = [];
const drops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const store of stores) await store.close();
  for (const drop of drops) await drop();
});

async function sqliteStore(): Promise<{ store: ReadModelStore; url: string }> {
  const url = `sqlite:${join(mkdtempSync(join(tmpdir(), 'xref-activity-')), 'xref.sqlite')}`;
  const store = await openReadModel({ databaseUrl: url, dataDir: tmpdir(), logger: silent });
  stores.push(store);
  return { store, url };
}

async function postgresStore(): Promise<{ store: ReadModelStore; url: string }> {
  const database = await freshDatabase();
  drops.push(() => database.drop());
  const store = await openReadModel({ databaseUrl: database.url, dataDir: tmpdir(), logger: silent });
  stores.push(store);
  return { store, url: database.url };
}

const startProjection = (nc: NatsConnection, store: ReadModelStore, settings: Settings) =>
  Projection.start({ nc, store, settings, logger: silent, decode: inputDecoder(config), activity: config, activityMs: 30, checkMs: 100 });

/** Resolves once the projection wrote every stream and counted every input the engine decided, or fails after 30 s. */
async function settled(projection: Projection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    projection.caughtUp().then(() => projection.activityCaughtUp()),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`not caught up: activity at ${projection.activityPosition}`)), 30_000))),
  ]).finally(() => clearTimeout(timer));
}

/** Every answer of every period kind, zone and key. */
async function answers(read: (request: { period: string; buckets: string[]; tz?: string }) => Promise<unknown> | unknown) {
  const out: unknown[] = [];
  for (const period of ['day', 'week', 'month']) for (const tz of [undefined, 'America/New_York']) out.push(await read({ period, buckets: KEYS, ...(tz === undefined ? {} : { tz }) }));
  return out;
}

/** The API's answer as the counter's: the series, and the last closed period beside it. */
const asCounted = ({ watermark: _, closedThrough, ...series }: { watermark: number; closedThrough: string | null }) => ({ ...series, closedThrough });

describe('the streaming active-people counts', () => {
  const nats = useNatsServer('each');

  for (const [dialect, open] of [
    ['SQLite', sqliteStore],
    ['PostgreSQL', postgresStore],
  ] as const) {
    it(`equal the offline counts on random logs, frozen and restated ones included, with the projection stopped and started again mid-way (${dialect})`, { timeout: 90_000 }, async () => {
      const settings = testSettings(nats.server.url);
      const { store } = await open();
      const seed = dialect === 'SQLite' ? 7 : 11;
      const log = [...randomLog(seed, 400), ...randomLog(seed + 1, 400).map((e) => ({ ...e, timestamp: new Date(Date.parse(e.timestamp!) + 20 * 86_400_000).toISOString() }))];
      const engine = await EngineService.start({ nc: nats.nc, config, settings, logger: silent });
      let projection = await startProjection(nats.nc, store, settings);
      await publishEvents(nats.nc, log.slice(0, 500));
      await waitFor('the engine to apply the first part', () => engine.seq >= 500);
      await waitFor('some counting', () => projection.activityPosition > 0);
      await projection.stop();
      projection = await startProjection(nats.nc, store, settings);
      await publishEvents(nats.nc, log.slice(500));
      await waitFor('the engine to apply the log', () => engine.seq >= log.length);
      await settled(projection);
      expect(projection.activityPosition).toBe(log.length);
      const queries = new ReadModelQueries(store, { config, userEventsCap: 100, logger: silent });
      const { counter } = activityOfLog(log, CONFIG);
      const streamed = (await answers((request) => queries.activity(request))).map((a) => asCounted(a as { watermark: number; closedThrough: string | null }));
      expect(streamed).toEqual(await answers((request) => ({ ...counter.series(request), closedThrough: counter.closedThrough(request.period as 'day', request.tz) ?? null })));
      // the logs did restate closed periods: late logins moved anonymous activity to users
      expect(JSON.stringify(streamed)).toContain('restated');
      await projection.stop();
      await engine.stop();
    });
  }

  /** A random log through the engine (stopped after) and a projection counting into a fresh SQLite file, settled. */
  async function counted(seed: number) {
    const settings = testSettings(nats.server.url);
    const { store } = await sqliteStore();
    const log = randomLog(seed, 300);
    const engine = await EngineService.start({ nc: nats.nc, config, settings, logger: silent });
    const projection = await startProjection(nats.nc, store, settings);
    await publishEvents(nats.nc, log);
    await waitFor('the engine to apply the log', () => engine.seq >= log.length);
    await engine.stop();
    await settled(projection);
    return { settings, store, log, projection };
  }

  it('xref replay --republish under a running projection: the counts are deleted with the resolutions and counted again, the same', { timeout: 60_000 }, async () => {
    const { settings, store, log, projection } = await counted(5);
    const queries = new ReadModelQueries(store, { config, userEventsCap: 100, logger: silent });
    const before = await answers((request) => queries.activity(request));
    const groups = projection.positions.get('groups')!.created;
    const configFile = join(mkdtempSync(join(tmpdir(), 'xref-config-')), 'xref.json');
    writeFileSync(configFile, JSON.stringify(CONFIG));
    const { io, out } = capture();
    expect(await replayCommand({ republish: true, config: configFile }, io, settings), out.stderr).toBe(0);
    await waitFor('the republished groups to be read anew', () => projection.positions.get('groups')?.created !== groups);
    await settled(projection);
    expect(projection.activityPosition).toBe(log.length);
    expect(await answers((request) => queries.activity(request))).toEqual(before);
    await projection.stop();
  });

  it('a rebuild into a new database gives the same counts; GET /v1/activity answers them and refuses bad requests naming the parameter', { timeout: 60_000 }, async () => {
    const { settings, store, log, projection } = await counted(3);
    await projection.stop();

    const rebuilt = await sqliteStore();
    const { io, out } = capture();
    const configFile = join(mkdtempSync(join(tmpdir(), 'xref-config-')), 'xref.json');
    writeFileSync(configFile, JSON.stringify(CONFIG));
    const code = await projectCommand({ rebuild: true, config: configFile }, io, { ...settings, databaseUrl: rebuilt.url }, new AbortController().signal);
    expect(code, out.stderr).toBe(0);
    expect(out.stdout).toContain(`active people counted through input ${log.length}`);
    const activityTables = (dump: Readonly<Record<string, readonly unknown[]>>) => Object.fromEntries(Object.entries(dump).filter(([table]) => table.startsWith('activity_')));
    const reopened = await openReadModel({ databaseUrl: rebuilt.url, dataDir: tmpdir(), logger: silent });
    stores.push(reopened);
    expect(activityTables(await reopened.dump())).toEqual(activityTables(await store.dump()));

    const queries = new ReadModelQueries(reopened, { config, userEventsCap: 100, logger: silent });
    const { app } = testApp({ queries, readTokens: new Set(['rt']) });
    try {
      const get = (url: string, token = 'rt') => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      const refused = async (url: string, pattern: RegExp) => expect(expectError(await get(url), 400, 'XREF_INVALID_ARGUMENT').error).toMatch(pattern);
      const { counter } = activityOfLog(log, CONFIG);
      const ok = await get('/v1/activity?period=week&bucket=site1&bucket=total&tz=America/New_York&from=2024-03-18&to=2024-06-01');
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.json()).toEqual({
        ...counter.series({ period: 'week', buckets: ['site1', 'total'], tz: 'America/New_York', from: '2024-03-18', to: '2024-06-01' }),
        closedThrough: expect.stringMatching(/^2024-/),
        watermark: log.length,
      });
      expect(ok.json().series.at(-1)).toMatchObject({ counts: { site1: 0, total: 0 } });
      // xref activity with no file: the same document from the database, and from the server with --url
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      for (const remote of [{}, { url: address, token: 'rt' }]) {
        const cli = capture();
        const args = { period: 'week', bucket: ['site1', 'total'], tz: 'America/New_York', from: '2024-03-18', to: '2024-06-01', json: true, ...remote };
        expect(await activityCommand(undefined, args, cli.io, () => ({ ...settings, databaseUrl: rebuilt.url }))).toBe(0);
        expect(JSON.parse(cli.out.stdout)).toEqual(ok.json());
      }
      const table = capture();
      await activityCommand(undefined, { period: 'month', bucket: ['auth'] }, table.io, () => ({ ...settings, databaseUrl: rebuilt.url }));
      expect(table.out.stdout).toMatch(/month \(UTC\)[\s\S]*auth[\s\S]*2024-03-01[\s\S]*█[\s\S]*counted through input 300/);
      const all = (await get('/v1/activity?period=month')).json();
      expect(Object.keys(all.series[0].counts)).toEqual(['all']);
      await refused('/v1/activity?period=day&from=2020-01-01&to=2024-01-01', /over the limit of 1000 periods/);
      await refused('/v1/activity?period=day&bucket=nope', /bucket "nope" is not a configured bucket/);
      await refused('/v1/activity?period=day&tz=Mars/Olympus', /IANA time zone.*"Mars\/Olympus"/);
      await refused('/v1/activity?period=day&tz=Europe/Paris', /not a zone activity is counted in/);
      await refused('/v1/activity?period=year', /period must be day, week or month, got "year"/);
      await refused('/v1/activity', /period is required/);
      await refused('/v1/activity?period=day&limit=5', /unknown parameter "limit"/);
      await refused('/v1/activity?period=day&from=yesterday', /from must be a date/);
      expect(expectError(await get('/v1/activity?period=day', 'wrong'), 401, 'XREF_UNAUTHORIZED').error).toMatch(/Authorization/);
    } finally {
      await app.close();
    }
  });
});
