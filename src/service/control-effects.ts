import { XrefError } from '../domain/errors.ts';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ForgetCommand, UnlinkCommand, UnsuppressCommand } from '../domain/control.ts';
import type { IdHasher } from '../domain/id-hash.ts';
import { blockKey } from '../engine/engine.ts';
import type { Erasure, Resolved, UserRef } from '../engine/outputs.ts';
import { standingResolutions } from '../nats/standing-resolutions.ts';
import { ControlStore, type ControlRecord, type StoreReceipt } from '../nats/control-store.ts';
import type { JetStreamPublisher } from '../nats/publisher.ts';
import { StreamEraser, type StreamsErased } from '../nats/stream-eraser.ts';

/** A forget whose streams are erased, waiting for a checkpoint past it to purge the buckets. */
interface Pending {
  readonly erasure: Erasure;
}

/**
 * The streaming engine's part of control inputs that is I/O (docs/erasure.md): the request records
 * in `xref_control` (a forget's tombstone, an unlink's block), the erasure of the streams while a
 * forget is applied and, once a checkpoint past it is written, of the buckets, then the receipt;
 * what an unlink retracts from (the user's subject).
 */
export class ControlEffects {
  private pending: Pending[] = [];
  /** Bucket purges run one at a time, in log order. */
  private finishing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly control: ControlStore,
    private readonly eraser: StreamEraser,
    readonly hasher: IdHasher,
    private readonly publisher: JetStreamPublisher,
    private readonly logger: Logger,
  ) {}

  static async open(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, publisher: JetStreamPublisher, logger: Logger): Promise<ControlEffects> {
    const control = new ControlStore(nc);
    return new ControlEffects(js, jsm, control, new StreamEraser(nc, js, jsm), await control.hasher(), publisher, logger);
  }

  /**
   * The state control inputs applied through input `seq` leave: the suppression list (the hashes
   * of the forgets, less the unsuppressed ones, in log order) and the links `unlink --block`
   * refuses. A forget left half-done below `seq` (the engine stopped before its buckets were
   * purged) is finished.
   */
  async resume(seq: number): Promise<{ suppressed: Array<[hash: string, request: string]>; blocked: string[] }> {
    const applied = (records: ControlRecord[]) => records.filter((r) => r.seq !== undefined && r.seq <= seq);
    const forgets = applied(await this.control.all('forget'));
    const lifts = applied(await this.control.all('unsuppress'));
    const steps = [...forgets, ...lifts].sort((a, b) => a.seq! - b.seq!);
    const suppressed = new Map<string, string>();
    for (const step of steps) {
      if (step.verb === 'forget') {
        if (step.suppress !== false) for (const hash of step.hashes ?? []) suppressed.set(hash, step.request);
      } else if (step.id !== undefined) suppressed.delete(step.id.hash);
    }
    for (const record of forgets) {
      if (record.status !== 'erasing' || record.hashes === undefined || record.id === undefined) continue;
      const erasure: Erasure = { request: record.request, seq: record.seq!, userKind: record.id.kind, user: undefined, keys: [], hashes: record.hashes };
      this.pending.push({ erasure });
    }
    this.checkpointWritten(seq);
    const blocked = applied(await this.control.all('unlink')).flatMap((r) => (r.blockedUser !== undefined && r.id !== undefined ? [blockKey(r.id.hash, r.blockedUser)] : []));
    return { suppressed: [...suppressed], blocked };
  }

  /** A user's resolutions standing before an unlink at `seq` (what was sent before it stored first). */
  async standing(user: UserRef, seq: number): Promise<Resolved[]> {
    await this.publisher.flushed();
    return standingResolutions(this.js, this.jsm, user, seq);
  }

  /** An unlink applied: its record says where, and with --block, the user it refuses (by hash). */
  async unlinked(command: UnlinkCommand, seq: number, user: UserRef | undefined): Promise<void> {
    const known = await this.control.get('unlink', command.request);
    const blockedUser = command.block && user !== undefined ? this.hasher(user.kind, user.id) : undefined;
    await this.control.put({ verb: 'unlink', request: command.request, status: 'done', by: command.by, requestedAt: known?.requestedAt ?? command.at, seq, id: command.identifier, ...(blockedUser === undefined ? {} : { blockedUser }) });
  }

  /** A forget's record: requested, or its tombstone when it was applied before. */
  forgetRecord(request: string): Promise<ControlRecord | undefined> {
    return this.control.get('forget', request);
  }

  /**
   * Erases the streams' part of a forget the engine just applied: its tombstone written first (so
   * an interrupted erasure is finished with the same hashes), then what was published before it
   * stored (it must not land after the erasure), then the streams. Returns the counts for its audit record.
   */
  async erase(command: ForgetCommand, erasure: Erasure, known: ControlRecord | undefined): Promise<StreamsErased> {
    const record: ControlRecord = {
      verb: 'forget',
      request: command.request,
      status: 'erasing',
      by: command.by,
      requestedAt: known?.requestedAt ?? command.at,
      seq: erasure.seq,
      id: command.user,
      hashes: erasure.hashes,
      suppress: command.suppress,
    };
    if (known?.seq === undefined) await this.control.put(record);
    await this.publisher.flushed();
    const started = Date.now();
    const streams = await this.eraser.eraseStreams(erasure, this.hasher);
    const remaining = await this.eraser.remaining(streams);
    const receipt: Record<string, StoreReceipt> = {};
    for (const [stream, erased] of Object.entries(streams.erased)) receipt[stream] = { erased, remaining: remaining[stream] ?? 0 };
    await this.control.put({ ...record, receipt });
    this.logger.info({ request: command.request, seq: erasure.seq, receipt, ms: Date.now() - started }, 'forget: streams erased');
    this.pending.push({ erasure });
    return streams;
  }

  /** An unsuppress applied: its record says where. */
  async unsuppressed(command: UnsuppressCommand, seq: number): Promise<void> {
    const known = await this.control.get('unsuppress', command.request);
    await this.control.put({ verb: 'unsuppress', request: command.request, status: 'done', by: command.by, requestedAt: known?.requestedAt ?? command.at, seq, id: command.identifier });
  }

  /** Erases a suppressed event's input. */
  eraseInput(seq: number): Promise<void> {
    return this.eraser.eraseInput(seq);
  }

  /** A checkpoint through `seq` is in force: the forgets at or below it have their buckets purged, and their receipts written. */
  checkpointWritten(seq: number): void {
    const due = this.pending.filter((p) => p.erasure.seq <= seq);
    if (due.length === 0) return;
    this.pending = this.pending.filter((p) => p.erasure.seq > seq);
    this.finishing = this.finishing.then(async () => {
      for (const step of due) {
        try {
          await this.finish(step);
        } catch (error) {
          // left `erasing`: the next start finishes it
          this.logger.error({ err: error, request: step.erasure.request }, 'forget: the buckets could not be purged yet');
        }
      }
    });
  }

  /** Waits for the bucket purges under way. */
  settled(): Promise<void> {
    return this.finishing;
  }

  private async finish({ erasure }: Pending): Promise<void> {
    const kv = await this.eraser.purgeKeys(erasure, this.hasher, await this.eraser.bucketEnds());
    const known = await this.control.get('forget', erasure.request);
    if (known === undefined) throw new XrefError('XREF_INTERNAL', `the tombstone of forget ${erasure.request} is gone`);
    await this.control.put({ ...known, status: 'erased', receipt: { ...known.receipt, ...kv }, erasedAt: new Date().toISOString() });
    this.logger.info({ request: erasure.request, kv }, 'forget: erased');
  }
}
