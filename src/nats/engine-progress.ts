/**
 * How far the engine has decided, as the activity counts need it (docs/activity.md): an input
 * through which every output of the engine is stored. The engine acks an input only once all its
 * outputs are stored, and writes a checkpoint only once the outputs of the inputs it covers are;
 * so the highest ack floor of its durable consumers, or its last checkpoint, is such an input.
 * Only what happened after the output streams were made counts (`since`): `xref replay
 * --republish` makes them again, and outputs stored before are gone with them.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { consumersOf } from './jetstream-input-log.ts';
import { BUCKETS, CONSUMERS, STREAMS, isDurableOf, kvStream, kvSubject, snapshotKeys } from './subjects.ts';
import { isStreamNotFound } from './topology.ts';

/** The highest input whose outputs the engine has all stored, since `sinceMs` (epoch ms); 0 when none is known. */
export async function engineDecidedThrough(jsm: JetStreamManager, sinceMs: number): Promise<number> {
  let through = 0;
  for (const info of await consumersOf(jsm, STREAMS.in)) {
    if (isDurableOf(CONSUMERS.engine, info.name) && Date.parse(info.created) >= sinceMs) through = Math.max(through, info.ack_floor.stream_seq);
  }
  try {
    const meta = await jsm.streams.getMessage(kvStream(BUCKETS.snapshots), { last_by_subj: kvSubject(BUCKETS.snapshots, snapshotKeys.meta) });
    const seq = meta !== null && meta.data.length > 0 && meta.time.getTime() >= sinceMs ? (meta.json<{ seq?: unknown }>().seq ?? 0) : 0;
    if (typeof seq === 'number') through = Math.max(through, seq);
  } catch (error) {
    // no snapshot bucket: the consumers tell (no checkpoint yet is a null message)
    if (!isStreamNotFound(error)) throw error;
  }
  return through;
}

/** `engineDecidedThrough` since the groups stream as it is now was made (0 when there is none). */
export async function engineDecidedSinceGroups(jsm: JetStreamManager): Promise<number> {
  let created = 0;
  try {
    created = Date.parse((await jsm.streams.info(STREAMS.groups)).created);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  return engineDecidedThrough(jsm, created);
}
