import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ControlCommand } from '../domain/control.ts';
import { standingResolutions } from '../nats/standing-resolutions.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.ts';
import { ErrorBudget } from '../domain/error-budget.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import { type ControlContext, IdentityEngine } from '../engine/engine.ts';
import { StateImage } from '../engine/state-image.ts';
import { readLogAhead } from '../nats/log-read-worker.ts';
import { logBounds } from '../nats/log-reader.ts';
import { JetStreamPublisher } from '../nats/publisher.ts';
import { settingDefaults } from '../settings.ts';
import { STREAMS } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import { ControlStore, appliedHashes } from '../nats/control-store.ts';
import { inputDecoder, loggedInput } from './input.ts';
import { type OutboundMessage, messageSink } from './outputs.ts';

export interface ReplayOptions {
  readonly nc: NatsConnection;
  /** The server `nc` is connected to: the log is read ahead on a thread with a connection of its own. */
  readonly natsUrl: string;
  readonly config: Config;
  readonly logger: Logger;
  /** First input to apply (default 1: the whole log). */
  readonly fromSeq?: number;
  /** Last input to apply (default: the end of the log now). */
  readonly toSeq?: number;
  /** Publish the outputs again, into emptied output streams. */
  readonly republish?: boolean;
  readonly limits?: Limits;
  /** The live engine's dedup window (XREF_DEDUP_LOOKBACK), so the replay decides as it did (default: the whole log). */
  readonly dedupWindow?: number;
  /** The live engine's XREF_ERRORS_PER_SECOND, so a republish keeps the same error records (default: the setting's default). */
  readonly errorsPerSecond?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface ReplayResult {
  readonly events: number;
  /** Inputs refused (each an error record), and by reason. */
  readonly rejected: number;
  readonly rejectedBy: Readonly<Record<string, number>>;
  readonly identifiers: number;
  readonly links: number;
  readonly seconds: number;
  readonly image: StateImage;
}

/**
 * Rebuilds the engine's state from XREF_IN in memory, input by input, as the live engine did.
 * With `republish`, the output streams are emptied and filled again; XREF_ERRORS is not emptied
 * (it also holds the collector's and `xref publish`'s records, which no replay can make again):
 * the engine's error records are published into it again with the same ids, so the read model
 * keeps one row each.
 */
export async function replayLog(options: ReplayOptions): Promise<ReplayResult> {
  const { nc, logger } = options;
  const jsm = await jetstreamManager(nc);
  const bounds = await logBounds(jsm);
  const fromSeq = Math.max(options.fromSeq ?? 1, bounds.first, 1);
  const toSeq = Math.min(options.toSeq ?? bounds.last, bounds.last);
  const total = Math.max(0, toSeq - fromSeq + 1);
  const publisher = options.republish ? new JetStreamPublisher(nc, logger.child({ component: 'publisher' })) : undefined;
  if (publisher !== undefined) {
    // fresh streams: a purge would keep the duplicate window, which would drop every output again
    for (const stream of [STREAMS.groups, STREAMS.unmatched, STREAMS.audit]) await jsm.streams.delete(stream);
    await ensureTopology(nc, jsm, logger);
  }
  const publish = (out: OutboundMessage) => void publisher?.publish(out.subject, out.payload, out.msgId, undefined, out.header);
  // without --republish the outputs are counted, not built
  const sink = publisher === undefined ? { resolved: () => {}, unmatched: () => {}, audit: () => {} } : messageSink(publish, (): number => engine.seq);
  const control = new ControlStore(nc);
  const engine: IdentityEngine = new IdentityEngine({ config: options.config, sink, maxLiveActors: Number.MAX_SAFE_INTEGER, dedupWindow: options.dedupWindow, hasher: await control.hasher() });
  const decode = inputDecoder(options.config, options.limits ?? defaultLimits());
  const budget = new ErrorBudget(options.errorsPerSecond ?? settingDefaults().errorsPerSecond);
  /**
   * A forget is applied with the hashes its first application found (the user's inputs are gone);
   * an unlink retracts from what the user's subject held before it (with --republish, what this
   * replay published so far).
   */
  const controlContext = async (command: ControlCommand, seq: number): Promise<ControlContext> => {
    if (command.verb === 'forget') return { tombstone: appliedHashes(await control.get('forget', command.request)) };
    if (command.verb !== 'unlink') return {};
    const target = engine.unlinkTarget(command.identifier);
    if (target === undefined) return { unlink: { target, standing: [] } };
    await publisher?.flushed();
    return { unlink: { target, standing: await standingResolutions(jetstream(nc), jsm, target.user.ref, seq) } };
  };
  let events = 0;
  let rejected = 0;
  const started = process.hrtime.bigint();
  await readLogAhead(options.natsUrl, fromSeq, toSeq, async (batch) => {
    for (let i = 0; i < batch.seqs.length; i++) {
      const msg = loggedInput(batch, i);
      const input = decode(msg);
      if ('rejected' in input) {
        rejected++;
        engine.skip(msg.seq);
        if (budget.keep(input.record.reason, msg.publishedMs())) publish(input.rejected);
      } else if ('control' in input) {
        engine.control(input.control, msg.seq, await controlContext(input.control, msg.seq));
      } else {
        events++;
        engine.ingest(input.event, msg.seq, input.time);
      }
    }
    options.onProgress?.(batch.seqs[batch.seqs.length - 1]! - fromSeq + 1, total);
    if (publisher !== undefined && publisher.pending > 5000) await publisher.flushed();
  });
  options.onProgress?.(total, total);
  await publisher?.flushed();
  await publisher?.close();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const image = new StateImage().apply(engine.checkpoint());
  const size = engine.size;
  return { events, rejected, rejectedBy: budget.total, identifiers: size.links + size.buffering, links: size.links, seconds, image };
}

export interface StateDifference {
  readonly what: 'link' | 'identifier' | 'user' | 'seq';
  readonly key: string;
  readonly live: unknown;
  readonly rebuilt: unknown;
}

/** Where two states disagree: links, and actors compared by state value and context. */
export function compareStates(live: StateImage, rebuilt: StateImage): StateDifference[] {
  const out: StateDifference[] = [];
  if (live.seq !== rebuilt.seq) out.push({ what: 'seq', key: 'seq', live: live.seq, rebuilt: rebuilt.seq });
  const essence = (snapshot: unknown) => {
    if (snapshot === undefined) return undefined;
    const { value, context } = snapshot as { value: unknown; context: unknown };
    return JSON.stringify({ value, context });
  };
  const compare = (what: StateDifference['what'], a: Map<string, unknown>, b: Map<string, unknown>, view: (v: unknown) => unknown) => {
    for (const key of new Set([...a.keys(), ...b.keys()])) {
      const left = view(a.get(key));
      const right = view(b.get(key));
      if (JSON.stringify(left) !== JSON.stringify(right)) out.push({ what, key, live: left, rebuilt: right });
    }
  };
  compare('link', live.links, rebuilt.links, (v) => v);
  compare('identifier', live.identifiers, rebuilt.identifiers, essence);
  compare('user', live.users, rebuilt.users, essence);
  return out;
}
