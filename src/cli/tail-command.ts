import { once } from 'node:events';
import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { XrefError, quote } from '../domain/errors.ts';
import { KIND_PATTERN } from '../domain/identifiers.ts';
import { componentLogger } from '../log.ts';
import { STREAMS, subjects } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import type { CommandIo } from './group-command.ts';
import type { NatsTarget } from './publish-command.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface TailCommandOptions {
  /** Only events resolved from now on (default: from the start of XREF_GROUPS). */
  new?: boolean;
  /** Stop after this many messages (default: run until `signal` aborts). */
  limit?: number;
}

/** One line of output: the payload re-serialized compactly, or as a JSON string if it is not JSON. */
function jsonLine(msg: JsMsg): string {
  const text = msg.string();
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return JSON.stringify(text);
  }
}

/**
 * `xref tail <kind> <id>`: prints the events resolved to one user, one JSON line per message of
 * `xref.groups.<kind>.<id>` (`{seq, user, via, event}`), from the start of XREF_GROUPS or, with
 * `new`, only those that arrive from now on. Runs until `signal` aborts (SIGINT/SIGTERM in the
 * CLI) or `limit` messages were printed; returns the exit status 0.
 */
export async function tailCommand(kind: string, id: string, options: TailCommandOptions, io: CommandIo, target: NatsTarget, signal?: AbortSignal): Promise<number> {
  if (!KIND_PATTERN.test(kind) || kind.length > 64) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `kind must match [A-Za-z0-9_-]+ (at most 64 characters), got ${quote(kind)}`, { field: 'kind' });
  }
  const limit = options.limit;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `--limit must be a positive integer, got ${quote(limit)}`, { field: 'limit' });
  }
  if (signal?.aborted) return 0;
  const logger = componentLogger('tail');
  const running = await connectOrEmbed(target.natsUrl, target.dataDir, 'xref-tail');
  try {
    // XREF_GROUPS may not exist yet if the engine never ran: tail can start first and wait
    await ensureTopology(running.nc, await jetstreamManager(running.nc), logger);
    const consumer = await jetstream(running.nc).consumers.get(STREAMS.groups, {
      filter_subjects: subjects.group(kind, id), // one string: an array needs server 2.10
      deliver_policy: options.new ? DeliverPolicy.New : DeliverPolicy.All,
    });
    const messages = await consumer.consume({ max_messages: 1000 });
    const stop = () => void messages.close().catch(() => undefined);
    signal?.addEventListener('abort', stop, { once: true });
    try {
      let printed = 0;
      for await (const msg of messages as AsyncIterable<JsMsg>) {
        if (signal?.aborted) break;
        if (!io.stdout.write(`${jsonLine(msg)}\n`)) await once(io.stdout, 'drain', { signal }).catch(() => undefined);
        if (limit !== undefined && ++printed >= limit) break;
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      await messages.close().catch(() => undefined);
    }
  } finally {
    await running.stop();
  }
  return 0;
}
