import { XrefError } from '../domain/errors.ts';
import type { IdHasher } from '../domain/id-hash.ts';

/** Hashes remembered before the cache starts afresh (it only saves recomputing them). */
const CACHE_MAX = 100_000;

/**
 * The suppression list: the salted hashes of forgotten ids (docs/erasure.md), each with the
 * forget request that suppressed it. An event's ids are hashed only while the list is not empty,
 * and each id once while the list does not change.
 */
export class SuppressionList {
  private readonly requests = new Map<string, string>();
  private readonly hashes = new Map<string, string>();

  constructor(private readonly hasher: IdHasher | undefined) {}

  get size(): number {
    return this.requests.size;
  }

  /** Suppresses each hash, for `request`. */
  add(hashes: Iterable<string>, request: string): void {
    for (const hash of hashes) this.requests.set(hash, request);
  }

  /** Lifts one hash; whether it was suppressed. */
  lift(hash: string): boolean {
    return this.requests.delete(hash);
  }

  /** The forget request that suppressed this id, if one did. */
  check(kind: string, value: string): string | undefined {
    if (this.requests.size === 0 || this.hasher === undefined) return undefined;
    const key = `${kind}:${value}`;
    let hash = this.hashes.get(key);
    if (hash === undefined) {
      if (this.hashes.size >= CACHE_MAX) this.hashes.clear();
      hash = this.hasher(kind, value);
      this.hashes.set(key, hash);
    }
    return this.requests.get(hash);
  }

  /** The hash of an id under the installation's salt. */
  hash(kind: string, value: string): string {
    if (this.hasher === undefined) throw new XrefError('XREF_INTERNAL', 'no installation salt: control inputs cannot be applied');
    return this.hasher(kind, value);
  }

}
