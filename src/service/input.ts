import { type XrefEvent, parseEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import type { LogBatch } from '../nats/log-read-worker.ts';
import { type InputMessage, StoredInput } from '../runtime/input-log.ts';
import { type OutboundMessage, rejectedMessage } from './outputs.ts';

const decoder = new TextDecoder();

/** Message `i` of a batch read ahead (a replay): nothing to ack. */
export function loggedInput(batch: LogBatch, i: number): InputMessage {
  return new StoredInput(batch.seqs[i]!, batch.subjects[i]!, batch.bytes.subarray(i === 0 ? 0 : batch.ends[i - 1], batch.ends[i]), batch.published[i]!);
}

export type DecodedInput =
  | { readonly event: XrefEvent; readonly time: number | undefined }
  | { readonly rejected: OutboundMessage };

/**
 * One XREF_IN message as the engine applies it, live or in a replay: a valid event and its time
 * (an event without a timestamp takes the log's time, when it was published), or the record of
 * why it is not an event.
 */
export function decodeInput(msg: InputMessage, limits: Limits): DecodedInput {
  const text = decoder.decode(msg.data);
  try {
    const { event, time } = parseEvent(JSON.parse(text), limits, msg.data.length);
    return { event, time: time ?? msg.publishedMs() };
  } catch (error) {
    const reason = error instanceof XrefError ? error : new XrefError('XREF_INVALID_JSON', `invalid JSON (${(error as Error).message})`);
    return { rejected: rejectedMessage(msg.seq, msg.subject, reason, text) };
  }
}
