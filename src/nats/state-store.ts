import { randomUUID } from 'node:crypto';
import { DeliverPolicy, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { quote, XrefError } from '../domain/errors.ts';
import { clusterState } from '../engine/clusters.ts';
import { checkpointSize } from '../engine/engine.ts';
import type { SnapshotStore } from '../engine/snapshot-store.ts';
import { StateImage } from '../engine/state-image.ts';
import { type CheckpointWrite, FencedError, type LoadedState, type StateStore, WRITE_SLICE, type WriteOptions } from '../engine/state-store.ts';
import { type JetStreamPublisher, PublishRejectedError } from './publisher.ts';
import { InForce, type LinkRecord, type MetaRecord, type Revisioned, type SnapshotRecord, type Stamp, checkpointRecords } from './records-in-force.ts';
import { type RetryOptions, untilAnswered } from './retry.ts';
import { BUCKETS, HEADERS, keyAddress, kvStream, kvSubject, kvSubjectPrefix, snapshotKeys, snapshotOwner } from './subjects.ts';

const decoder = new TextDecoder();

/**
 * The engine's durable state in the `xref_links` and `xref_snapshots` buckets. Every KV record
 * carries `at` (the checkpoint that wrote it) and `e` (its writer's lease epoch); the meta record,
 * written last, says which are in force (see records-in-force.ts): a record of an interrupted
 * checkpoint, or a late write of a fenced holder, is not, and the key's previous record in force
 * is read instead.
 */
export class NatsStateStore implements StateStore {
  private readonly kvm: Kvm;
  /**
   * This store's own part of every record's dedup id, with a count of its writes: two writes,
   * by this process or another, never share an id. A checkpoint rewritten at the same input
   * after a repair (its first writer was killed before the meta) must be stored, not dropped by
   * the stream's duplicate window as a copy of the interrupted one; only the publisher's own
   * retries and resends of one write share its ids.
   */
  private readonly incarnation = randomUUID().slice(0, 8);
  private snapshots: KV | undefined;
  /**
   * The lease epoch this store writes under (0: no lease). Set before `load()`: a new epoch fences
   * the one the loaded meta record was written under.
   */
  epoch = 0;
  /** What the last load found in force, kept up to date by every meta record written. */
  private inForce = new InForce(0, 0, []);
  /** The meta record's revision: the next meta is written only over it (compare-and-set). */
  private metaRevision = 0;
  private writes = 0;

  constructor(
    nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly publisher: JetStreamPublisher,
    private readonly logger: Logger,
    /** How a read of one snapshot waits out an outage (default: like any other call, it fails). */
    private readonly retry?: RetryOptions,
  ) {
    this.kvm = new Kvm(nc);
  }

  /** Loads the state of the last finished checkpoint (an empty state when there is none). */
  async load(): Promise<LoadedState> {
    const { meta, links, snapshots } = await this.readInForce();
    const state: LoadedState = {
      seq: meta.seq,
      watermark: meta.watermark ?? -Infinity,
      links,
      clusters: [],
      identifierAddresses: [],
      userAddresses: [],
    };
    for (const [key, snapshot] of snapshots) {
      const { machine, address } = snapshotOwner(key);
      if (machine === 'identifier') {
        const { members, buffer } = clusterState(snapshot);
        state.identifierAddresses.push(address);
        state.clusters.push({ address, members, buffer });
      } else {
        state.userAddresses.push(address);
      }
    }
    return state;
  }

  /** The whole state of the last finished checkpoint, snapshots included (for `replay --verify`). */
  async loadImage(): Promise<StateImage> {
    const { meta, links, snapshots } = await this.readInForce();
    const image = new StateImage();
    image.seq = meta.seq;
    image.watermark = meta.watermark ?? -Infinity;
    for (const [key, link] of links) image.links.set(key, link);
    for (const [key, snapshot] of snapshots) {
      const { machine, address } = snapshotOwner(key);
      (machine === 'identifier' ? image.identifiers : image.users).set(address, snapshot);
    }
    return image;
  }

  /**
   * Makes `image` the live state: writes it whole as a checkpoint at `image.seq`, and tombstones
   * for whatever the live state held that the image does not (e.g. after `xref replay`).
   */
  async replaceWith(image: StateImage): Promise<void> {
    await this.write(image.replacing(await this.loadImage()), { writer: 'replay' });
  }

  /** Every record in force: the latest, or where that one is not in force, the key's last one that is. */
  private async readInForce() {
    const snapshotsKv = await this.kvm.open(BUCKETS.snapshots);
    const metaEntry = await snapshotsKv.get(snapshotKeys.meta);
    const meta: MetaRecord = metaEntry?.operation === 'PUT' ? (metaEntry.json() as MetaRecord) : { at: 0, seq: 0, watermark: null };
    this.metaRevision = metaEntry?.revision ?? 0;
    const since = this.epoch === (meta.epoch ?? 0) ? {} : await this.bucketEnds();
    const inForce = InForce.fromMeta(meta, this.epoch, () => since);
    this.inForce = inForce;
    let rolledBack = 0;
    const repairs: Promise<unknown>[] = [];
    const read = async <T extends Stamp>(bucket: string) => {
      const latest = await this.readBucket<T>(bucket, DeliverPolicy.LastPerSubject);
      const outOfForce = [...latest].filter(([key, { record, revision }]) => key !== snapshotKeys.meta && !inForce.covers(bucket, revision, record)).map(([key]) => key);
      if (outOfForce.length === 0) return latest;
      // an interrupted checkpoint, or a fenced holder's late writes: read the bucket's history
      // once, keep each key's last record in force (a key with none did not exist then) ...
      rolledBack += outOfForce.length;
      const covered = await this.readBucket<T>(bucket, DeliverPolicy.All, (record, revision) => inForce.covers(bucket, revision, record));
      // ... and write those back as the latest values, so a later get (a passivated actor coming
      // back) reads the state in force
      const repair = this.writeId('repair');
      for (const key of outOfForce) {
        const record = { ...(covered.get(key)?.record ?? { deleted: true }), at: meta.seq, e: this.epoch };
        repairs.push(this.publisher.publish(kvSubject(bucket, key), JSON.stringify(record), `${bucket}:${key}:${meta.seq}:${repair}`));
      }
      return covered;
    };
    const links = new Map<string, { user: string; seq: number }>();
    for (const [key, { record: link }] of await read<LinkRecord>(BUCKETS.links)) {
      if (!('deleted' in link)) links.set(keyAddress(key), { user: link.user, seq: link.seq });
    }
    const snapshots = new Map<string, unknown>();
    for (const [key, { record }] of await read<SnapshotRecord>(BUCKETS.snapshots)) {
      if (key === snapshotKeys.meta || 'deleted' in record) continue;
      snapshots.set(key, record.snapshot);
    }
    await Promise.all(repairs);
    if (rolledBack > 0) this.logger.warn({ records: rolledBack, seq: meta.seq }, 'undid the records of an interrupted checkpoint or of a fenced engine');
    return { meta, links, snapshots };
  }

  /** Where each bucket's stream ends now: what a new epoch's fence counts up to. */
  private async bucketEnds(): Promise<Record<string, number>> {
    const ends: Record<string, number> = {};
    for (const bucket of [BUCKETS.links, BUCKETS.snapshots]) ends[bucket] = (await (await this.js.streams.get(kvStream(bucket))).info()).state.last_seq;
    return ends;
  }

  /**
   * Writes a checkpoint: every record, pipelined, then the meta record once they, and
   * `alsoStored` (the outputs of the inputs it covers), are all stored. Records are persisted,
   * serialised and sent a slice at a time, yielding in between, so that processing goes on
   * while a large checkpoint is written instead of stalling for its whole length.
   */
  async write(checkpoint: CheckpointWrite, options: WriteOptions = {}): Promise<void> {
    const { writer = 'engine', alsoStored = Promise.resolve(), spreadOverMs = () => 0, mayWrite = () => true } = options;
    const at = checkpoint.seq;
    const id = this.writeId(writer);
    const slices = Math.ceil((checkpointSize(checkpoint) + (checkpoint.removedLinks?.length ?? 0)) / WRITE_SLICE);
    const records = new StoredCount();
    await this.publisher.settled();
    for (const [bucket, key, record] of checkpointRecords(checkpoint, this.epoch)) {
      if (records.sent % WRITE_SLICE === 0 && !mayWrite()) throw new FencedError();
      this.publisher.publishThen(kvSubject(bucket, key), JSON.stringify(record), `${bucket}:${key}:${at}:${id}`, recordStored, records.add());
      if (records.sent % WRITE_SLICE === 0) await this.yieldToProcessing(Math.min(MAX_SLICE_PAUSE_MS, spreadOverMs() / slices));
    }
    await Promise.all([records.all(), alsoStored]);
    await this.publisher.settled();
    if (!mayWrite()) throw new FencedError();
    // only over the meta record this store knows: a holder fenced meanwhile cannot write one
    const meta = this.inForce.meta(checkpoint.seq, checkpoint.watermark);
    try {
      this.metaRevision = (await this.publisher.publish(kvSubject(BUCKETS.snapshots, snapshotKeys.meta), JSON.stringify(meta), `meta:${at}:${id}`, this.metaRevision)).seq;
    } catch (error) {
      if (error instanceof PublishRejectedError && error.apiCode === WRONG_LAST_SEQUENCE) throw new FencedError();
      throw error;
    }
    this.inForce.seq = checkpoint.seq;
  }

  /** A dedup id part no other write shares: who writes, this store, and its count of writes. */
  private writeId(writer: string): string {
    return `${writer}-${this.incarnation}-${++this.writes}`;
  }

  /**
   * Lets queued work run (for `pauseMs` at least), waits while the publisher is well ahead of the
   * server, and, after a reconnect, until what it sent again is stored: those older records must
   * not land after this checkpoint's own records of the same keys.
   */
  private async yieldToProcessing(pauseMs: number): Promise<void> {
    await new Promise((resolve) => (pauseMs >= 1 ? setTimeout(resolve, pauseMs) : setImmediate(resolve)));
    if (this.publisher.pending > WRITE_MAX_PENDING) await this.publisher.below(WRITE_MAX_PENDING / 2);
    await this.publisher.settled();
  }

  /** One actor's snapshot, as the last checkpoint left it; waits out an outage when told how. */
  async snapshot(kind: 'i' | 'u', address: string): Promise<unknown> {
    const read = async () => {
      this.snapshots ??= await this.kvm.open(BUCKETS.snapshots);
      return this.snapshots.get(kind === 'i' ? snapshotKeys.identifier(address) : snapshotKeys.user(address));
    };
    const entry = this.retry === undefined ? await read() : await untilAnswered('loading passivated actors', read, { ...this.retry, idempotent: true });
    if (entry === null || entry.operation !== 'PUT') return undefined;
    let record = entry.json() as SnapshotRecord;
    if (!this.inForce.covers(BUCKETS.snapshots, entry.revision, record)) {
      // a fenced engine's late write: the key's last record in force
      let best: Revisioned<SnapshotRecord> | undefined;
      for await (const old of await this.snapshots!.history({ key: entry.key })) {
        const candidate = { record: old.json() as SnapshotRecord, revision: old.revision };
        if (old.operation === 'PUT' && this.inForce.covers(BUCKETS.snapshots, old.revision, candidate.record)) best = best === undefined ? candidate : InForce.later(best, candidate);
      }
      if (best === undefined) return undefined;
      record = best.record;
    }
    return 'deleted' in record ? undefined : record.snapshot;
  }

  /**
   * Every key of a bucket read as one ordered stream (not a get per key): the latest value of each
   * (LastPerSubject), or, reading all revisions in order (All), the last one `keep` accepts.
   */
  private async readBucket<T extends Stamp>(bucket: string, policy: DeliverPolicy, keep: (record: T, revision: number) => boolean = () => true): Promise<Map<string, Revisioned<T>>> {
    const out = new Map<string, Revisioned<T>>();
    const prefix = kvSubjectPrefix(bucket);
    const consumer = await this.js.consumers.get(kvStream(bucket), { filter_subjects: `${prefix}>`, deliver_policy: policy });
    const info = await consumer.info(true);
    if (info.num_pending === 0) return out;
    const messages = await consumer.consume({ max_messages: 1000 });
    for await (const msg of messages as AsyncIterable<JsMsg>) {
      const op = msg.headers?.get(HEADERS.kvOperation);
      const key = msg.subject.slice(prefix.length);
      if (op === 'DEL' || op === 'PURGE') out.delete(key);
      else {
        const found = { record: JSON.parse(decoder.decode(msg.data)) as T, revision: msg.seq };
        if (keep(found.record, found.revision)) {
          const before = out.get(key);
          out.set(key, before === undefined ? found : InForce.later(before, found));
        }
      }
      if (msg.info.pending === 0) break;
    }
    return out;
  }
}

/**
 * The records of one checkpoint write, counted down as they are stored: one promise for them all
 * instead of one per record, which a large checkpoint would keep alive until its last ack.
 */
class StoredCount {
  sent = 0;
  private left = 0;
  private error: Error | undefined;
  private settle: ((error?: Error) => void) | undefined;

  /** One more record sent; the token to publish it with. */
  add(): this {
    this.sent++;
    this.left++;
    return this;
  }

  stored(error: Error | undefined): void {
    this.left--;
    this.error ??= error;
    if (this.settle !== undefined && (this.left === 0 || error !== undefined)) this.settle(this.error);
  }

  /** Resolves once every record sent is stored; rejects with the first refusal. */
  all(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.settle = (error) => (error === undefined ? resolve() : reject(error));
      if (this.left === 0 || this.error !== undefined) this.settle(this.error);
    });
  }
}

const recordStored = (error: Error | undefined, _ack: unknown, records: StoredCount) => records.stored(error);

/** The unacked messages a checkpoint write lets pile up (it sends WRITE_SLICE records between two yields). */
const WRITE_MAX_PENDING = 400;
/** The longest pause between two slices of a checkpoint spread over time (10k records a second at most). */
const MAX_SLICE_PAUSE_MS = 10;

/** JetStream's error code for a compare-and-set that found another last message. */
const WRONG_LAST_SEQUENCE = 10071;

/**
 * Where passivated actors wait in the service: in the state store (JetStream KV), written with the
 * next checkpoint. `has` answers for every passivated actor; `get` only for those in memory, so
 * the service loads (`prefetch`) what inputs will touch before the engine applies them.
 */
export class KvSnapshotStore implements SnapshotStore {
  /** Passivated since the last checkpoint: in memory until a checkpoint has written them. */
  private readonly pending = new Map<string, unknown>();
  /** Loaded from KV for inputs about to be applied (at most LOADED_MAX, oldest let go first). */
  private readonly loaded = new Map<string, unknown>();
  private readonly inKv: Set<string>;

  constructor(
    private readonly kind: 'i' | 'u',
    private readonly state: StateStore,
    passivated: Iterable<string>,
  ) {
    this.inKv = new Set(passivated);
  }

  has(address: string): boolean {
    return this.pending.has(address) || this.loaded.has(address) || this.inKv.has(address);
  }
  get(address: string): unknown {
    return this.pending.get(address) ?? this.loaded.get(address);
  }
  set(address: string, snapshot: unknown): void {
    this.pending.set(address, snapshot);
  }
  delete(address: string): void {
    this.pending.delete(address);
    this.loaded.delete(address);
    this.inKv.delete(address);
  }
  keys(): Iterable<string> {
    return new Set([...this.pending.keys(), ...this.inKv]);
  }
  get size(): number {
    let size = this.inKv.size;
    for (const address of this.pending.keys()) if (!this.inKv.has(address)) size++;
    return size;
  }

  /** Loads these passivated actors from KV (in parallel); those already in memory are skipped. */
  async prefetch(addresses: readonly string[]): Promise<void> {
    const missing = addresses.filter((address) => this.inKv.has(address) && !this.pending.has(address) && !this.loaded.has(address));
    if (missing.length === 0) return;
    // let go of loads nobody used, oldest first (never the batch about to be loaded)
    for (const address of this.loaded.keys()) {
      if (this.loaded.size + missing.length <= LOADED_MAX) break;
      this.loaded.delete(address);
    }
    const snapshots = await Promise.all(missing.map((address) => this.state.snapshot(this.kind, address)));
    missing.forEach((address, i) => {
      if (snapshots[i] === undefined) throw new XrefError('XREF_INTERNAL', `loading passivated actor ${quote(address)}: it has no snapshot in the state store`);
      if (this.inKv.has(address)) this.loaded.set(address, snapshots[i]);
    });
  }

  /**
   * After a checkpoint is durable: the passivated snapshots it wrote leave memory (unless the
   * actor came back and was passivated again meanwhile: that newer snapshot waits for the next).
   */
  written(changes: ReadonlyArray<readonly [string, unknown]>): void {
    for (const [address, snapshot] of changes) {
      if (snapshot === null || this.pending.get(address) !== snapshot) continue;
      this.pending.delete(address);
      this.inKv.add(address);
    }
  }
}

const LOADED_MAX = 20_000;
