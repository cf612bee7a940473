/**
 * Which KV records of the engine's state are in force: pure rules, no I/O (the state store reads
 * and writes; this decides).
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
