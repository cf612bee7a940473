import { persistedSnapshot } from '../engine/actor-system.ts';
import type { CheckpointWrite } from '../engine/state-store.ts';
import { BUCKETS, addressKey, snapshotKeys } from './subjects.ts';

/**
 * Which KV records of the engine's state are in force: pure rules, no I/O (the state stores read
 * and write, in JetStream KV or in memory; this decides). And the records a checkpoint writes.
 *
 * Every record carries `at`, the input sequence of the checkpoint that wrote it, and `e`, the
 * epoch of the lease its writer held (0 without one). The meta record names the checkpoint in
 * force (`seq`) and its writer's epoch; for every earlier epoch it keeps a fence: records of that
 * epoch count up to its last checkpoint (`ceiling`), and only those stored before the next holder
 * started (`since`, per bucket, in stream sequence). A fenced holder's late writes (a process
 * paused past its lease, then resumed) are so told apart from what it wrote while it held the
 * lease, and never taken for the state.
 */

/** What every record carries. */
export interface Stamp {
  readonly at: number;
  readonly e?: number;
}

/** An earlier holding of the lease, as the meta record keeps it. */
export interface Fence {
  readonly epoch: number;
  readonly ceiling: number;
  readonly since: Readonly<Record<string, number>>;
}

export interface MetaRecord extends Stamp {
  readonly seq: number;
  readonly watermark: number | null;
  readonly epoch?: number;
  readonly fences?: readonly Fence[];
}

/** The fences a meta record keeps at most (a holder flapping for years must not grow it without end). */
const MAX_FENCES = 1000;

export class InForce {
  constructor(
    /** The epoch of the state's writer. */
    readonly epoch: number,
    /** The checkpoint in force. */
    public seq: number,
    readonly fences: readonly Fence[],
  ) {}

  /**
   * The state in force for a writer of `epoch`, from the meta record it loaded; `since`: where
   * each bucket ends now. A new epoch fences the meta's.
   */
  static fromMeta(meta: MetaRecord, epoch: number, since: () => Record<string, number>): InForce {
    const metaEpoch = meta.epoch ?? 0;
    const fences = meta.fences ?? [];
    if (metaEpoch === epoch) return new InForce(epoch, meta.seq, fences);
    return new InForce(epoch, meta.seq, [...fences, { epoch: metaEpoch, ceiling: meta.seq, since: since() }].slice(-MAX_FENCES));
  }

  /** Whether a record, stored at `revision` of `bucket`, is part of the state in force. */
  covers(bucket: string, revision: number, record: Stamp): boolean {
    const epoch = record.e ?? 0;
    if (epoch === this.epoch) return record.at <= this.seq;
    const fence = this.fences.find((f) => f.epoch === epoch);
    return fence !== undefined && record.at <= fence.ceiling && revision <= (fence.since[bucket] ?? Number.POSITIVE_INFINITY);
  }

  /** Of two records of one key both in force, the later in the state's history. */
  static later<T extends Stamp>(a: { record: T; revision: number }, b: { record: T; revision: number }) {
    const ea = a.record.e ?? 0;
    const eb = b.record.e ?? 0;
    if (ea !== eb) return ea > eb ? a : b;
    if (a.record.at !== b.record.at) return a.record.at > b.record.at ? a : b;
    return a.revision > b.revision ? a : b;
  }

  /** The meta record of a checkpoint at `seq` written by this state's writer. */
  meta(seq: number, watermark: number): MetaRecord {
    return { at: seq, seq, watermark: Number.isFinite(watermark) ? watermark : null, epoch: this.epoch, fences: this.fences };
  }
}

/** A record of `xref_links` (a third-party identifier's user), or its tombstone. */
export type LinkRecord = Stamp & ({ user: string; seq: number } | { deleted: true });
/** A record of `xref_snapshots` (an actor's persisted snapshot), or its tombstone. */
export type SnapshotRecord = Stamp & ({ snapshot: unknown } | { deleted: true });
/** A record as read, with the stream sequence it was stored at. */
export type Revisioned<T> = { record: T; revision: number };

/** Every KV record a checkpoint writes: bucket, key, record (stamped with its seq and the writer's epoch `e`). */
export function* checkpointRecords(checkpoint: CheckpointWrite, e: number): Generator<[bucket: string, key: string, record: LinkRecord | SnapshotRecord]> {
  const at = checkpoint.seq;
  for (const [key, link] of checkpoint.links) yield [BUCKETS.links, addressKey(key), { at, e, user: link.user.key, seq: link.seq }];
  for (const key of checkpoint.removedLinks ?? []) yield [BUCKETS.links, addressKey(key), { at, e, deleted: true }];
  const record = (snapshot: unknown): SnapshotRecord => (snapshot === null ? { at, e, deleted: true } : { at, e, snapshot: persistedSnapshot(snapshot) });
  for (const [address, snapshot] of checkpoint.identifiers) yield [BUCKETS.snapshots, snapshotKeys.identifier(address), record(snapshot)];
  for (const [address, snapshot] of checkpoint.users) yield [BUCKETS.snapshots, snapshotKeys.user(address), record(snapshot)];
}
