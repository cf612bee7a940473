import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { resolveConfig } from '../domain/config.ts';
import { componentLogger } from '../log.ts';
import { ensureTopology } from '../nats/topology.ts';
import { projectionOwner } from '../projection/claim.ts';
import { openReadModel, readModelLocation } from '../projection/open-store.ts';
import { redactUrl } from '../projection/postgres-store.ts';
import { Projection, type ProjectionOptions } from '../projection/projection.ts';
import { PROJECTED_STREAMS, type ReadModelStore } from '../projection/read-model.ts';
import { inputDecoder } from '../service/input.ts';
import type { Settings } from '../settings.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';
import { fmt, progressBar } from './progress.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface ProjectCommandOptions {
  /** Empty the read model and rebuild it from the streams up to their current end, then exit. */
  rebuild?: boolean;
  /** JSON config file (default: XREF_CONFIG). */
  config?: string;
}

/**
 * `xref project`: fills the read model from the streams until SIGINT/SIGTERM, then writes what it
 * read and exits 0 (standing by while another projection writes into the database). With
 * `--rebuild`: takes the database (exit 2 if another projection holds it), deletes every row,
 * reads every stream again up to its last message as of the start, with a progress bar on a
 * terminal, prints a summary and exits 0.
 */
export async function projectCommand(options: ProjectCommandOptions, io: CommandIo, settings: Settings, signal: AbortSignal): Promise<number> {
  const logger = componentLogger('project');
  // the same config as the engine: an input it rejects is no event in the read model either
  const config = resolveConfig(loadConfigFile(options.config ?? settings.configFile));
  const decode = inputDecoder(config);
  const running = await connectOrEmbed(settings.natsUrl, settings.dataDir, 'xref-project');
  try {
    await ensureTopology(running.nc, await jetstreamManager(running.nc), logger);
    const store = await openReadModel({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger: componentLogger('read-model') });
    try {
      const base = { nc: running.nc, store, settings, logger: componentLogger('projection'), decode, ...(settings.noActivity ? {} : { activity: config }) };
      return options.rebuild === true ? await rebuild(base, io, settings, signal, logger) : await projectUntilStopped(base, signal);
    } finally {
      await store.close();
    }
  } finally {
    await running.stop();
  }
}

type BaseOptions = Pick<ProjectionOptions, 'nc' | 'store' | 'settings' | 'logger' | 'decode' | 'activity'>;

/** Resolves once `signal` is aborted. */
function aborted(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Projects until stopped; exit 1 if the projection stopped for good before. */
async function projectUntilStopped(base: BaseOptions, signal: AbortSignal): Promise<number> {
  let failed: (() => void) | undefined;
  const failure = new Promise<void>((resolve) => (failed = resolve));
  const projection = await Projection.start({ ...base, onFailure: () => failed?.() });
  await Promise.race([aborted(signal), failure]);
  await projection.stop();
  return projection.error === undefined ? 0 : 1;
}

/** Where the read model is, for messages (a PostgreSQL URL without its password). */
function describeStore(settings: Settings): string {
  const location = readModelLocation(settings.databaseUrl, settings.dataDir);
  return location.dialect === 'sqlite' ? `SQLite ${location.path}` : `PostgreSQL ${redactUrl(location.url)}`;
}

/**
 * Claims the database for a rebuild, or says what to stop. A claim left by a projection that died
 * lapses after its TTL: it is watched that long before the rebuild is refused.
 */
async function claimForRebuild(store: ReadModelStore, owner: string, ttlMs: number): Promise<boolean> {
  const deadline = performance.now() + ttlMs + 500;
  for (;;) {
    if (await store.claim(owner, ttlMs)) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, ttlMs / 4)));
  }
}

async function rebuild(base: BaseOptions, io: CommandIo, settings: Settings, signal: AbortSignal, logger: Logger): Promise<number> {
  const { store } = base;
  const where = describeStore(settings);
  const owner = projectionOwner();
  if (!(await claimForRebuild(store, owner, settings.leaseTtlMs))) {
    io.stderr.write(
      `xref project --rebuild: another projection writes into the read model (${where}): stop it first (\`xref serve\`, which projects unless --no-projection, or \`xref project\`), then rebuild\n`,
    );
    return 2;
  }
  let failed: ((error: Error) => void) | undefined;
  const failure = new Promise<Error>((resolve) => (failed = resolve));
  let projection: Projection | undefined;
  let progress: ReturnType<typeof progressBar> | undefined;
  const endProgress = () => {
    progress?.stop();
    progress = undefined;
  };
  try {
    const started = performance.now();
    await store.resetStreams(PROJECTED_STREAMS, owner);
    logger.info({ store: where }, 'the read model is emptied: rebuilding it from the streams');
    projection = await Projection.start({ ...base, owner, onFailure: (error) => failed?.(error) });
    // what the streams hold now is what the rebuild reads (the projection goes on past it until it stops)
    const ends = await projection.ends();
    const total = [...ends.values()].reduce((sum, end) => sum + end.seq, 0);
    progress = progressBar(total, 'messages');
    const live = projection;
    const done = () => [...ends].reduce((sum, [stream, end]) => sum + Math.min(end.seq, live.positions.get(stream)?.seq ?? 0), 0);
    projection.onWritten(() => progress?.update(done()));
    // then the active-people counts, through what the engine has decided of those inputs
    const outcome = await Promise.race([
      projection.caughtUp(ends).then(() => live.activityCaughtUp().then(() => 'done' as const)),
      failure,
      aborted(signal).then(() => 'stopped' as const),
    ]);
    progress?.update(done());
    endProgress();
    await projection.stop();
    if (outcome !== 'done') {
      io.stderr.write(
        outcome === 'stopped'
          ? `xref project --rebuild: stopped at ${fmt(done())} of ${fmt(total)} messages: the read model holds what was read; run it again to rebuild it whole\n`
          : `xref project --rebuild: the projection stopped: ${outcome.message}\n`,
      );
      return 1;
    }
    const seconds = (performance.now() - started) / 1000;
    const counts = await store.counts();
    const inputs = ends.get('in')?.seq ?? 0;
    io.stdout.write(
      [
        `rebuilt the read model (${where}) in ${seconds.toFixed(2)} s: ${fmt(total)} messages of ${ends.size} streams, ${fmt(inputs)} inputs, ${fmt(inputs / Math.max(seconds, 1e-9))} events/s`,
        `rows: ${Object.entries(counts)
          .map(([table, n]) => `${table} ${fmt(n)}`)
          .join(', ')}`,
        ...(base.activity === undefined ? [] : [`active people counted through input ${fmt(projection.activityPosition)}`]),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    endProgress();
    await projection?.stop();
    await store.release(owner).catch(() => undefined);
  }
}
