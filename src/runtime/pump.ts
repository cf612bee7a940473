/**
 * The longest a pump applies inputs in one go before it lets the event loop run (checked every 32
 * inputs). Until it does, no ack can be read, so every input applied in the run stays in flight: a
 * backlog applied in one long run kept thousands of messages alive through young collections,
 * which promoted them to the old generation and brought the next major collection, and its pause,
 * closer.
 */
export const TURN_MS = 8;

/**
 * One step of a pump: `false` when there is nothing more to do now (nothing queued, or it must
 * stop), undefined when it was done synchronously, or a promise when it must be awaited (a load,
 * backpressure).
 */
export type Step = Promise<unknown> | undefined | false;

export interface PumpWork {
  /** Whether the pump may run at all (false once the consumer failed or was fenced). */
  canRun(): boolean;
  /** Applies the next input (or whatever comes between two inputs). */
  step(): Step;
  /** Once a drain ended: whether work is left that should start another at once. */
  more(): boolean;
  /** A step threw or rejected: processing stops. */
  failed(error: Error): void;
}

/**
 * Drains queued work in order, one step at a time, synchronously while steps are: awaiting only
 * what a step returns, and giving up the event loop every TURN_MS, so that the NATS client writes
 * a batch of publishes at once instead of one socket write per input, and acks can be read.
 */
export class Pump {
  private running: Promise<void> | undefined;

  constructor(private readonly work: PumpWork) {}

  /** Starts a drain, unless one runs already or the work may not run. */
  readonly wake = (): void => {
    if (this.running !== undefined || !this.work.canRun()) return;
    this.running = this.drain()
      .catch((error: Error) => this.work.failed(error))
      .finally(() => {
        this.running = undefined;
        if (this.work.canRun() && this.work.more()) this.wake();
      });
  };

  /** Resolves once no drain runs (one that starts another at its end is waited for too). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async drain(): Promise<void> {
    let turnStart = performance.now();
    for (let applied = 1; ; applied++) {
      const wait = this.work.step();
      if (wait === false) return;
      if (wait !== undefined) {
        await wait;
        turnStart = performance.now();
      } else if ((applied & 31) === 0 && performance.now() - turnStart > TURN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        turnStart = performance.now();
      }
    }
  }
}
