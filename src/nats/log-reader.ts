import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { STREAMS } from './subjects.ts';

/** The range of sequences XREF_IN holds now. */
export async function logBounds(jsm: JetStreamManager): Promise<{ first: number; last: number }> {
  const { state } = await jsm.streams.info(STREAMS.in);
  return { first: state.first_seq, last: state.last_seq };
}

/**
 * Reads XREF_IN in log order from `fromSeq` through `toSeq` (inclusive) with an ordered consumer,
 * calling `onMessage` for each. Resolves once `toSeq` (or the end of the stream) is reached.
 */
export async function readLog(js: JetStreamClient, jsm: JetStreamManager, fromSeq: number, toSeq: number, onMessage: (msg: JsMsg) => void): Promise<number> {
  return readStream(js, jsm, { stream: STREAMS.in, fromSeq, toSeq }, onMessage);
}

export interface StreamRead {
  readonly stream: string;
  /** Only this subject (a wildcard too). */
  readonly filter?: string;
  /** Headers without the payloads. */
  readonly headersOnly?: boolean;
  readonly fromSeq?: number;
  readonly toSeq?: number;
}

/**
 * Reads a stream (its messages on `filter`, when given) in order through `toSeq` or its end now,
 * with an ordered consumer, calling `onMessage` for each; resolves with their count.
 */
export async function readStream(js: JetStreamClient, jsm: JetStreamManager, read: StreamRead, onMessage: (msg: JsMsg) => void): Promise<number> {
  const info = await jsm.streams.info(read.stream, read.filter === undefined ? undefined : { subjects_filter: read.filter });
  const { state } = info;
  const last = Math.min(read.toSeq ?? state.last_seq, state.last_seq);
  const first = Math.max(read.fromSeq ?? 1, state.first_seq);
  if (last < first || state.messages === 0) return 0;
  if (read.filter !== undefined && Object.keys(state.subjects ?? {}).length === 0) return 0;
  const consumer = await js.consumers.get(read.stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: first,
    ...(read.filter === undefined ? {} : { filter_subjects: read.filter }),
    ...(read.headersOnly ? { headers_only: true } : {}),
  });
  const messages = await consumer.consume({ max_messages: 2000 });
  let count = 0;
  for await (const msg of messages as AsyncIterable<JsMsg>) {
    if (msg.seq > last) break;
    onMessage(msg);
    count++;
    if (msg.seq >= last || msg.info.pending === 0) break;
  }
  await messages.close();
  return count;
}
