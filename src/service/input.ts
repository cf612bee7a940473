import type { Config } from '../domain/config.ts';
import { type ControlCommand, controlVerb, parseControl } from '../domain/control.ts';
import { type XrefEvent, parseEvent } from '../domain/envelope.ts';
import { type ErrorRecord, errorRecord } from '../domain/error-record.ts';
import { XrefError } from '../domain/errors.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import { type PayloadRules, payloadRules } from '../domain/payload-rules.ts';
import { rejectedId } from '../engine/records.ts';
import type { LogBatch } from '../nats/log-read-worker.ts';
import { type InputMessage, StoredInput } from '../runtime/input-log.ts';
import { subjects } from '../nats/subjects.ts';
import { type OutboundMessage, errorMessage } from './outputs.ts';

const decoder = new TextDecoder();

/** Message `i` of a batch read ahead (a replay): nothing to ack. */
export function loggedInput(batch: LogBatch, i: number): InputMessage {
  return new StoredInput(batch.seqs[i]!, batch.subjects[i]!, batch.bytes.subarray(i === 0 ? 0 : batch.ends[i - 1], batch.ends[i]), batch.published[i]!);
}

export type DecodedInput =
  /** `json`: the message's text, when the event is exactly what it holds (nothing normalised). */
  | { readonly event: XrefEvent; readonly time: number | undefined; readonly json?: string }
  /** A control input (`xref.ctl.<verb>`): a command, not an event (docs/erasure.md). */
  | { readonly control: ControlCommand }
  | { readonly rejected: OutboundMessage; readonly record: ErrorRecord };

/**
 * One XREF_IN message as the engine applies it, live or in a replay: a valid event and its time
 * (an event without a timestamp takes the log's time, when it was published), or the error record
 * of why it is not one, on `xref.errors.<reason>` with the id `rejectedId(seq)`. After the
 * envelope come the payload rules of the config: the event's `data` against its type's schema,
 * and its timestamp against the JetStream publish time (the same on a replay, so a replay refuses
 * the same inputs).
 */
/** What decoding reads of an input. */
export type EncodedInput = Pick<InputMessage, 'seq' | 'subject' | 'data' | 'publishedMs'>;

export function decodeInput(msg: EncodedInput, limits: Limits, rules?: PayloadRules): DecodedInput {
  const text = decoder.decode(msg.data);
  // read once: for a delivered message it is worked out of the message's metadata
  const published = msg.publishedMs();
  let value: unknown;
  try {
    value = JSON.parse(text);
    if (msg.subject.startsWith(subjects.ctlPrefix)) return { control: parseControl(controlVerb(msg.subject.slice(subjects.ctlPrefix.length)), value) };
    const { event, time } = parseEvent(value, limits, msg.data.length);
    rules?.check(event, published, time);
    return event === value ? { event, time: time ?? published, json: text } : { event, time: time ?? published };
  } catch (error) {
    const reason = error instanceof XrefError ? error : new XrefError('XREF_INVALID_JSON', `invalid JSON (${(error as Error).message})`);
    const record = errorRecord(reason, { id: rejectedId(msg.seq), origin: 'engine', source: msg.subject, atMs: published, rawText: text, candidate: value, seq: msg.seq });
    return { rejected: errorMessage(record), record };
  }
}

/**
 * The decoder of a config: `decodeInput` with its payload rules, compiled once. What the engine
 * runs, and what a reader of XREF_IN (the projection) must use to see the same events the engine
 * accepted.
 */
export function inputDecoder(config: Config, limits: Limits = defaultLimits()): (msg: EncodedInput) => DecodedInput {
  const rules = payloadRules(config);
  return (msg) => decodeInput(msg, limits, rules);
}
