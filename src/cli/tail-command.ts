import { once } from 'node:events';
import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { resolveConfig } from '../domain/config.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { KIND_PATTERN } from '../domain/identifiers.ts';
import { componentLogger } from '../log.ts';
import { STREAMS, subjects } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';
import type { NatsTarget } from './publish-command.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface TailCommandOptions {
  /** Only events resolved from now on (default: from the start of XREF_GROUPS). */
  new?: boolean;
  /** Stop after this many messages (default: run until `signal` aborts). */
  limit?: number;
  /** With nothing printed this long after the start, say once on stderr what it waits for (default 3000 ms). */
  idleNoticeMs?: number;
}

/** Where the server is and, as for `xref serve`, the identity config (XREF_CONFIG) naming the internal kinds. */
export interface TailTarget extends NatsTarget {
  readonly configFile?: string | undefined;
}

export const IDLE_NOTICE_MS = 3000;

/**
 * Only internal kinds have subjects of their own (`xref.groups.<internal kind>.<id>`): a
 * third-party kind would wait forever on a subject nothing is published to. The message says why
 * and what to tail instead.
 */
export function thirdPartyKindMessage(kind: string, id: string, internal: readonly string[]): string {
  const kinds = internal.join(', ');
  const suggestions = internal.map((k) => `xref tail ${k} <id>`).join('  or  ');
  return [
    `${kind} is a third-party kind: events are grouped under internal kinds only (${kinds}), so nothing is ever published for ${kind} ${quote(id)}.`,
    `  Tail the user it belongs to instead, e.g.: ${suggestions}`,
    `  (If ${kind} is one of your own user ids, list it in "internal" in the config, XREF_CONFIG, of xref serve and xref tail.)`,
  ].join('\n');
}

/** The note once nothing came within the idle time: what it waits for and how to stop it. */
export function idleNoticeMessage(kind: string, id: string, onlyNew: boolean): string {
  const what = onlyNew ? `new events of ${kind} ${quote(id)}` : `events of ${kind} ${quote(id)} (none resolved to this user so far)`;
  return `xref tail: waiting for ${what}; they are printed as xref serve resolves them. Stop with Ctrl-C.\n`;
}

/**
 * Calls `notice` once, `ms` after the start, unless `seen()` came first. `stop()` cancels it.
 */
export function idleNotice(ms: number, notice: () => void): { seen(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    timer = undefined;
    notice();
  }, ms);
  const stop = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return { seen: stop, stop };
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
 * CLI) or `limit` messages were printed; returns the exit status 0. With nothing printed after
 * `idleNoticeMs` it says once on stderr what it waits for. A kind that is not internal (config
 * `internal`, from `target.configFile`) is refused before connecting: an XrefError
 * (XREF_INVALID_ARGUMENT, exit 2 in the CLI) that says which kinds to tail instead. A NATS host
 * that does not resolve is named as such.
 */
export async function tailCommand(kind: string, id: string, options: TailCommandOptions, io: CommandIo, target: TailTarget, signal?: AbortSignal): Promise<number> {
  if (!KIND_PATTERN.test(kind) || kind.length > 64) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `kind must match [A-Za-z0-9_-]+ (at most 64 characters), got ${quote(kind)}`, { field: 'kind' });
  }
  const limit = options.limit;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `--limit must be a positive integer, got ${quote(limit)}`, { field: 'limit' });
  }
  const { internal } = resolveConfig(loadConfigFile(target.configFile));
  if (!internal.includes(kind)) throw new XrefError('XREF_INVALID_ARGUMENT', thirdPartyKindMessage(kind, id, internal), { field: 'kind' });
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
    const idle = idleNotice(options.idleNoticeMs ?? IDLE_NOTICE_MS, () => io.stderr.write(idleNoticeMessage(kind, id, options.new === true)));
    try {
      let printed = 0;
      for await (const msg of messages as AsyncIterable<JsMsg>) {
        if (signal?.aborted) break;
        idle.seen();
        if (!io.stdout.write(`${jsonLine(msg)}\n`)) await once(io.stdout, 'drain', { signal }).catch(() => undefined);
        if (limit !== undefined && ++printed >= limit) break;
      }
    } finally {
      idle.stop();
      signal?.removeEventListener('abort', stop);
      await messages.close().catch(() => undefined);
    }
  } finally {
    await running.stop();
  }
  return 0;
}
