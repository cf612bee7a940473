import type { JsMsg, StoredMsg } from '@nats-io/jetstream';
import { type XrefEvent, eventTime, validateEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import { type OutboundMessage, rejectedMessage } from './outputs.ts';

const decoder = new TextDecoder();

/** One input of XREF_IN, however it was read: delivered by a consumer, or fetched by sequence. */
export interface InputMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** When it was published (epoch ms): the time of an event without a timestamp. */
  readonly publishedMs: number;
  /** Acks it with the consumer that delivered it (nothing for a fetched one). */
  ack(): void;
}

export function deliveredInput(msg: JsMsg): InputMessage {
  return { seq: msg.seq, subject: msg.subject, data: msg.data, publishedMs: Number(msg.timestampNanos / 1_000_000n), ack: () => msg.ack() };
}

export function fetchedInput(msg: StoredMsg): InputMessage {
  return { seq: msg.seq, subject: msg.subject, data: msg.data, publishedMs: msg.time.getTime(), ack: () => {} };
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
    const event = validateEvent(JSON.parse(text), limits, msg.data.length);
    return { event, time: event.timestamp === undefined ? msg.publishedMs : eventTime(event) };
  } catch (error) {
    const reason = error instanceof XrefError ? error : new XrefError('XREF_INVALID_JSON', `invalid JSON (${(error as Error).message})`);
    return { rejected: rejectedMessage(msg.seq, msg.subject, reason, text) };
  }
}
