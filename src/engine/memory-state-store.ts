import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';
import { BUCKET_DEFINITIONS } from '../../nats/definitions.ts';
import { InForce, type LinkRecord, type MetaRecord, type Revisioned, type SnapshotRecord, type Stamp, checkpointRecords } from '../nats/records-in-force.ts';
import { BUCKETS, keyAddress, snapshotKeys, snapshotOwner } from '../nats/subjects.ts';
import { StateImage, clustersOf } from './state-image.ts';
import { type CheckpointWrite, FencedError, type LoadedState, type StateStore, WRITE_SLICE, type WriteOptions } from './state-store.ts';

/**
 * The state's KV buckets, in memory: per bucket a sequence (the stream's) and each key's last
 * records as JSON, as many as the bucket's history keeps. Shared by the stores opened over it as
 * one NATS server is by engine processes: a store opened later loads what the others wrote.
 */
export class MemoryBuckets {
  private readonly buckets = new Map<string, MemoryBucket>();

  constructor() {
    for (const def of BUCKET_DEFINITIONS) if (def.bucket !== BUCKETS.leases) this.buckets.set(def.bucket, new MemoryBucket(def.history));
  }

  /** Stores a record as the key's latest; its revision. */
  put(bucket: string, key: string, record: unknown): number {
    return this.bucket(bucket).put(key, JSON.stringify(record));
  }

  /** Stores a record only if the key's latest is at `revision` (0: the key has none); its revision, or undefined. */
  putIf(bucket: string, key: string, record: unknown, revision: number): number | undefined {
    const bucketOf = this.bucket(bucket);
    if ((bucketOf.revisions(key).at(-1)?.revision ?? 0) !== revision) return undefined;
    return bucketOf.put(key, JSON.stringify(record));
  }

  /** The key's latest record (parsed afresh: a reader never shares an object with the store). */
  latest<T>(bucket: string, key: string): Revisioned<T> | undefined {
    const last = this.bucket(bucket).revisions(key).at(-1);
    return last === undefined ? undefined : { record: JSON.parse(last.json) as T, revision: last.revision };
  }

  /** Every record the bucket still keeps of the key, oldest first. */
  history<T>(bucket: string, key: string): Array<Revisioned<T>> {
    return this.bucket(bucket).revisions(key).map(({ json, revision }) => ({ record: JSON.parse(json) as T, revision }));
  }

  /** Each key's latest record, in the order they were stored (as a KV delivers the last per subject). */
  lastPerKey<T>(bucket: string): Map<string, Revisioned<T>> {
    const last = [...this.bucket(bucket).keys()].map(([key, revisions]) => [key, revisions.at(-1)!] as const);
    last.sort((a, b) => a[1].revision - b[1].revision);
    return new Map(last.map(([key, { json, revision }]) => [key, { record: JSON.parse(json) as T, revision }]));
  }

  /** Every record the bucket keeps, in the order stored: each key's last one `keep` accepts. */
  lastKept<T extends Stamp>(bucket: string, keep: (record: T, revision: number) => boolean): Map<string, Revisioned<T>> {
    const all: Array<[string, Revisioned<T>]> = [];
    for (const [key, revisions] of this.bucket(bucket).keys()) for (const { json, revision } of revisions) all.push([key, { record: JSON.parse(json) as T, revision }]);
    all.sort((a, b) => a[1].revision - b[1].revision);
    const out = new Map<string, Revisioned<T>>();
    for (const [key, found] of all) {
      if (!keep(found.record, found.revision)) continue;
      const before = out.get(key);
      out.set(key, before === undefined ? found : InForce.later(before, found));
    }
    return out;
  }

  /** Where each bucket's sequence ends now: what a new epoch's fence counts up to. */
  ends(): Record<string, number> {
    return Object.fromEntries([...this.buckets].map(([name, bucket]) => [name, bucket.last]));
  }

  private bucket(name: string): MemoryBucket {
    const bucket = this.buckets.get(name);
    if (bucket === undefined) throw new XrefError('XREF_INTERNAL', `no state bucket ${JSON.stringify(name)}`);
    return bucket;
  }
}

class MemoryBucket {
  /** The sequence of the last record stored. */
  last = 0;
  private readonly byKey = new Map<string, Array<{ json: string; revision: number }>>();

  constructor(private readonly history: number) {}

  put(key: string, json: string): number {
    const revision = ++this.last;
    const revisions = this.byKey.get(key);
    if (revisions === undefined) this.byKey.set(key, [{ json, revision }]);
    else {
      revisions.push({ json, revision });
      if (revisions.length > this.history) revisions.shift();
    }
    return revision;
  }

  revisions(key: string): ReadonlyArray<{ json: string; revision: number }> {
    return this.byKey.get(key) ?? [];
  }

  keys(): Iterable<[string, ReadonlyArray<{ json: string; revision: number }>]> {
    return this.byKey;
  }
}

/**
 * The engine's durable state in memory, with the records and rules of the KV one (NatsStateStore):
 * records stamped with their checkpoint and epoch, the meta record written last by compare-and-set,
 * and at load, records newer than the meta rolled back to the key's last one in force and written
 * back. Stores over one MemoryBuckets behave as processes over one server: an epoch fences the one
 * before it, and the fenced store's next checkpoint is refused (FencedError).
 */
export class MemoryStateStore implements StateStore {
  epoch = 0;
  /** What the last load found in force, kept up to date by every meta record written. */
  private inForce = new InForce(0, 0, []);
  /** The meta record's revision: the next meta is written only over it (compare-and-set). */
  private metaRevision = 0;

  constructor(
    readonly buckets: MemoryBuckets = new MemoryBuckets(),
    private readonly logger?: Logger,
  ) {}

  async load(): Promise<LoadedState> {
    const image = await this.loadImage();
    return {
      seq: image.seq,
      watermark: image.watermark,
      links: image.links,
      clusters: [...clustersOf(image.identifiers)],
      identifierAddresses: [...image.identifiers.keys()],
      userAddresses: [...image.users.keys()],
    };
  }

  async loadImage(): Promise<StateImage> {
    const { meta, links, snapshots } = this.readInForce();
    const image = new StateImage();
    image.seq = meta.seq;
    image.watermark = meta.watermark ?? -Infinity;
    for (const [key, { record }] of links) if (!('deleted' in record)) image.links.set(keyAddress(key), { user: record.user, seq: record.seq });
    for (const [key, { record }] of snapshots) {
      if (key === snapshotKeys.meta || 'deleted' in record) continue;
      const { machine, address } = snapshotOwner(key);
      (machine === 'identifier' ? image.identifiers : image.users).set(address, record.snapshot);
    }
    return image;
  }

  async replaceWith(image: StateImage): Promise<void> {
    await this.write(image.replacing(await this.loadImage()), { writer: 'replay' });
  }

  /**
   * Every record, a slice at a time (yielding in between, and asking `mayWrite` before each), then
   * the meta record once `alsoStored` is. Nothing to spread the load over: `spreadOverMs` is not asked.
   */
  async write(checkpoint: CheckpointWrite, options: WriteOptions = {}): Promise<void> {
    const { alsoStored = Promise.resolve(), mayWrite = () => true } = options;
    let sent = 0;
    for (const [bucket, key, record] of checkpointRecords(checkpoint, this.epoch)) {
      if (sent % WRITE_SLICE === 0) {
        if (sent > 0) await new Promise((resolve) => setImmediate(resolve));
        if (!mayWrite()) throw new FencedError();
      }
      this.buckets.put(bucket, key, record);
      sent++;
    }
    await alsoStored;
    if (!mayWrite()) throw new FencedError();
    // only over the meta record this store knows: a holder fenced meanwhile cannot write one
    const revision = this.buckets.putIf(BUCKETS.snapshots, snapshotKeys.meta, this.inForce.meta(checkpoint.seq, checkpoint.watermark), this.metaRevision);
    if (revision === undefined) throw new FencedError();
    this.metaRevision = revision;
    this.inForce.seq = checkpoint.seq;
  }

  async snapshot(kind: 'i' | 'u', address: string): Promise<unknown> {
    const key = kind === 'i' ? snapshotKeys.identifier(address) : snapshotKeys.user(address);
    const latest = this.buckets.latest<SnapshotRecord>(BUCKETS.snapshots, key);
    if (latest === undefined) return undefined;
    let record = latest.record;
    if (!this.inForce.covers(BUCKETS.snapshots, latest.revision, record)) {
      // a fenced writer's late write: the key's last record in force
      let best: Revisioned<SnapshotRecord> | undefined;
      for (const old of this.buckets.history<SnapshotRecord>(BUCKETS.snapshots, key)) {
        if (this.inForce.covers(BUCKETS.snapshots, old.revision, old.record)) best = best === undefined ? old : InForce.later(best, old);
      }
      if (best === undefined) return undefined;
      record = best.record;
    }
    return 'deleted' in record ? undefined : record.snapshot;
  }

  /** Every record in force: the latest, or where that one is not in force, the key's last one that is. */
  private readInForce() {
    const metaEntry = this.buckets.latest<MetaRecord>(BUCKETS.snapshots, snapshotKeys.meta);
    const meta: MetaRecord = metaEntry?.record ?? { at: 0, seq: 0, watermark: null };
    this.metaRevision = metaEntry?.revision ?? 0;
    const since = this.epoch === (meta.epoch ?? 0) ? {} : this.buckets.ends();
    const inForce = InForce.fromMeta(meta, this.epoch, () => since);
    this.inForce = inForce;
    let rolledBack = 0;
    const read = <T extends Stamp>(bucket: string) => {
      const latest = this.buckets.lastPerKey<T>(bucket);
      const outOfForce = [...latest].filter(([key, { record, revision }]) => key !== snapshotKeys.meta && !inForce.covers(bucket, revision, record)).map(([key]) => key);
      if (outOfForce.length === 0) return latest;
      // an interrupted checkpoint, or a fenced writer's late writes: each key's last record in
      // force (a key with none did not exist then), written back as its latest
      rolledBack += outOfForce.length;
      const covered = this.buckets.lastKept<T>(bucket, (record, revision) => inForce.covers(bucket, revision, record));
      for (const key of outOfForce) this.buckets.put(bucket, key, { ...(covered.get(key)?.record ?? { deleted: true }), at: meta.seq, e: this.epoch });
      return covered;
    };
    const links = read<LinkRecord>(BUCKETS.links);
    const snapshots = read<SnapshotRecord>(BUCKETS.snapshots);
    if (rolledBack > 0) this.logger?.warn({ records: rolledBack, seq: meta.seq }, 'undid the records of an interrupted checkpoint or of a fenced engine');
    return { meta, links, snapshots };
  }
}
