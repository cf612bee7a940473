import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { resolveConfig } from '../domain/config.ts';
import { parseEvent } from '../domain/envelope.ts';
import { ErrorBudget } from '../domain/error-budget.ts';
import { errorRecord } from '../domain/error-record.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { defaultLimits } from '../domain/limits.ts';
import { payloadRules } from '../domain/payload-rules.ts';
import { componentLogger } from '../log.ts';
import { JetStreamPublisher, PublishRejectedError } from '../nats/publisher.ts';
import { subjects } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import { errorMessage } from '../service/outputs.ts';
import { type Settings, settingDefaults } from '../settings.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';
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

/** What `xref publish` reads of the settings: the server, and the config whose payload rules it applies (XREF_CONFIG). */
export type PublishTarget = NatsTarget & Partial<Pick<Settings, 'configFile' | 'errorsPerSecond'>>;

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
 * `xref publish FILE|-`: validates each NDJSON line as an event (the envelope, then the payload
 * rules of the config in XREF_CONFIG, as the engine would: schemas, unknownTypes, and the
 * timestamp against now) and publishes the good ones to `xref.in.<source>`, pipelined, with
 * Nats-Msg-Id = event id (the same event twice is stored once). Bad lines go to stderr as
 * `line N: reason`, and each becomes an error record on XREF_ERRORS (at most
 * XREF_ERRORS_PER_SECOND per reason per second); the rest is still published. A summary line ends
 * stderr (and `--json` prints it on stdout). Returns the exit status: 1 if any line was rejected,
 * else 0. No NATS server, or a subject outside `xref.in.`: throws an XrefError.
 */
export async function publishCommand(file: string, options: PublishCommandOptions, io: CommandIo, target: PublishTarget): Promise<number> {
  const subject = publishSubject(options.subject);
  const rules = payloadRules(resolveConfig(loadConfigFile(target.configFile)));
  const budget = new ErrorBudget(target.errorsPerSecond ?? settingDefaults().errorsPerSecond);
  const size = file === '-' ? 0 : statSync(file).size;
  const logger = componentLogger('publish');
  const running = await connectOrEmbed(target.natsUrl, target.dataDir, 'xref-publish');
  const publisher = new JetStreamPublisher(running.nc, logger);
  const summary: PublishSummary = { subject, published: 0, accepted: 0, duplicate: 0, rejected: 0 };
  let failure: Error | undefined;
  // each publish with its ack counted: awaiting them all means acked *and* counted
  let inFlight: Array<Promise<unknown>> = [];
  /** Awaits every publish, those added meanwhile too (a line JetStream refused adds its error record). */
  const drain = async () => {
    while (inFlight.length > 0) {
      const batch = inFlight;
      inFlight = [];
      await Promise.all(batch);
    }
  };
  /** `raw`: the line's value, or its text when it is not JSON. */
  const reject = (line: number, error: XrefError, raw: { value: unknown } | { text: string | undefined }) => {
    summary.rejected++;
    io.stderr.write(`line ${line}: ${error.message}\n`);
    const atMs = Date.now();
    const input = 'value' in raw ? { raw: raw.value } : raw.text === undefined ? {} : { rawText: raw.text };
    const record = errorRecord(error, { id: randomUUID(), origin: 'publish', source: subject, atMs, ...input, index: line });
    if (!budget.keep(record.reason, atMs)) return;
    const message = errorMessage(record);
    inFlight.push(
      publisher.publish(message.subject, message.payload, message.msgId).catch((cause: unknown) => logger.warn({ err: cause, line }, 'the error record of a line could not be stored in XREF_ERRORS')),
    );
  };
  const progress = progressBar(size >= PROGRESS_MIN_BYTES ? size : 0, 'bytes');
  try {
    // the streams may not exist yet if the engine never ran
    await ensureTopology(running.nc, await jetstreamManager(running.nc), logger);
    const limits = defaultLimits();
    let read = 0;
    for await (const entry of readNdjson(openInput(file))) {
      summary.published++;
      if ('error' in entry) {
        // the line's text, once the reader hands it over with its error
        reject(entry.line, entry.error, { text: 'text' in entry && typeof entry.text === 'string' ? entry.text : undefined });
        continue;
      }
      read += entry.bytes + 1;
      let event;
      try {
        const parsed = parseEvent(entry.value, limits, entry.bytes);
        rules.check(parsed.event, Date.now(), parsed.time);
        event = parsed.event;
      } catch (error) {
        if (!(error instanceof XrefError)) throw error;
        reject(entry.line, error, { value: entry.value });
        continue;
      }
      const line = entry.line;
      const value = entry.value;
      inFlight.push(
        publisher.publish(subject, JSON.stringify(event), event.id).then(
          (ack) => (ack.duplicate ? summary.duplicate++ : summary.accepted++),
          (error: Error) => (error instanceof PublishRejectedError ? reject(line, error, { value }) : (failure ??= error)),
        ),
      );
      if (publisher.pending > MAX_IN_FLIGHT) {
        await drain();
        progress.update(read);
        if (failure !== undefined) break;
      }
    }
    await drain();
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
