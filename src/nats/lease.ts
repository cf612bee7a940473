import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { BUCKETS } from './subjects.ts';

/** Who holds a lease: enough for a person to find the process. */
export interface LeaseHolder {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: string;
}

interface LeaseRecord {
  readonly holder: LeaseHolder;
  readonly renewedAt: string;
}

export function thisProcess(): LeaseHolder {
  return { id: randomUUID(), host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
}

export function describeHolder(holder: LeaseHolder): string {
  return `${holder.host} pid ${holder.pid} (started ${holder.startedAt})`;
}

/**
 * One consumer of the log at a time (the engine, or a rebuild): a lease in the `xref_leases`
 * bucket, keyed by consumer name, taken and renewed by compare-and-set on the key's revision.
 *
 * Time is measured on each process's own monotonic clock, never compared across machines:
 * - the holder renews every TTL/4 and counts itself valid only until TTL − TTL/4 after the start
 *   of its last renewal that succeeded (a renewal stored later only makes that sooner);
 * - a standby takes over only once it has seen the same revision for a whole TTL.
 * So a holder stops applying inputs (`valid()` false) before a standby can take its place, also
 * when it was paused (SIGSTOP) or cut off from NATS for longer than the TTL. Each taking of the
 * lease has its own epoch (the revision it was taken at, increasing), which the holder writes into
 * its state so that late writes of a fenced holder can be told apart.
 */
export class Lease {
  private kv: KV | undefined;
  private revision = 0;
  private validUntil = 0;
  private lost = false;
  private timer: NodeJS.Timeout | undefined;
  /** The renewal under way, if any. */
  private renewing: Promise<void> | undefined;
  /** The standby's view: the revision last seen and when (own clock). */
  private seen: { revision: number; at: number } | undefined;
  /** The epoch of this holding (the revision the lease was taken at); 0 while not held. */
  epoch = 0;

  constructor(
    private readonly nc: NatsConnection,
    readonly name: string,
    readonly holder: LeaseHolder,
    readonly ttlMs: number,
    private readonly logger: Logger,
    /** Called once when a held lease is lost (taken over, or not renewed in time). */
    private readonly onLost: (why: string) => void = () => {},
  ) {}

  private async bucket(): Promise<KV> {
    // answers wait no longer than a renewal period: a request lost with a dead server must not
    // hold a takeover (or a resumption) for the client's default 2 s
    this.kv ??= await new Kvm(this.nc).open(BUCKETS.leases, { timeout: Math.min(2000, Math.max(100, this.ttlMs / 4)) });
    return this.kv;
  }

  /** Whether this process holds the lease now (and may apply inputs). */
  valid(): boolean {
    return !this.lost && this.epoch > 0 && performance.now() < this.validUntil;
  }

  /** Who holds the lease now, if anyone (undefined: free or lapsed). */
  async holderNow(): Promise<LeaseHolder | undefined> {
    const entry = await (await this.bucket()).get(this.name);
    return isHeld(entry) ? (entry.json() as LeaseRecord).holder : undefined;
  }

  /**
   * One attempt to take the lease: it is free, released, or its holder has not renewed it for a
   * whole TTL as this process has watched it. Returns the holder that keeps it otherwise.
   */
  async tryAcquire(): Promise<{ acquired: true } | { acquired: false; heldBy: LeaseHolder }> {
    const kv = await this.bucket();
    const entry = await kv.get(this.name);
    const started = performance.now();
    // this process's own lease, not renewed in time (an outage, a pause): nobody took it since
    // (same revision), so it is taken back at once
    if (isHeld(entry) && (entry.json() as LeaseRecord).holder.id !== this.holder.id) {
      const heldBy = (entry.json() as LeaseRecord).holder;
      if (this.seen?.revision !== entry.revision) {
        this.seen = { revision: entry.revision, at: started };
        return { acquired: false, heldBy };
      }
      if (started - this.seen.at < this.ttlMs) return { acquired: false, heldBy };
    }
    try {
      const record = this.record();
      this.revision = entry === null ? await kv.create(this.name, record) : await kv.update(this.name, record, entry.revision);
    } catch (error) {
      // another process took it first (a wrong last revision), or NATS did not answer
      this.logger.debug({ err: error }, 'lease not taken');
      const now = await kv.get(this.name);
      return { acquired: false, heldBy: isHeld(now) ? (now.json() as LeaseRecord).holder : this.holder };
    }
    this.epoch = this.revision;
    this.lost = false;
    this.validUntil = started + this.ttlMs - this.ttlMs / 4;
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.renew(), this.ttlMs / 4);
    this.timer.unref();
    return { acquired: true };
  }

  /** Gives the lease up (a clean stop): a standby takes it at once. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.epoch === 0 || this.lost) return;
    this.lost = true;
    // a renewal under way moves the revision: deleting at the one before it would fail, and the
    // lease would stay held until a standby had watched it for a whole TTL
    await this.renewing;
    try {
      const kv = await this.bucket();
      try {
        await kv.delete(this.name, { previousSeq: this.revision });
      } catch (error) {
        // a renewal whose answer never came may have been stored: the lease is still ours, at a
        // revision this process did not hear of
        if (!(await this.adoptOwnRevision())) throw error;
        await kv.delete(this.name, { previousSeq: this.revision });
      }
    } catch (error) {
      this.logger.debug({ err: error }, 'lease not released (taken over meanwhile, or NATS away)');
    }
  }

  private record(): string {
    return JSON.stringify({ holder: this.holder, renewedAt: new Date().toISOString() } satisfies LeaseRecord);
  }

  private renew(): Promise<void> {
    if (this.lost || this.renewing !== undefined) return Promise.resolve();
    if (performance.now() >= this.validUntil) {
      this.lose('the lease was not renewed in time (paused, or NATS away)');
      return Promise.resolve();
    }
    const started = performance.now();
    this.renewing = (async () => {
      try {
        this.revision = await (await this.bucket()).update(this.name, this.record(), this.revision);
        this.validUntil = started + this.ttlMs - this.ttlMs / 4;
      } catch (error) {
        const ours = /wrong last sequence/i.test((error as Error).message) ? await this.adoptOwnRevision().catch(() => undefined) : undefined;
        if (ours === false) this.lose('another process took the lease');
        else if (ours === undefined) this.logger.warn({ err: error }, 'the lease could not be renewed: trying again');
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  /**
   * The revision moved under this holder: a renewal of its own whose answer never came (a
   * timeout on a busy server) may have been stored. Still its own record: the lease is kept at
   * that revision, its validity unchanged (the next renewal that is answered extends it). Whether
   * the lease is still this process's.
   */
  private async adoptOwnRevision(): Promise<boolean> {
    const now = await (await this.bucket()).get(this.name);
    if (!isHeld(now) || (now.json() as LeaseRecord).holder.id !== this.holder.id) return false;
    this.revision = now.revision;
    return true;
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.onLost(why);
  }
}

function isHeld(entry: KvEntry | null): entry is KvEntry {
  return entry !== null && entry.operation === 'PUT';
}
