import type { JsMsg, StoredMsg } from '@nats-io/jetstream';
import { type XrefEvent, parseEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import type { LogBatch } from '../nats/log-read-worker.ts';
import { type OutboundMessage, rejectedMessage } from './outputs.ts';

const decoder = new TextDecoder();

/** One input of XREF_IN, however it was read: delivered by a consumer, or fetched by sequence. */
export interface InputMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** When it was published (epoch ms): the time of an event without a timestamp (read only then). */
  publishedMs(): number;
  /** Whether it came from the consumer, so acking it means something (a fetched one does not). */
  readonly ackable: boolean;
  /** Acks it, and with AckPolicy.All every input before it, with the consumer that delivered it. */
  ack(): void;
}

/**
 * The stream sequence of a delivered message, read in place from its reply subject
 * (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…`, or with a domain and an account
 * hash after `ACK` in the newer form): the client's `seq` splits the subject into a dozen strings
 * and builds an object of them, for every message.
 */
export function streamSeqOf(msg: JsMsg): number {
  // the client's message has the reply subject, though its JsMsg type does not declare it
  const reply = (msg as JsMsg & { readonly reply?: unknown }).reply;
  if (typeof reply !== 'string') return msg.seq;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) if (reply.charCodeAt(i) === 46) dots++;
  if (!reply.startsWith('$JS.ACK.') || dots < 8) return msg.seq; // not a form read here: the client says why
  let at = 0;
  for (let token = dots === 8 ? 5 : 7; token > 0; token--) at = reply.indexOf('.', at) + 1;
  let seq = 0;
  for (let c = reply.charCodeAt(at); c >= 48 && c <= 57; c = reply.charCodeAt(++at)) seq = seq * 10 + (c - 48);
  return seq;
}

/** A message delivered by a consumer (a class, not closures: this runs for every input). */
class DeliveredInput implements InputMessage {
  readonly ackable = true;
  readonly seq: number;
  /** Read once: the client slices it off the headers again on every read. */
  readonly data: Uint8Array;
  constructor(private readonly msg: JsMsg) {
    this.seq = streamSeqOf(msg);
    this.data = msg.data;
  }
  get subject() {
    return this.msg.subject;
  }
  publishedMs() {
    return Number(this.msg.timestampNanos / 1_000_000n);
  }
  ack() {
    this.msg.ack();
  }
}

/** A message read from the stream, by sequence or ahead in a replay's batch: nothing to ack. */
class ReadInput implements InputMessage {
  readonly ackable = false;
  constructor(
    readonly seq: number,
    readonly subject: string,
    readonly data: Uint8Array,
    private readonly published: number,
  ) {}
  publishedMs() {
    return this.published;
  }
  ack() {}
}

export function deliveredInput(msg: JsMsg): InputMessage {
  return new DeliveredInput(msg);
}

export function fetchedInput(msg: StoredMsg): InputMessage {
  return new ReadInput(msg.seq, msg.subject, msg.data, msg.time.getTime());
}

/** Message `i` of a batch read ahead. */
export function loggedInput(batch: LogBatch, i: number): InputMessage {
  return new ReadInput(batch.seqs[i]!, batch.subjects[i]!, batch.bytes.subarray(i === 0 ? 0 : batch.ends[i - 1], batch.ends[i]), batch.published[i]!);
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
