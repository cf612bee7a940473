import { type JetStreamClient, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { IdHasher } from '../domain/id-hash.ts';
import { parseIdKey } from '../domain/identifiers.ts';
import { erasureMatch } from '../engine/erasure-match.ts';
import type { Erasure } from '../engine/outputs.ts';
import type { StoreReceipt } from './control-store.ts';
import { readStream } from './log-reader.ts';
import { BUCKETS, HEADERS, STREAMS, addressKey, decodeToken, keyAddress, kvStream, kvSubject, snapshotKeys, subjects } from './subjects.ts';

/** The server's codes: a sequence not in the stream; a message delete that failed (its message says why). */
const SEQUENCE_NOT_FOUND = 10043;
const MSG_DELETE_FAILED = 10057;

/**
 * Whether a delete failed because the message is not there: erased before ("sequence N not
 * found" once its block moved on, "no message found" before), or past the stream's end.
 */
function isAlreadyGone(error: unknown): boolean {
  if (!(error instanceof JetStreamApiError)) return false;
  return error.code === SEQUENCE_NOT_FOUND || (error.code === MSG_DELETE_FAILED && /no message found|not found|EOF/i.test(error.message));
}

/** Deletes sent at once. */
const PARALLEL = 64;

/** What the streams' part of an erasure did. */
export interface StreamsErased {
  /** Records erased per stream. */
  readonly erased: Record<string, number>;
  /** Where each stream ended once they were gone. */
  readonly through: Record<string, number>;
  /** The sequences erased: inputs from XREF_IN, records from XREF_UNMATCHED and XREF_AUDIT. */
  readonly inputs: readonly number[];
  readonly unmatched: readonly number[];
  readonly audit: readonly number[];
  /** The user's subjects in XREF_GROUPS. */
  readonly groupSubjects: readonly string[];
}

const OUTPUT_STREAMS = [STREAMS.in, STREAMS.groups, STREAMS.unmatched, STREAMS.audit] as const;

/**
 * Erases a forgotten user from the streams and the state buckets (docs/erasure.md, Forget), and
 * checks that nothing of the user remains. Every step can run again after an interruption: what is
 * already gone is skipped, and the user's subject, which lists the inputs to erase, goes last.
 */
export class StreamEraser {
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  /** The streams' part: the user's inputs, unmatched and audit records, then the user's subject. */
  async eraseStreams(erasure: Erasure, hasher: IdHasher): Promise<StreamsErased> {
    const match = erasureMatch(erasure, hasher);
    const groupSubjects = await this.userSubjects(erasure, hasher);
    // the inputs of the user's events: its resolutions less those an unlink took back (now another's, or no one's)
    const standing = new Map<string, number>();
    let grouped = 0;
    for (const filter of groupSubjects) {
      grouped += await readStream(this.js, this.jsm, { stream: STREAMS.groups, filter, headersOnly: true }, (msg) => {
        const retraction = msg.headers?.get(HEADERS.retraction);
        const head = msg.headers?.get(HEADERS.resolution);
        if (retraction) standing.delete((JSON.parse(retraction) as { output: string }).output);
        else if (head) standing.set(msg.headers!.get(HEADERS.msgId), (JSON.parse(head) as { seq: number }).seq);
      });
    }
    const inputs = new Set(standing.values());
    const unmatched = await this.matching(STREAMS.unmatched, (record: { seq: number; event: { ids: Record<string, string> } }) => {
      if (!match.event(record.event)) return false;
      inputs.add(record.seq);
      return true;
    });
    const audit = await this.matching(STREAMS.audit, (record: Parameters<typeof match.audit>[0]) => match.audit(record));
    await this.deleteAll(STREAMS.in, [...inputs]);
    await this.deleteAll(STREAMS.unmatched, unmatched);
    await this.deleteAll(STREAMS.audit, audit);
    for (const filter of groupSubjects) await this.jsm.streams.purge(STREAMS.groups, { filter });
    const through: Record<string, number> = {};
    for (const stream of OUTPUT_STREAMS) through[stream] = (await this.jsm.streams.info(stream)).state.last_seq;
    return {
      erased: { [STREAMS.in]: inputs.size, [STREAMS.groups]: grouped, [STREAMS.unmatched]: unmatched.length, [STREAMS.audit]: audit.length },
      through,
      inputs: [...inputs],
      unmatched,
      audit,
      groupSubjects,
    };
  }

  /** Erases one input (a suppressed event's). */
  async eraseInput(seq: number): Promise<void> {
    await this.deleteAll(STREAMS.in, [seq]);
  }

  /**
   * The buckets' part, once a checkpoint past the forget is in force: every revision of the
   * cluster's links and snapshots written before `before` (each bucket's stream end then), so a
   * later write of a key (an id linked again after a forget without suppression) stays.
   */
  async purgeKeys(erasure: Erasure, hasher: IdHasher, before: Record<string, number>): Promise<Record<string, StoreReceipt>> {
    const receipt: Record<string, StoreReceipt> = {};
    for (const [bucket, keys] of await this.bucketKeys(erasure, hasher)) {
      let erased = 0;
      let remaining = 0;
      for (const key of keys) {
        const subject = kvSubject(bucket, key);
        erased += await this.count(kvStream(bucket), subject);
        await this.jsm.streams.purge(kvStream(bucket), { filter: subject, seq: (before[bucket] ?? 0) + 1 });
        remaining += await this.count(kvStream(bucket), subject);
      }
      receipt[bucket] = { erased, remaining };
    }
    return receipt;
  }

  /** Each state bucket's stream end now. */
  async bucketEnds(): Promise<Record<string, number>> {
    const ends: Record<string, number> = {};
    for (const bucket of [BUCKETS.links, BUCKETS.snapshots]) ends[bucket] = (await this.jsm.streams.info(kvStream(bucket))).state.last_seq;
    return ends;
  }

  /**
   * What remains of the user in each stream after the streams' part (0 each, unless something is
   * wrong): each record the erasure found, read again by sequence, and the user's subjects counted.
   * The scans found every record of the user: none is written while the forget is applied (the
   * engine waits for it), and none after (the ids are suppressed, or a new link is a new record).
   */
  async remaining(erased: StreamsErased): Promise<Record<string, number>> {
    let grouped = 0;
    for (const filter of erased.groupSubjects) grouped += await this.count(STREAMS.groups, filter);
    return {
      [STREAMS.in]: await this.stillThere(STREAMS.in, erased.inputs),
      [STREAMS.groups]: grouped,
      [STREAMS.unmatched]: await this.stillThere(STREAMS.unmatched, erased.unmatched),
      [STREAMS.audit]: await this.stillThere(STREAMS.audit, erased.audit),
    };
  }

  /** How many of these sequences a stream still holds. */
  private async stillThere(stream: string, seqs: readonly number[]): Promise<number> {
    let found = 0;
    await inBatches(seqs, async (seq) => {
      if ((await this.jsm.streams.getMessage(stream, { seq })) !== null) found++;
    });
    return found;
  }

  /** The user's own subject, or (the engine no longer knew the user) each subject of its kind whose id hashes to the user's hash. */
  private async userSubjects(erasure: Erasure, hasher: IdHasher): Promise<string[]> {
    if (erasure.user !== undefined) return [subjects.group(erasure.user.kind, erasure.user.id)];
    const prefix = subjects.group(erasure.userKind, '').slice(0, -1);
    const { state } = await this.jsm.streams.info(STREAMS.groups, { subjects_filter: `${prefix}>` });
    return Object.keys(state.subjects ?? {}).filter((subject) => hasher(erasure.userKind, decodeToken(subject.slice(prefix.length))) === erasure.hashes[0]);
  }

  /** The keys of the cluster in each bucket: from the ids when the engine still knew them all, else by hashing the buckets' keys. */
  private async bucketKeys(erasure: Erasure, hasher: IdHasher): Promise<Array<[bucket: string, keys: string[]]>> {
    if (erasure.keys.length >= erasure.hashes.length) {
      const [userKey, ...identifiers] = erasure.keys;
      return [
        [BUCKETS.links, identifiers.map(addressKey)],
        [BUCKETS.snapshots, [...(userKey === undefined ? [] : [snapshotKeys.user(userKey)]), ...identifiers.map(snapshotKeys.identifier)]],
      ];
    }
    const hashes = new Set(erasure.hashes);
    const ours = (address: string) => {
      const id = parseIdKey(address);
      return hashes.has(hasher(id.kind, id.value));
    };
    const kvm = new Kvm(this.nc);
    const list = async (bucket: string) => {
      const keys: string[] = [];
      for await (const key of await (await kvm.open(bucket)).keys()) keys.push(key);
      return keys;
    };
    const links = (await list(BUCKETS.links)).filter((key) => ours(keyAddress(key)));
    const snapshots = (await list(BUCKETS.snapshots)).filter((key) => {
      for (const prefix of [snapshotKeys.identifierPrefix, snapshotKeys.userPrefix]) if (key.startsWith(prefix)) return ours(keyAddress(key.slice(prefix.length)));
      return false;
    });
    return [
      [BUCKETS.links, links],
      [BUCKETS.snapshots, snapshots],
    ];
  }

  /** The sequences of a stream's records `test` takes. */
  private async matching<T>(stream: string, test: (record: T) => boolean): Promise<number[]> {
    const out: number[] = [];
    await readStream(this.js, this.jsm, { stream }, (msg) => {
      if (test(msg.json<T>())) out.push(msg.seq);
    });
    return out;
  }

  private async count(stream: string, filter: string): Promise<number> {
    const { state } = await this.jsm.streams.info(stream, { subjects_filter: filter });
    return Object.values(state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  }

  /** Erases (overwrites) messages by sequence; one already gone is skipped. */
  private deleteAll(stream: string, seqs: readonly number[]): Promise<void> {
    return inBatches(seqs, (seq) =>
      this.jsm.streams.deleteMessage(stream, seq, true).then(
        () => undefined,
        (error: unknown) => {
          if (!isAlreadyGone(error)) throw error;
        },
      ),
    );
  }
}

/** Runs `work` on each item, `PARALLEL` at a time. */
async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += PARALLEL) await Promise.all(items.slice(i, i + PARALLEL).map(work));
}
