/**
 * What a clean projection of the streams as they are now gives: every message of each projected
 * stream read straight from the server (an ordered consumer, no durable consumer, no checkpoint),
 * turned into rows by rows.ts and written in one batch per stream into a fresh in-memory SQLite
 * read model. Tests compare a projection's `dump()` with it: no row lost, none doubled, none stale.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliverPolicy, type JsMsg, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../../src/domain/config.ts';
import { logger } from '../../src/log.ts';
import { engineDecidedSinceGroups } from '../../src/nats/engine-progress.ts';
import { ActivityCounting } from '../../src/projection/activity-counting.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { PROJECTED_STREAMS, type ProjectedStream, type ProjectionBatch, type ReadModelStore } from '../../src/projection/read-model.ts';
import { type StreamMessage, messageRows } from '../../src/projection/rows.ts';
import type { InputDecoder } from '../../src/projection/projection.ts';
import { PROJECTED_STREAM_NAMES } from '../../src/projection/stream-identity.ts';

/** Every message of `stream` as stored, in order ([] when the stream does not exist). */
export async function streamMessages(nc: NatsConnection, stream: string): Promise<{ created: string; lastSeq: number; messages: StreamMessage[] } | undefined> {
  const jsm = await jetstreamManager(nc);
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (error) {
    if (error instanceof JetStreamApiError) return undefined;
    throw error;
  }
  const messages: StreamMessage[] = [];
  if (info.state.messages > 0) {
    const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    for await (const msg of (await consumer.consume({ max_messages: 2000 })) as AsyncIterable<JsMsg>) {
      const publishedMs = Number(msg.timestampNanos / 1_000_000n);
      const headers = msg.headers;
      messages.push({ seq: msg.seq, subject: msg.subject, data: msg.data, publishedMs: () => publishedMs, header: (name) => headers?.get(name) || undefined });
      if (msg.seq >= info.state.last_seq || msg.info.pending === 0) break;
    }
  }
  return { created: info.created, lastSeq: info.state.last_seq, messages };
}

/** A fresh read model holding exactly what the streams hold now. */
export async function referenceStore(nc: NatsConnection, decode: InputDecoder, streams: readonly ProjectedStream[] = PROJECTED_STREAMS): Promise<ReadModelStore> {
  const store = await openReadModel({ databaseUrl: 'sqlite::memory:', dataDir: mkdtempSync(join(tmpdir(), 'xref-reference-')), logger: logger.child({ component: 'reference' }) });
  await store.claim('reference', 600_000);
  for (const stream of streams) {
    const read = await streamMessages(nc, PROJECTED_STREAM_NAMES[stream].stream);
    if (read === undefined || read.lastSeq === 0) continue;
    const batch: { -readonly [K in keyof ProjectionBatch]: unknown[] } = { events: [], resolutions: [], unmatched: [], audit: [], errors: [], positions: [] };
    for (const msg of read.messages) {
      const rows = messageRows(stream, msg, decode);
      if (rows.table !== 'none') (batch[rows.table] ??= []).push(rows.row);
    }
    batch.positions.push({ stream, seq: read.lastSeq, created: read.created });
    await store.apply(batch as unknown as ProjectionBatch, 'reference');
  }
  return store;
}

/**
 * The dump of a clean projection of the streams as they are now; with `activity`, the active
 * people counted under that config, through every input the engine has decided.
 */
export async function referenceDump(nc: NatsConnection, decode: InputDecoder, activity?: Config): Promise<Readonly<Record<string, readonly unknown[]>>> {
  const store = await referenceStore(nc, decode);
  try {
    if (activity !== undefined) {
      const jsm = await jetstreamManager(nc);
      const target = Math.min(await engineDecidedSinceGroups(jsm), await store.watermark());
      const counting = await ActivityCounting.open({ store, config: activity, owner: 'reference', logger: logger.child({ component: 'reference' }), chunk: 1_000_000 });
      await counting.advance(target, () => {}, () => false);
      await counting.close();
    }
    return await store.dump();
  } finally {
    await store.close();
  }
}
