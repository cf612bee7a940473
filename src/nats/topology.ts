import { DiscardPolicy, type JetStreamManager, JetStreamApiError, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { BUCKET_DEFINITIONS, type StreamDefinition, STREAM_DEFINITIONS } from '../../nats/definitions.ts';
import { XrefError } from '../domain/errors.ts';
import { kvStream } from './subjects.ts';

const STREAM_NOT_FOUND = 10059;

/** Whether a call failed because the stream is not there (deleted, not made yet). */
export function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && (error.code === STREAM_NOT_FOUND || /stream not found/i.test(error.message));
}

function streamConfig(def: StreamDefinition): Partial<StreamConfig> & { name: string } {
  return {
    name: def.name,
    subjects: [...def.subjects],
    description: def.description,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: 1,
    max_age: nanos(def.maxAgeMs),
    duplicate_window: nanos(def.duplicateWindowMs),
  };
}

/** The fields xref sets, as they differ between the wanted and the running definition. */
function differences(want: Partial<StreamConfig>, have: StreamConfig): string[] {
  const out: string[] = [];
  for (const key of ['subjects', 'max_age', 'duplicate_window', 'storage', 'retention'] as const) {
    if (JSON.stringify(want[key]) !== JSON.stringify(have[key])) out.push(`${key}: ${JSON.stringify(have[key])} -> ${JSON.stringify(want[key])}`);
  }
  return out;
}

/**
 * Creates the streams and KV buckets, or brings changed definitions up to date (logging what
 * changed); a definition the server refuses to change stops the start with the reason.
 */
export async function ensureTopology(nc: NatsConnection, jsm: JetStreamManager, logger: Logger): Promise<void> {
  for (const def of STREAM_DEFINITIONS) {
    const want = streamConfig(def);
    try {
      const info = await jsm.streams.info(def.name);
      const changed = differences(want, info.config);
      if (changed.length > 0) {
        logger.warn({ stream: def.name, changed }, 'stream definition changed: updating');
        await jsm.streams.update(def.name, want);
      }
    } catch (error) {
      if (isStreamNotFound(error)) {
        await jsm.streams.add(want);
        logger.info({ stream: def.name }, 'stream created');
        continue;
      }
      throw new XrefError('XREF_TOPOLOGY', `cannot apply stream ${def.name}: ${(error as Error).message}`, { cause: error });
    }
  }
  const kvm = new Kvm(nc);
  for (const def of BUCKET_DEFINITIONS) {
    await kvm.create(def.bucket, { history: def.history, description: def.description, storage: StorageType.File });
    // create() opens an existing bucket as it is: bring its history up to the definition
    const stream = kvStream(def.bucket);
    const info = await jsm.streams.info(stream);
    if (info.config.max_msgs_per_subject !== def.history) {
      logger.warn({ bucket: def.bucket, history: [info.config.max_msgs_per_subject, def.history] }, 'bucket history changed: updating');
      await jsm.streams.update(stream, { max_msgs_per_subject: def.history });
    }
  }
}
