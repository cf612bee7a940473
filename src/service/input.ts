import type { JsMsg } from '@nats-io/jetstream';
import { type XrefEvent, eventTime, validateEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import { type OutboundMessage, rejectedMessage } from './outputs.ts';

const decoder = new TextDecoder();

export type DecodedInput =
  | { readonly event: XrefEvent; readonly time: number | undefined }
  | { readonly rejected: OutboundMessage };

/**
 * One XREF_IN message as the engine applies it, live or in a replay: a valid event and its time
 * (an event without a timestamp takes the log's time, when it was published), or the record of
 * why it is not an event.
 */
export function decodeInput(msg: JsMsg, limits: Limits): DecodedInput {
  const text = decoder.decode(msg.data);
  try {
    const event = validateEvent(JSON.parse(text), limits, msg.data.length);
    return { event, time: event.timestamp === undefined ? Number(msg.timestampNanos / 1_000_000n) : eventTime(event) };
  } catch (error) {
    const reason = error instanceof XrefError ? error : new XrefError('XREF_INVALID_JSON', `invalid JSON (${(error as Error).message})`);
    return { rejected: rejectedMessage(msg.seq, msg.subject, reason, text) };
  }
}
