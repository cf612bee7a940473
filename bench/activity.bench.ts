import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import Database from 'better-sqlite3';
import { ActivityCounter } from '../src/activity/activity-counter.ts';
import { type ConfigInput, resolveConfig } from '../src/domain/config.ts';
import type { XrefEvent } from '../src/domain/envelope.ts';
import { logger } from '../src/log.ts';
import { openReadModel } from '../src/projection/open-store.ts';
import { Projection } from '../src/projection/projection.ts';
import { ReadModelQueries } from '../src/projection/queries.ts';
import type { ReadModelStore } from '../src/projection/read-model.ts';
import { inputDecoder } from '../src/service/input.ts';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { freshDatabase, withClient } from '../test/helpers/postgres.ts';
import { random } from '../test/helpers/web-log.ts';
import { type Percentiles, timed } from './query.bench.ts';
import { type CpuSeconds, cpuMeter } from './cpu-time.ts';
import { ROUNDS, engineOnLog } from './projection.bench.ts';

const log = logger.child({ component: 'bench' });
const now = () => performance.now();
type Dialect = 'sqlite' | 'postgres';

/** Buckets of the kinds the issue names: linked, a field, a name, an aggregate. */
const CONFIG: ConfigInput = {
  activity: {
    buckets: { auth: { linked: true }, anon: { linked: false }, buyers: { name: 'purchase' }, commerce: { field: 'category', equals: 'commerce' } },
    aggregates: { paying: ['buyers', 'commerce'] },
  },
};

/** One round: the engine on a fresh server, then the projection without and with the counts. */
export interface RatesRound {
  /** The engine's rate on the log (start to every input acked). */
  engine: number;
  /** The projection of all five streams into a fresh SQLite file, without and with the counts (start to written through the end, counts included). */
  projection: { off: number; on: number };
  /** With the counts on: the rate to every stream written (the counting may still be behind). */
  streamsOn: number;
  /** With the counts on: from every stream written to every input counted (ms). */
  tailMs: number;
  /** The CPU time of the engine and of each projection (cpu-time.ts). */
  cpu: Record<'engine' | 'off' | 'on', CpuSeconds>;
  /** Which projection ran first. */
  first: 'off' | 'on';
}

export interface ActivityBenchResult {
  events: number;
  rounds: RatesRound[];
  people: number;
  personDays: number;
  /** Rows per second written into the counts, while loading the lookups' database. */
  load: Record<Dialect, number>;
  lookups: Record<'dau' | 'wau' | 'mau', Record<Dialect, Percentiles>>;
  /** Bytes the counts' tables take per active person-day (their rows and indexes). */
  bytesPerPersonDay: Record<Dialect, number>;
}

/**
 * The active-people counts: (1) the projection's rate with them on and off, beside the engine's,
 * on one log, in `rounds` rounds of one run (each on a fresh server, the two projections taking
 * turns to go first: the machine's speed drifts over a run, and no one moment decides the ratio); (2) a year of counts of `people` people loaded through the counter's own
 * writes into SQLite and PostgreSQL, then the 365-day DAU, 52-week WAU and 12-month MAU lookups
 * (p50/p95 of 200 each, through ReadModelQueries as `GET /v1/activity` answers them) and the
 * bytes stored per active person-day.
 */
export async function benchActivity(events = 200_000, people = 1_000_000, rounds = ROUNDS): Promise<ActivityBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'xref-bench-activity-'));
  const config = resolveConfig(CONFIG);
  try {
    const rates: RatesRound[] = [];
    for (let round = 0; round < rounds; round++) rates.push(await projectionRates(events, dir, config, round % 2 === 0 ? 'off' : 'on'));
    const lookups = await lookupBench(people, dir, config);
    return { events, rounds: rates, ...lookups };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function projectionRates(events: number, dir: string, config: ReturnType<typeof resolveConfig>, first: 'off' | 'on'): Promise<RatesRound> {
  const server = await startNatsServer();
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const files = mkdtempSync(join(dir, 'round-'));
  try {
    const { settings, engineRate, engineCpu } = await engineOnLog(nc, server, events, config);
    const projection = { off: 0, on: 0 };
    const cpu = { engine: engineCpu } as RatesRound['cpu'];
    let tailMs = 0;
    let streamsOn = 0;
    for (const mode of first === 'off' ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const store = await openReadModel({ databaseUrl: `sqlite:${join(files, `projection-${mode}.sqlite`)}`, dataDir: files, logger: log });
      const start = now();
      const meter = cpuMeter(server.pid);
      const running = await Projection.start({ nc, store, settings, logger: log, decode: inputDecoder(config), ...(mode === 'on' ? { activity: config } : {}) });
      await running.caughtUp();
      const streamsDone = now();
      if (mode === 'on') await caughtUpWithin(running, 120_000);
      if (mode === 'on') [tailMs, streamsOn] = [now() - streamsDone, events / ((streamsDone - start) / 1000)];
      projection[mode] = events / ((now() - start) / 1000);
      cpu[mode] = meter.read();
      if (mode === 'on' && running.activityPosition < events) throw new Error(`the counts reached input ${running.activityPosition} of ${events}`);
      await running.stop();
      await store.close();
    }
    return { engine: engineRate, projection, streamsOn, tailMs, cpu, first };
  } finally {
    await nc.close();
    await server.stop();
    rmSync(files, { recursive: true, force: true });
  }
}

/** Waits for the counts to reach the end of the log, failing the bench rather than waiting forever when they cannot. */
async function caughtUpWithin(running: Projection, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the counts did not reach the end of the log within ${ms / 1000} s (counted through input ${running.activityPosition})`)), ms);
  });
  try {
    await Promise.race([running.activityCaughtUp(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A year of activity: each person active on 1 to 4 days of 2024, a third of them signed in. */
function* yearOfPeople(people: number): Generator<{ seq: number; event: XrefEvent; timeMs: number; user?: string }> {
  const draw = random(17);
  const next = (k: number) => Math.floor(draw() * k);
  const start = Date.UTC(2024, 0, 1);
  let seq = 0;
  for (let p = 0; p < people; p++) {
    const days = 1 + next(4);
    const user = next(3) === 0 ? `u${p}` : undefined;
    for (let d = 0; d < days; d++) {
      seq++;
      const timeMs = start + next(366) * 86_400_000 + next(86_400_000);
      const ids: Record<string, string> = user === undefined ? { cookie: `c${p}` } : { cookie: `c${p}`, user_id: user };
      yield { seq, timeMs, user, event: { id: `e${seq}`, ids, name: next(10) === 0 ? 'purchase' : 'pageview', timestamp: new Date(timeMs).toISOString() } };
    }
  }
}

async function lookupBench(people: number, dir: string, config: ReturnType<typeof resolveConfig>) {
  const database = await freshDatabase();
  const stores: Record<Dialect, ReadModelStore> = {
    sqlite: await openReadModel({ databaseUrl: `sqlite:${join(dir, 'lookups.sqlite')}`, dataDir: dir, logger: log }),
    postgres: await openReadModel({ databaseUrl: database.url, dataDir: dir, logger: log }),
  };
  try {
    const written = { rows: 0, sqlite: 0, postgres: 0 };
    const marks = { sqlite: { generation: 0, seq: 0 }, postgres: { generation: 0, seq: 0 } };
    for (const store of Object.values(stores)) await store.claim('bench', 3_600_000);
    // the counter as the projection runs it, its changes written every 100,000 inputs into both
    const counter = new ActivityCounter(config);
    const write = async (seq: number) => {
      const changes = counter.takeChanges();
      written.rows += changes.rows.length + changes.counts.length + changes.keys.length + changes.pending.length;
      for (const dialect of ['sqlite', 'postgres'] as const) {
        const started = now();
        await stores[dialect].activity.write(changes, marks[dialect], seq, 'bench');
        marks[dialect] = { generation: 0, seq };
        written[dialect] += now() - started;
      }
    };
    let seq = 0;
    for (const input of yearOfPeople(people)) {
      seq = input.seq;
      counter.input(seq, input.event, input.timeMs);
      if (input.user !== undefined) counter.resolved(seq, seq, { kind: 'user_id', id: input.user });
      counter.endOfInput(seq);
      if (seq % 100_000 === 0) await write(seq);
    }
    await write(seq);
    const load = { sqlite: written.rows / (written.sqlite / 1000), postgres: written.rows / (written.postgres / 1000) };
    const personDays = [...counter.rows()].filter((row) => row.period === 'day').length;
    const lookups = { dau: {}, wau: {}, mau: {} } as ActivityBenchResult['lookups'];
    const bytesPerPersonDay = { sqlite: 0, postgres: 0 };
    for (const dialect of ['sqlite', 'postgres'] as const) {
      const queries = new ReadModelQueries(stores[dialect], { config, userEventsCap: 100, logger: log });
      const ask = (period: string, from: string, to: string) => (i: number) => queries.activity({ period, from, to, buckets: i % 2 === 0 ? ['all'] : ['auth', 'paying'] });
      lookups.dau[dialect] = await timed(200, ask('day', '2024-01-01', '2024-12-31'));
      lookups.wau[dialect] = await timed(200, ask('week', '2024-01-01', '2024-12-30'));
      lookups.mau[dialect] = await timed(200, ask('month', '2024-01-01', '2025-01-01'));
    }
    bytesPerPersonDay.sqlite = sqliteBytes(join(dir, 'lookups.sqlite')) / personDays;
    bytesPerPersonDay.postgres = (await postgresBytes(database.url)) / personDays;
    return { people, personDays, load, lookups, bytesPerPersonDay };
  } finally {
    for (const store of Object.values(stores)) await store.close();
    await database.drop();
  }
}

/** The bytes of the counts' tables and indexes in a SQLite file. */
function sqliteBytes(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT sum(pgsize) AS bytes FROM dbstat WHERE name LIKE 'activity%'").get() as { bytes: number }).bytes;
  } finally {
    db.close();
  }
}

function postgresBytes(url: string): Promise<number> {
  return withClient(url, async (client) => {
    await client.query('VACUUM ANALYZE');
    const { rows } = await client.query<{ bytes: string }>("SELECT sum(pg_total_relation_size(c.oid)) AS bytes FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'activity%'");
    return Number(rows[0]?.bytes ?? 0);
  });
}
