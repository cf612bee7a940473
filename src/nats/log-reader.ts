import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { STREAMS, subjects } from './subjects.ts';

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
  const bounds = await logBounds(jsm);
  const last = Math.min(toSeq, bounds.last);
  const first = Math.max(fromSeq, bounds.first);
  if (last < first || bounds.last === 0) return 0;
  const consumer = await js.consumers.get(STREAMS.in, { filter_subjects: subjects.inAll, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: first });
  const messages = await consumer.consume({ max_messages: 2000 });
  let count = 0;
  for await (const msg of messages as AsyncIterable<JsMsg>) {
    if (msg.seq > last) break;
    onMessage(msg);
    count++;
    if (msg.seq >= last || msg.info.pending === 0) break;
  }
  return count;
}
