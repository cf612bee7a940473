import { XrefError } from '../domain/errors.ts';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ControlVerb, HashedId } from '../domain/control.ts';
import { type IdHasher, idHasher, newSalt } from '../domain/id-hash.ts';
import { BUCKETS, controlKeys } from './subjects.ts';

/** Where a forget stands (docs/erasure.md): asked, applied by the engine, its stores checked, the read model's part done too. */
export type ForgetStatus = 'requested' | 'erasing' | 'erased' | 'done';

/** One store's part of a receipt: what was erased, and what remains of the user once it was. */
export interface StoreReceipt {
  readonly erased: number;
  readonly remaining: number;
}

/**
 * A control request's record in `xref_control` (`<verb>.<request>`). A forget's is its tombstone:
 * the hashes of the cluster it erased (never the ids), the input it was applied at, and once the
 * engine's part is done, its receipt.
 */
export interface ControlRecord {
  readonly verb: ControlVerb;
  readonly request: string;
  readonly status: ForgetStatus;
  readonly by: string;
  readonly requestedAt: string;
  /** The input sequence of the control input, once the engine applied it. */
  readonly seq?: number;
  /** forget: the user, by kind and hash; unsuppress: the id lifted. */
  readonly id?: HashedId;
  /** unlink --block: the hash of the user the identifier may not be linked to again. */
  readonly blockedUser?: string;
  /** forget: whether the cluster's ids are suppressed. */
  readonly suppress?: boolean;
  /** forget: the hashes of the user's cluster (its own id first), as the first application found it. */
  readonly hashes?: readonly string[];
  /** forget: per stream and bucket, what the engine erased and what remains. */
  readonly receipt?: Readonly<Record<string, StoreReceipt>>;
  /** When the engine's part finished (ISO 8601). */
  readonly erasedAt?: string;
}

/** A forget's hashes as its first application found them, once it was applied (its tombstone); else undefined. */
export function appliedHashes(record: ControlRecord | undefined): readonly string[] | undefined {
  return record?.seq === undefined ? undefined : record.hashes;
}

/**
 * The `xref_control` bucket: the installation's salt (made once, by whoever needs it first) and
 * the records of control requests. Everything in it is hashes, counts and times.
 */
export class ControlStore {
  private kv: Promise<KV> | undefined;
  private hasherOnce: Promise<IdHasher> | undefined;

  constructor(private readonly nc: NatsConnection) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.nc).create(BUCKETS.control, { history: 1 });
    return this.kv;
  }

  /** The installation's salt: read, or made now if there is none (two makers agree: the first one's is kept). */
  async salt(): Promise<string> {
    const kv = await this.bucket();
    const found = await kv.get(controlKeys.salt);
    if (found?.operation === 'PUT') return found.string();
    try {
      await kv.create(controlKeys.salt, newSalt());
    } catch {
      // another process made it first: its salt is the one
    }
    const made = await kv.get(controlKeys.salt);
    if (made?.operation !== 'PUT') throw new XrefError('XREF_INTERNAL', 'the installation salt could not be read back from xref_control');
    return made.string();
  }

  /** The hash function under the installation's salt. */
  hasher(): Promise<IdHasher> {
    this.hasherOnce ??= this.salt().then(idHasher);
    return this.hasherOnce;
  }

  async get(verb: ControlVerb, request: string): Promise<ControlRecord | undefined> {
    const entry = await (await this.bucket()).get(controlKeys.request(verb, request));
    return entry?.operation === 'PUT' ? (entry.json() as ControlRecord) : undefined;
  }

  async put(record: ControlRecord): Promise<void> {
    await (await this.bucket()).put(controlKeys.request(record.verb, record.request), JSON.stringify(record));
  }

  /** Every record of a verb. */
  async all(verb: ControlVerb): Promise<ControlRecord[]> {
    const kv = await this.bucket();
    const out: ControlRecord[] = [];
    const keys: string[] = [];
    for await (const key of await kv.keys(controlKeys.ofVerb(verb))) keys.push(key);
    for (const key of keys) {
      const entry = await kv.get(key);
      if (entry?.operation === 'PUT') out.push(entry.json() as ControlRecord);
    }
    return out;
  }
}
