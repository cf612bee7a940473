import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { type Config, defaultConfig } from '../src/domain/config.ts';
import { logger } from '../src/log.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { openReadModel } from '../src/projection/open-store.ts';
import { Projection } from '../src/projection/projection.ts';
import { EngineService } from '../src/service/engine-service.ts';
import { inputDecoder } from '../src/service/input.ts';
import { type Settings, loadSettings } from '../src/settings.ts';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { freshDatabase } from '../test/helpers/postgres.ts';
import { webLog } from '../test/helpers/web-log.ts';
import { type CpuSeconds, cpuMeter } from './cpu-time.ts';
import { engineThrough, publishAll } from './streaming.bench.ts';

const log = logger.child({ component: 'bench' });
const now = () => performance.now();

type Dialect = 'sqlite' | 'postgres';

/** One round: the engine on a fresh server, then the projection into a fresh SQLite file and a fresh PostgreSQL database. */
export interface ProjectionRound {
  /** The engine's rate on the log: from its start to every input acked (its outputs stored). */
  engine: number;
  /** The projection's rate on the same log and the streams the engine wrote: from its start to every stream written through its end. */
  projection: Record<Dialect, number>;
  /** The CPU time each took (cpu-time.ts). */
  cpu: Record<'engine' | Dialect, CpuSeconds>;
  /** Which database was written first. */
  first: Dialect;
}

export interface ProjectionBenchResult {
  events: number;
  rounds: ProjectionRound[];
}

/**
 * A web-shaped log of `events` published, and the engine run over it: its rate from its start to
 * every input acked (its outputs stored), the CPU time that took, and the settings it ran with.
 */
export async function engineOnLog(nc: NatsConnection, nats: { url: string; pid: number }, events: number, config: Config): Promise<{ settings: Settings; engineRate: number; engineCpu: CpuSeconds }> {
  const jsm = await jetstreamManager(nc);
  await ensureTopology(nc, jsm, log);
  await publishAll(nc, webLog({ events, identifiers: events / 10, seed: 5, rich: true }));
  const settings = loadSettings({ NATS_URL: nats.url });
  const start = now();
  const cpu = cpuMeter(nats.pid);
  const engine = await EngineService.start({ nc, config, settings, logger: log });
  await engineThrough(engine, jsm, events);
  const engineRate = events / ((now() - start) / 1000);
  const engineCpu = cpu.read();
  await engine.stop();
  return { settings, engineRate, engineCpu };
}

/** Rounds of the projection and activity parts in one run, unless asked otherwise (`XREF_BENCH_ROUNDS`). */
export const ROUNDS = 5;

/**
 * Whether the projection keeps up with the engine, in `rounds` rounds of one run: each on a fresh
 * server, the engine on a log of `events` web-shaped events, then the projection of all five
 * streams (the log and what the engine wrote) into a fresh SQLite file and a fresh PostgreSQL
 * database, taking turns to go first, each timed from its start to its last write, with the CPU
 * time each phase took (cpu-time.ts). The machine's speed drifts over a run: the rounds give a
 * ratio no one moment decides.
 */
export async function benchProjection(events = 200_000, rounds = ROUNDS): Promise<ProjectionBenchResult> {
  const result: ProjectionRound[] = [];
  for (let round = 0; round < rounds; round++) result.push(await projectionRound(events, round % 2 === 0 ? 'sqlite' : 'postgres'));
  return { events, rounds: result };
}

async function projectionRound(events: number, first: Dialect): Promise<ProjectionRound> {
  const server = await startNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'xref-bench-projection-'));
  const pg = await freshDatabase();
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  try {
    const config = defaultConfig();
    const { settings, engineRate, engineCpu } = await engineOnLog(nc, server, events, config);
    const projection = { sqlite: 0, postgres: 0 };
    const cpu = { engine: engineCpu } as ProjectionRound['cpu'];
    const urls = { sqlite: `sqlite:${join(dir, 'xref.sqlite')}`, postgres: pg.url };
    for (const dialect of first === 'sqlite' ? (['sqlite', 'postgres'] as const) : (['postgres', 'sqlite'] as const)) {
      const store = await openReadModel({ databaseUrl: urls[dialect], dataDir: dir, logger: log });
      const start = now();
      const meter = cpuMeter(server.pid);
      const running = await Projection.start({ nc, store, settings, logger: log, decode: inputDecoder(config) });
      await running.caughtUp();
      projection[dialect] = events / ((now() - start) / 1000);
      cpu[dialect] = meter.read();
      await running.stop();
      await store.close();
    }
    return { engine: engineRate, projection, cpu, first };
  } finally {
    await nc.close();
    await server.stop();
    await pg.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
