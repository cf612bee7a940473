import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { resolveConfig } from '../domain/config.ts';
import { type Settings, settingDefaults } from '../settings.ts';
import { XrefError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { Lease, describeHolder, thisProcess } from '../nats/lease.ts';
import { JetStreamPublisher } from '../nats/publisher.ts';
import { NatsStateStore } from '../nats/state-store.ts';
import { ensureTopology } from '../nats/topology.ts';
import { ENGINE_CONSUMER } from '../service/engine-service.ts';
import { compareStates, replayLog } from '../service/replay.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';
import { fmt, progressBar } from './progress.ts';
import type { NatsTarget } from './publish-command.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface ReplayCommandOptions {
  fromSeq?: number;
  verify?: boolean;
  republish?: boolean;
  config?: string;
}

/**
 * `xref replay`: rebuilds the engine's state from XREF_IN. With `--verify`, replays up to the live
 * checkpoint and reports where the rebuilt state differs (exit 1 if it does), changing nothing.
 * Otherwise the rebuilt state replaces the live one (the engine must be stopped), and with
 * `--republish` the outputs are published again into emptied output streams.
 */
export async function replayCommand(options: ReplayCommandOptions, io: CommandIo, target: NatsTarget & Partial<Pick<Settings, 'configFile' | 'leaseTtlMs' | 'dedupLookback' | 'errorsPerSecond'>>): Promise<number> {
  const logger = componentLogger('replay');
  const config = resolveConfig(loadConfigFile(options.config ?? target.configFile));
  const running = await connectOrEmbed(target.natsUrl, target.dataDir, 'xref-replay');
  try {
    const { nc } = running;
    const jsm = await jetstreamManager(nc);
    await ensureTopology(nc, jsm, logger);
    const publisher = new JetStreamPublisher(nc, logger.child({ component: 'publisher' }));
    const state = new NatsStateStore(nc, jetstream(nc), publisher, logger.child({ component: 'state' }));
    // a rebuild takes the engine lease, so that no engine applies inputs while it rewrites the state
    const lease = options.verify ? undefined : new Lease(nc, ENGINE_CONSUMER, thisProcess(), target.leaseTtlMs ?? settingDefaults().leaseTtlMs, logger.child({ component: 'lease' }));
    try {
      const live = options.verify ? await state.loadImage() : undefined;
      if (lease !== undefined) {
        await takeLease(lease);
        state.epoch = lease.epoch;
      }
      let progress: ReturnType<typeof progressBar> | undefined;
      const result = await replayLog({
        nc,
        natsUrl: target.natsUrl,
        config,
        logger,
        dedupWindow: target.dedupLookback ?? settingDefaults().dedupLookback,
        errorsPerSecond: target.errorsPerSecond ?? settingDefaults().errorsPerSecond,
        ...(options.fromSeq === undefined ? {} : { fromSeq: options.fromSeq }),
        ...(live === undefined ? {} : { toSeq: live.seq }),
        republish: options.republish === true && !options.verify,
        onProgress: (done, total) => {
          progress ??= progressBar(total, 'inputs');
          progress.update(done);
        },
      });
      progress?.stop();
      io.stdout.write(
        [
          `replayed ${fmt(result.events)} events (${fmt(result.rejected)} rejected inputs) in ${result.seconds.toFixed(2)} s: ${fmt(result.events / Math.max(result.seconds, 1e-9))} events/s`,
          `identifiers ${fmt(result.identifiers)}, links ${fmt(result.links)}, buffering actors ${fmt(result.image.identifiers.size)}, state at input ${fmt(result.image.seq)}`,
          '',
        ].join('\n'),
      );
      if (live !== undefined) {
        const differences = compareStates(live, result.image);
        if (differences.length === 0) {
          io.stdout.write(`verify: the rebuilt state equals the live state at input ${fmt(live.seq)}\n`);
          return 0;
        }
        io.stdout.write(`verify: ${differences.length} differences from the live state at input ${fmt(live.seq)}\n`);
        for (const d of differences.slice(0, 20)) io.stdout.write(`  ${d.what} ${d.key}: live ${JSON.stringify(d.live)} / rebuilt ${JSON.stringify(d.rebuilt)}\n`);
        return 1;
      }
      await state.replaceWith(result.image);
      io.stdout.write(`the rebuilt state is now the live state; \`xref serve\` resumes after input ${fmt(result.image.seq)}\n`);
      return 0;
    } finally {
      await lease?.release();
      await publisher.close();
    }
  } finally {
    await running.stop();
  }
}

/**
 * Takes the engine lease for a rebuild, or refuses naming its holder. A lease left by an engine
 * that died lapses after its TTL: it is watched that long before the rebuild is refused.
 */
async function takeLease(lease: Lease): Promise<void> {
  const deadline = performance.now() + lease.ttlMs + 500;
  for (;;) {
    const attempt = await lease.tryAcquire();
    if (attempt.acquired) return;
    if (performance.now() > deadline) {
      throw new XrefError(
        'XREF_INVALID_ARGUMENT',
        `the engine lease is held by ${describeHolder(attempt.heldBy)}: stop \`xref serve\` (and its standbys) before a replay rewrites the state, or use --verify`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, lease.ttlMs / 4)));
  }
}
