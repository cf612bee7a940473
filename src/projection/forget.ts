/**
 * The audit stream's control records, made ready to apply (docs/read-model.md, forgetting a
 * user). A forget is applied only once every other stream the projection reads is written
 * through where it ended once the engine had erased the user (`through`): a row of the user read
 * before the erasure and still on its way through another stream is then in the read model, and
 * is deleted with the rest; nothing of the user comes after. A suppressed event likewise waits
 * for XREF_IN to be written through it. Then the forget's user and cluster are found by hashing
 * what the read model holds against the request's tombstone (`xref_control`), and handed to the
 * store, which deletes them in the audit batch's own transaction. An unlink waits for nothing (the
 * link it ends came before it in the same stream): its identifier is found by hashing the links
 * of its kind against its request's record, and the store ends that link.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { isXrefError } from '../domain/errors.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { ControlRecord } from '../nats/control-store.ts';
import type { IdHasher } from '../domain/id-hash.ts';
import { type NatsWaits, untilAnswered } from '../nats/retry.ts';
import { STREAMS } from '../nats/subjects.ts';
import type { AuditRow, ForgetRecord, ForgetRow, ProjectedStream, ReadModelStore, StreamPosition, SuppressedRow, UnlinkRecord, UnlinkRow } from './read-model.ts';
import type { ControlAction } from './rows.ts';
import { PROJECTED_STREAM_NAMES } from './stream-identity.ts';
import { incarnationNow } from './stream-projector.ts';

/** What the control records of a batch come to: the forgets, suppressed events and unlinks to apply, or where to stop. */
export interface Settled {
  readonly forgets: readonly ForgetRow[];
  readonly suppressed: readonly SuppressedRow[];
  readonly unlinks: readonly UnlinkRow[];
  /**
   * Given up (a stop, the claim lost) at the record of this XREF_AUDIT sequence: only what comes
   * before it may be written; it is read again at the next start.
   */
  readonly before?: number;
}

/** Where tombstones, unlinks' records and the salt are (a ControlStore). */
export interface Tombstones {
  get(verb: 'forget' | 'unlink', request: string): Promise<ControlRecord | undefined>;
  hasher(): Promise<IdHasher>;
}

export interface ControlSettlerOptions {
  readonly store: ReadModelStore;
  readonly tombstones: Tombstones;
  readonly jsm: JetStreamManager;
  readonly waits: NatsWaits;
  readonly logger: Logger;
  /** The streams the projection reads. */
  readonly streams: readonly ProjectedStream[];
  /** Each stream's position in the read model now. */
  written(stream: ProjectedStream): StreamPosition | undefined;
  /** Asks a stream's projector to look at its stream now (it then moves past a tail it never reads: control inputs, erased messages). */
  nudge(stream: ProjectedStream): void;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The audit reasons that make a link. */
const LINKING = new Set(['link', 'relink']);

/** Candidates hashed per turn of the event loop: a million users take seconds, and the other streams are read meanwhile. */
const HASHES_PER_TURN = 5000;

/** The first candidate whose hash matches, hashed a chunk per turn of the event loop. */
async function findHashed(candidates: readonly string[], matches: (candidate: string) => boolean): Promise<string | undefined> {
  for (let at = 0; at < candidates.length; at += HASHES_PER_TURN) {
    if (at > 0) await new Promise((resolve) => setImmediate(resolve));
    const found = candidates.slice(at, at + HASHES_PER_TURN).find(matches);
    if (found !== undefined) return found;
  }
  return undefined;
}

export class ControlSettler {
  constructor(private readonly options: ControlSettlerOptions) {}

  /**
   * Waits until each of `controls` (in stream order) may be applied and finds what it erases;
   * gives up, saying where, once `giveUp()` (checked as it waits).
   */
  async settle(controls: readonly ControlAction[], audit: readonly AuditRow[], giveUp: () => boolean): Promise<Settled> {
    const forgets: ForgetRow[] = [];
    const suppressed: SuppressedRow[] = [];
    const unlinks: UnlinkRow[] = [];
    for (const control of controls) {
      if ('suppressed' in control) {
        const row = control.suppressed;
        if (!(await this.writtenThrough(new Map([['in', row.seq]]), giveUp))) return { forgets, suppressed, unlinks, before: row.streamSeq };
        suppressed.push(row);
        continue;
      }
      if ('unlink' in control) {
        const row = await this.untilRead(() => this.unlinkRow(control.unlink, audit), giveUp);
        if (row === 'gave up') return { forgets, suppressed, unlinks, before: control.unlink.streamSeq };
        if (row !== undefined) unlinks.push(row);
        continue;
      }
      const record = control.forget;
      if (!(await this.writtenThrough(this.targets(record), giveUp))) return { forgets, suppressed, unlinks, before: record.streamSeq };
      const row = await this.untilRead(() => this.forgetRow(record), giveUp);
      if (row === 'gave up') return { forgets, suppressed, unlinks, before: record.streamSeq };
      if (row !== undefined) forgets.push(row);
    }
    return { forgets, suppressed, unlinks };
  }

  /** Logs what the read model's part of each forget came to (written with the batch). */
  async written(forgets: readonly ForgetRow[]): Promise<void> {
    const { store, logger } = this.options;
    for (const forget of forgets) {
      const receipt = await store.erasure(forget.request).catch(() => undefined);
      if (receipt === undefined) continue;
      if (receipt.remaining > 0) logger.error({ request: forget.request, receipt }, 'a forget left rows of its user in the read model');
      else logger.info({ request: forget.request, found: forget.user !== undefined, deleted: receipt.deleted }, 'a user is forgotten in the read model');
    }
  }

  /** Per other stream, the sequence to be written through: `through`, or where the stream ends now (a record without it). */
  private targets(record: ForgetRecord): Map<ProjectedStream, number> {
    const targets = new Map<ProjectedStream, number>();
    for (const stream of ['in', 'groups', 'unmatched'] as const) targets.set(stream, record.through?.[STREAMS[stream]] ?? Infinity);
    return targets;
  }

  /**
   * Resolves true once every stream of `targets` the projection reads is written through its
   * target (or through its end, should it end before: the stream was made again), false once
   * `giveUp()`.
   */
  private async writtenThrough(targets: ReadonlyMap<ProjectedStream, number>, giveUp: () => boolean): Promise<boolean> {
    const { jsm, streams, written, nudge, logger, waits } = this.options;
    const wanted = new Map<ProjectedStream, number>();
    for (const [stream, through] of targets) {
      if (!streams.includes(stream)) continue;
      const now = await untilAnswered('looking at a projected stream', () => incarnationNow(jsm, PROJECTED_STREAM_NAMES[stream].stream), { logger, waits, idempotent: true });
      const target = Math.min(through, now?.lastSeq ?? 0);
      if (target > 0) wanted.set(stream, target);
    }
    for (let round = 0; ; round++) {
      const behind = [...wanted].filter(([stream, target]) => (written(stream)?.seq ?? 0) < target);
      if (behind.length === 0) return true;
      if (giveUp()) return false;
      if (round % 5 === 0) for (const [stream] of behind) nudge(stream);
      await pause(Math.min(250, 20 * (round + 1)));
    }
  }

  /**
   * The forget's user and cluster, found by hashing; undefined when it was applied already (its
   * receipt is there) or cannot be (its tombstone is gone: nothing says whom it forgot, so
   * nothing is erased, and that is logged as an error).
   */
  private async forgetRow(record: ForgetRecord): Promise<ForgetRow | undefined> {
    const { store, tombstones, logger, waits } = this.options;
    const { request, streamSeq } = record;
    if ((await store.erasure(request)) !== undefined) return undefined;
    const tombstone = await untilAnswered('reading a forget tombstone', () => tombstones.get('forget', request), { logger, waits, idempotent: true });
    if (tombstone?.id === undefined || tombstone.hashes === undefined) {
      logger.error({ request, streamSeq }, 'the tombstone of a forget is not in xref_control: whom it forgot is unknown, so nothing is erased from the read model for it (the audit record is kept)');
      return undefined;
    }
    const hash = await untilAnswered('reading the installation salt', () => tombstones.hasher(), { logger, waits, idempotent: true });
    const { kind, hash: wanted } = tombstone.id;
    const cluster = new Set(tombstone.hashes);
    const at = new Date().toISOString();
    const id = await findHashed(await store.userIds(kind), (candidate) => hash(kind, candidate) === wanted);
    if (id === undefined) return { request, streamSeq, identifiers: [], at };
    const user = { kind, id };
    const identifiers: Identifier[] = [{ kind, value: id }];
    for (const identifier of await store.userIdentifiers(user)) {
      if ((identifier.kind !== kind || identifier.value !== id) && cluster.has(hash(identifier.kind, identifier.value))) identifiers.push(identifier);
    }
    return { request, streamSeq, user, identifiers, at };
  }

  /**
   * The link an unlink ends: its identifier, found by hashing the values of its kind linked in
   * the read model (and in the audit rows before it in its batch, not written yet) against its
   * request's record. Undefined when the engine found nothing linked, when the read model holds no
   * such link, or when the record is gone (logged as an error: the link then stays).
   */
  private async unlinkRow(record: UnlinkRecord, audit: readonly AuditRow[]): Promise<UnlinkRow | undefined> {
    const { store, tombstones, logger, waits } = this.options;
    if (!record.found) return undefined;
    const { request, streamSeq, kind } = record;
    const known = await untilAnswered('reading an unlink record', () => tombstones.get('unlink', request), { logger, waits, idempotent: true });
    if (known?.id === undefined || known.id.kind !== kind) {
      logger.error({ request, streamSeq }, 'the record of an unlink is not in xref_control: which identifier it unlinked is unknown, so its link stays in the read model (the retractions are applied)');
      return undefined;
    }
    const hash = await untilAnswered('reading the installation salt', () => tombstones.hasher(), { logger, waits, idempotent: true });
    const candidates = new Set(await store.linkedValues(kind));
    for (const row of audit) if (row.streamSeq < streamSeq && LINKING.has(row.reason) && row.identifier.kind === kind) candidates.add(row.identifier.value);
    const wanted = known.id.hash;
    const value = await findHashed([...candidates], (candidate) => hash(kind, candidate) === wanted);
    return value === undefined ? undefined : { streamSeq, seq: record.seq, identifier: { kind, value } };
  }

  /** `read()` until the database answers (an outage is waited out, logged once), or 'gave up'. */
  private async untilRead<T>(read: () => Promise<T>, giveUp: () => boolean): Promise<T | 'gave up'> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (error) {
        if (!isXrefError(error, 'XREF_DATABASE')) throw error;
        if (attempt === 0) this.options.logger.warn({ err: error }, 'a control record cannot be looked up in the read model (the database away?): trying again');
        if (giveUp()) return 'gave up';
        await pause(Math.min(1000, 50 * 2 ** Math.min(attempt, 10)));
      }
    }
  }
}
