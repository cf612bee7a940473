import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { LeaseView } from '../runtime/input-log.ts';
import type { ReadModelStore } from './read-model.ts';

/**
 * Who writes into a read model: enough for a person to find the process (the store keeps it as
 * the claim's owner), and unique to this projection.
 */
export function projectionOwner(): string {
  return `${hostname()} pid ${process.pid} (started ${new Date().toISOString()}, ${randomUUID().slice(0, 8)})`;
}

/**
 * One projection writes into a database at a time: the database's claim (`store.claim`), taken
 * for a TTL and renewed every TTL/4 by its holder, which counts itself valid only until TTL −
 * TTL/4 after the start of its last renewal that succeeded (its own monotonic clock), so that it
 * stops before another can claim. The store checks the claim again in every write's transaction
 * (XREF_FENCED otherwise): a holder paused past its TTL writes nothing once another took over.
 * The projection's consumers run under one holding of it (`holding()`).
 */
export class StoreClaim {
  /** This holding's number (the time it was taken, made unique): names its durable consumers. 0 while not held. */
  epoch = 0;
  private validUntil = 0;
  private lost = true;
  private timer: NodeJS.Timeout | undefined;
  private renewal: Promise<void> | undefined;
  private renewFailed = false;

  constructor(
    private readonly store: ReadModelStore,
    readonly owner: string,
    readonly ttlMs: number,
    private readonly logger: Logger,
    /** Called once when a held claim is lost (another took it, or it was not renewed in time). */
    private readonly onLost: (why: string) => void = () => {},
  ) {}

  valid(): boolean {
    return !this.lost && performance.now() < this.validUntil;
  }

  /** The view of this holding of the claim for the consumers that run under it (taken right after `tryClaim`). */
  holding(): ClaimHolding {
    return new ClaimHolding(this, this.epoch);
  }

  /** One attempt to take the claim (or renew one this owner holds): false while another's is in force. */
  async tryClaim(): Promise<boolean> {
    const started = performance.now();
    if (!(await this.store.claim(this.owner, this.ttlMs))) return false;
    this.epoch = Math.max(this.epoch + 1, Date.now());
    this.lost = false;
    this.validUntil = started + this.ttlMs - this.ttlMs / 4;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.renew(), this.ttlMs / 4);
    this.timer.unref();
    return true;
  }

  /** Gives the claim up (a clean stop): another projection may take it at once. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    // a renewal under way would take the claim back after it is released
    await this.renewal;
    if (this.lost) return;
    this.lost = true;
    try {
      await this.store.release(this.owner);
    } catch (error) {
      this.logger.debug({ err: error }, 'the claim on the read model was not released (the database is away): it lapses');
    }
  }

  private renew(): void {
    if (this.renewal === undefined) this.renewal = this.renewOnce().finally(() => (this.renewal = undefined));
  }

  private async renewOnce(): Promise<void> {
    if (this.lost) return;
    if (performance.now() >= this.validUntil) return this.lose('the claim on the read model was not renewed in time (paused, or the database away)');
    const started = performance.now();
    try {
      if (!(await this.store.claim(this.owner, this.ttlMs))) return this.lose('another projection claimed the read model');
      this.validUntil = started + this.ttlMs - this.ttlMs / 4;
      if (this.renewFailed) this.logger.info('the claim on the read model is renewed again');
      this.renewFailed = false;
    } catch (error) {
      if (!this.renewFailed) this.logger.warn({ err: error }, 'the claim on the read model could not be renewed: trying again');
      this.renewFailed = true;
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.onLost(why);
  }
}

/**
 * One holding of the claim, as the consumers that run under it see it: valid while the claim is
 * held since this holding began (a claim lost and taken again is another holding: a consumer of
 * the earlier one never comes back to life).
 */
export class ClaimHolding implements LeaseView {
  constructor(
    private readonly claim: StoreClaim,
    readonly epoch: number,
  ) {}

  valid(): boolean {
    return this.claim.epoch === this.epoch && this.claim.valid();
  }
}
