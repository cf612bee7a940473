import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { defaultConfig } from '../src/domain/config.ts';
import { parseEventsQuery } from '../src/projection/query-params.ts';
import { ReadModelQueries } from '../src/projection/queries.ts';
import { openReadModel } from '../src/projection/open-store.ts';
import type { ReadModelStore } from '../src/projection/read-model.ts';
import { freshDatabase, withClient } from '../test/helpers/postgres.ts';
import { type FillInput, ReadModelFill } from '../test/helpers/read-model-fill.ts';
import { random, webLog } from '../test/helpers/web-log.ts';

const SOURCES = ['web', 'ios', 'server'];
const silent = pino({ level: 'silent' });

export interface Percentiles {
  p50: number;
  p95: number;
}

export interface QueryBenchResult {
  events: number;
  /** Rows written per second while loading, per database (through `store.apply`, batches of 5,000 inputs). */
  load: Record<'sqlite' | 'postgres', number>;
  /** Per query, per database. */
  queries: Record<string, Record<'sqlite' | 'postgres', Percentiles>>;
  /** Events of the user whose document is measured. */
  documentEvents: number;
}

/**
 * PostgreSQL's autovacuum visits freshly loaded tables soon after a bulk load (a million rows each
 * cross its thresholds) and competes with the queries for the two cores: one run measured a user
 * document at p95 125 ms while it ran, 43 ms in the next. And until the pages the load and the
 * vacuum dirtied are written out, a query that reads a page in may first have to write another
 * one (one run measured the category query at p95 61 ms right after the vacuum, 4 ms once it was
 * done). A server that has been running has its tables vacuumed and analyzed and its pages
 * written, so the bench does both before measuring: VACUUM (ANALYZE), as autovacuum would, then a
 * CHECKPOINT, as the checkpointer would (skipped for a user who may not run it). SQLite's read
 * model brings its statistics up to date on its own (`PRAGMA optimize`, sqlite-store.ts).
 */
function settle(url: string): Promise<void> {
  return withClient(url, async (client) => {
    await client.query('VACUUM (ANALYZE)');
    await client.query('CHECKPOINT').catch((error: { code?: string }) => {
      // 42501: insufficient privilege (CHECKPOINT needs a superuser or pg_checkpoint)
      if (error.code !== '42501') throw error;
    });
  });
}

export function percentiles(ms: number[]): Percentiles {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p95: at(0.95) };
}

export async function timed(runs: number, run: (i: number) => Promise<unknown>): Promise<Percentiles> {
  for (let i = 0; i < 20; i++) await run(i); // warm up
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await run(i);
    ms.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return percentiles(ms);
}

/**
 * The query API's answers over a read model of `events` web-shaped events (sessions, categories,
 * three sources), on SQLite and on PostgreSQL, loaded side by side from the same rows: p50 and
 * p95 of a session's events, a category in a one-day range, one page of a user's events, a user
 * document of about 1,000 events, and an identifier lookup.
 */
export async function benchQueries(events = 1_000_000, runs = 200): Promise<QueryBenchResult> {
  // one user of about 1,000 events over the whole log (the web log's skew gives none that large):
  // every thousandth event is theirs, half of them through their own id, half through their cookie
  const heavy = { kind: 'db_id', id: 'bench-heavy' };
  const log = webLog({ events, identifiers: 100_000, rich: true }).map((event, i) =>
    i % 1000 === 0 ? { ...event, ids: i % 2000 === 0 ? { db_id: heavy.id, cookie: 'bench-heavy-c' } : { cookie: 'bench-heavy-c' } } : event,
  );
  const inputs: FillInput[] = log.map((event, i) => ({ event, source: SOURCES[i % SOURCES.length]! }));
  const dir = mkdtempSync(join(tmpdir(), 'xref-bench-query-'));
  const database = await freshDatabase();
  const stores: Record<'sqlite' | 'postgres', ReadModelStore> = {
    sqlite: await openReadModel({ databaseUrl: `sqlite:${join(dir, 'xref.sqlite')}`, dataDir: dir, logger: silent }),
    postgres: await openReadModel({ databaseUrl: database.url, dataDir: dir, logger: silent }),
  };
  try {
    const config = defaultConfig();
    const fill = new ReadModelFill({});
    const loadMs = { sqlite: 0, postgres: 0 };
    const perUser = new Map<string, number>();
    let rows = 0;
    for (const store of Object.values(stores)) if (!(await store.claim('bench', 3_600_000))) throw new Error('the bench database is claimed');
    for (let i = 0; i <= inputs.length; i += 5000) {
      const batch = i < inputs.length ? fill.batch(inputs.slice(i, i + 5000)) : fill.finish();
      for (const r of batch.resolutions) perUser.set(r.user.id, (perUser.get(r.user.id) ?? 0) + 1);
      rows += batch.events.length + batch.resolutions.length + batch.unmatched.length + batch.audit.length + batch.errors.length;
      for (const dialect of ['sqlite', 'postgres'] as const) {
        const start = performance.now();
        await stores[dialect].apply(batch, 'bench');
        loadMs[dialect] += performance.now() - start;
      }
    }
    const documentEvents = perUser.get(heavy.id) ?? 0;
    await settle(database.url);
    // a sample of sessions, identifiers and users to ask for
    const rand = random(7);
    const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]!;
    const sample = Array.from({ length: runs + 20 }, () => pick(log));
    const users = [...perUser.keys()];
    const sampleUsers = Array.from({ length: runs + 20 }, () => pick(users));
    const context = { internal: config.internal };
    const day = (event: (typeof log)[number]) => event.timestamp!.slice(0, 10);

    const queries: QueryBenchResult['queries'] = {};
    for (const dialect of ['sqlite', 'postgres'] as const) {
      const api = new ReadModelQueries(stores[dialect], { config, userEventsCap: 10_000, logger: silent });
      const measure = async (name: string, run: (i: number) => Promise<unknown>) => {
        (queries[name] ??= {} as Record<'sqlite' | 'postgres', Percentiles>)[dialect] = await timed(runs, run);
      };
      await measure('session', (i) => api.events(parseEventsQuery({ session_id: sample[i]!.session_id }, context)));
      await measure('category + day', (i) => api.events(parseEventsQuery({ category: sample[i]!.category, after: day(sample[i]!), before: day(sample[i]!) }, context)));
      await measure('page of ?user=', (i) => api.events(parseEventsQuery({ user: `db_id:${sampleUsers[i]}` }, context)));
      await measure('user document', () => api.user(heavy));
      await measure('identifier lookup', (i) => {
        const [kind, value] = Object.entries(sample[i]!.ids).find(([k]) => k !== 'db_id') ?? Object.entries(sample[i]!.ids)[0]!;
        return api.identifier({ kind, value });
      });
    }
    return {
      events,
      load: { sqlite: rows / (loadMs.sqlite / 1000), postgres: rows / (loadMs.postgres / 1000) },
      queries,
      documentEvents,
    };
  } finally {
    for (const store of Object.values(stores)) await store.close();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
