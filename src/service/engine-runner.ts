import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.ts';
import type { Settings } from '../settings.ts';
import { Lease, describeHolder, thisProcess } from '../nats/lease.ts';
import { FencedError } from '../engine/state-store.ts';
import { ENGINE_CONSUMER, EngineService } from './engine-service.ts';

export type EngineRole = 'standby' | 'active' | 'stopped';

export interface EngineRunnerOptions {
  readonly nc: NatsConnection;
  readonly config: Config;
  readonly settings: Settings;
  readonly logger: Logger;
  /** The engine stopped for good (not an outage, not a lost lease). */
  readonly onFailure: (error: Error) => void;
}

/**
 * One engine per log, with hot standbys: the engine runs only while this process holds the engine
 * lease. A process that finds it held waits as a standby and takes over once the lease lapses
 * (its holder died, was paused or cut off past `XREF_LEASE_TTL_MS`), resuming from the last
 * checkpoint. An engine that loses its lease stops applying inputs before another can start
 * (the lease's own clock rule), writes nothing more to the state, and becomes a standby.
 */
export class EngineRunner {
  role: EngineRole = 'standby';
  engine: EngineService | undefined;
  private readonly lease: Lease;
  private stopping = false;
  private readonly loop: Promise<void>;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  /** The engine being started, if any. */
  private starting: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: EngineRunnerOptions) {
    this.lease = new Lease(options.nc, ENGINE_CONSUMER, thisProcess(), options.settings.leaseTtlMs, options.logger.child({ component: 'lease' }), (why) =>
      this.engine?.fence(why),
    );
    this.loop = this.run();
  }

  /** The failure that stopped the engine for good, if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Stops the engine (a final checkpoint when it is active) and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await this.starting;
    await this.engine?.stop();
    await this.lease.release();
    this.role = 'stopped';
  }

  private async run(): Promise<void> {
    const { logger, settings } = this.options;
    let standbyFor: string | undefined;
    while (!this.stopping) {
      const attempt = await this.lease.tryAcquire().catch((error: Error) => ({ acquired: false as const, error }));
      if (!attempt.acquired) {
        const holder = 'heldBy' in attempt ? attempt.heldBy : undefined;
        if (holder !== undefined && describeHolder(holder) !== standbyFor) {
          standbyFor = describeHolder(holder);
          logger.info({ holder, ttlMs: settings.leaseTtlMs }, `standby: the engine lease is held by ${standbyFor}; taking over if it lapses`);
        }
        await this.pause(Math.min(1000, settings.leaseTtlMs / 4));
        continue;
      }
      if (standbyFor !== undefined) logger.info(`taking over: the engine lease lapsed (held by ${standbyFor})`);
      standbyFor = undefined;
      const fenced = new Promise<string>((resolve) => {
        this.starting = EngineService.start({ ...this.options, lease: this.lease, onFenced: resolve, onFailure: (error) => this.fail(error) })
          .then((engine) => {
            this.engine = engine;
            this.role = 'active';
            if (this.stopping) resolve('stopping');
          })
          // a lease that lapsed while the engine was starting (NATS away): stand by again
          .catch((error: Error) => (error instanceof FencedError ? resolve(error.message) : this.fail(error)));
      });
      const why = await Promise.race([fenced, new Promise<string>((resolve) => (this.wake = () => resolve('stopping')))]);
      if (why === 'stopping' || this.failure !== undefined) return;
      logger.warn({ why }, 'the engine lease was lost: stopped applying inputs, standing by');
      await this.engine?.stop();
      this.engine = undefined;
      this.role = 'standby';
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake?.();
    this.options.onFailure(error);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
