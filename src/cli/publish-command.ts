import { statSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { validateEvent } from '../domain/envelope.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { defaultLimits } from '../domain/limits.ts';
import { componentLogger } from '../log.ts';
import { JetStreamPublisher, PublishRejectedError } from '../nats/publisher.ts';
import { subjects } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import type { CommandIo } from './group-command.ts';
import { openInput, readNdjson } from './ndjson.ts';
import { progressBar } from './progress.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface PublishCommandOptions {
  /** Where to publish: a subject under `xref.in.` (default `xref.in.cli`). */
  subject?: string;
  /** Print a JSON summary on stdout. */
  json?: boolean;
}

/** Where the NATS server is: `loadSettings()` fits, and tests pass their own server. */
export interface NatsTarget {
  readonly natsUrl: string;
  readonly dataDir: string;
}

export interface PublishSummary {
  subject: string;
  /** Every non-empty line: accepted + duplicate + rejected. */
  published: number;
  /** Stored as a new message of XREF_IN. */
  accepted: number;
  /** Already in XREF_IN (same event id within the duplicate window): stored once. */
  duplicate: number;
  /** Not valid JSON, not a valid event, or refused by JetStream. */
  rejected: number;
}

/** Published and not yet acked, past which reading waits for the acks. */
const MAX_IN_FLIGHT = 5000;
/** Files smaller than this are published before a progress bar would be worth drawing. */
const PROGRESS_MIN_BYTES = 1024 * 1024;
const SUBJECT = /^xref\.in\.[^\s.*>]+(\.[^\s.*>]+)*$/;

/** The subject events are published on: under `xref.in.`, one concrete subject (no wildcards). */
export function publishSubject(subject: string | undefined): string {
  if (subject === undefined) return subjects.in('cli');
  if (!SUBJECT.test(subject)) {
    throw new XrefError(
      'XREF_INVALID_ARGUMENT',
      `--subject must be a subject under xref.in. such as ${subjects.in('web')} (tokens without spaces, '*' or '>'), got ${quote(subject)}`,
      { field: 'subject' },
    );
  }
  return subject;
}

/**
 * `xref publish FILE|-`: validates each NDJSON line as an event and publishes the good ones to
 * `xref.in.<source>`, pipelined, with Nats-Msg-Id = event id (the same event twice is stored
 * once). Bad lines go to stderr as `line N: reason` and the rest is still published; a summary
 * line ends stderr (and `--json` prints it on stdout). Returns the exit status: 1 if any line was
 * rejected, else 0. No NATS server, or a subject outside `xref.in.`: throws an XrefError.
 */
export async function publishCommand(file: string, options: PublishCommandOptions, io: CommandIo, target: NatsTarget): Promise<number> {
  const subject = publishSubject(options.subject);
  const size = file === '-' ? 0 : statSync(file).size;
  const logger = componentLogger('publish');
  const running = await connectOrEmbed(target.natsUrl, target.dataDir, 'xref-publish');
  const publisher = new JetStreamPublisher(running.nc, logger);
  const summary: PublishSummary = { subject, published: 0, accepted: 0, duplicate: 0, rejected: 0 };
  let failure: Error | undefined;
  const reject = (line: number, reason: string) => {
    summary.rejected++;
    io.stderr.write(`line ${line}: ${reason}\n`);
  };
  // each publish with its ack counted: awaiting them all means acked *and* counted
  let inFlight: Array<Promise<unknown>> = [];
  const progress = progressBar(size >= PROGRESS_MIN_BYTES ? size : 0, 'bytes');
  try {
    // the streams may not exist yet if the engine never ran
    await ensureTopology(running.nc, await jetstreamManager(running.nc), logger);
    const limits = defaultLimits();
    let read = 0;
    for await (const entry of readNdjson(openInput(file))) {
      summary.published++;
      if ('error' in entry) {
        reject(entry.line, entry.error.message);
        continue;
      }
      read += entry.bytes + 1;
      let event;
      try {
        event = validateEvent(entry.value, limits, entry.bytes);
      } catch (error) {
        if (!(error instanceof XrefError)) throw error;
        reject(entry.line, error.message);
        continue;
      }
      const line = entry.line;
      inFlight.push(
        publisher.publish(subject, JSON.stringify(event), event.id).then(
          (ack) => (ack.duplicate ? summary.duplicate++ : summary.accepted++),
          (error: Error) => (error instanceof PublishRejectedError ? reject(line, error.message) : (failure ??= error)),
        ),
      );
      if (publisher.pending > MAX_IN_FLIGHT) {
        await Promise.all(inFlight);
        inFlight = [];
        progress.update(read);
        if (failure !== undefined) break;
      }
    }
    await Promise.all(inFlight);
    progress.update(read);
  } finally {
    progress.stop();
    await publisher.close();
    await running.stop();
  }
  if (failure !== undefined) throw failure;
  io.stderr.write(`published ${summary.published}: ${summary.accepted} accepted, ${summary.duplicate} duplicate, ${summary.rejected} rejected\n`);
  if (options.json) io.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.rejected > 0 ? 1 : 0;
}
