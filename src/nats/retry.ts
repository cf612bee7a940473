import { JetStreamApiError } from '@nats-io/jetstream';
import { ConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Whether a failed call to NATS may answer if asked again: no answer in time, nobody listening
 * yet (JetStream restarting), a connection lost, or a JetStream API error of the 5xx kind. A
 * refusal (a bad request, a missing stream, a closed connection) is not.
 */
export function isTransientNatsError(error: unknown): boolean {
  if (error instanceof TimeoutError || error instanceof NoRespondersError || error instanceof ConnectionError) return true;
  if (error instanceof RequestError) return error.isNoResponders() || error.cause === undefined || isTransientNatsError(error.cause);
  if (error instanceof JetStreamApiError) return error.status >= 500;
  // not exported by the client: JetStream not (yet) enabled on a server starting up
  return error instanceof Error && error.name === 'JetStreamNotEnabled';
}

/** Who waits for NATS, and since when: read by readiness and metrics. */
export class NatsWaits {
  private readonly waiting = new Map<string, number>();
  private longest = 0;

  begin(what: string): void {
    if (!this.waiting.has(what)) this.waiting.set(what, Date.now());
  }
  end(what: string): void {
    const since = this.waiting.get(what);
    if (since === undefined) return;
    this.waiting.delete(what);
    this.longest = Math.max(this.longest, Date.now() - since);
  }
  /** What is waiting now, e.g. `['loading passivated actors']`. */
  get current(): string[] {
    return [...this.waiting.keys()];
  }
  /** The longest wait that ended so far (ms). */
  get longestMs(): number {
    return this.longest;
  }
}

export interface RetryOptions {
  readonly logger: Logger;
  /** Where the wait shows (readiness, metrics). */
  readonly waits?: NatsWaits;
  /** Stops retrying (rejecting with the last error) once this is true, e.g. at shutdown. */
  readonly givenUp?: () => boolean;
  /** Longest pause between two attempts (default 1 s). */
  readonly maxDelayMs?: number;
}

/**
 * Runs `call` until it answers: a transient failure (see `isTransientNatsError`) is retried with
 * backoff, however long NATS is away; any other failure is thrown at once. An outage is logged
 * once when it starts and once when it ends.
 */
export async function untilAnswered<T>(what: string, call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { logger, waits, givenUp = () => false, maxDelayMs = 1000 } = options;
  let attempts = 0;
  for (;;) {
    try {
      const result = await call();
      if (attempts > 0) {
        waits?.end(what);
        logger.info({ what, attempts }, 'NATS answered again: going on');
      }
      return result;
    } catch (error) {
      if (!isTransientNatsError(error) || givenUp()) {
        if (attempts > 0) waits?.end(what);
        throw error;
      }
      if (attempts === 0) {
        waits?.begin(what);
        logger.warn({ what, err: error }, 'NATS does not answer: waiting and retrying');
      }
      attempts++;
      await new Promise((resolve) => setTimeout(resolve, Math.min(maxDelayMs, 50 * 2 ** Math.min(attempts, 10))));
    }
  }
}
