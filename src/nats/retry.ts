import { JetStreamApiError } from '@nats-io/jetstream';
import { ConnectionError, type NatsConnection, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';

/**
 * Whether a failed call to NATS may answer if asked again: no answer in time, nobody listening
 * yet (JetStream restarting), a connection lost, or a JetStream API error of the 5xx kind. A
 * refusal (a bad request, a missing stream, a closed connection) is not.
 */
export function isTransientNatsError(error: unknown): boolean {
  if (error instanceof TimeoutError || error instanceof NoRespondersError || error instanceof ConnectionError || error instanceof ReconnectedError) return true;
  if (error instanceof RequestError) return error.isNoResponders() || error.cause === undefined || isTransientNatsError(error.cause);
  if (error instanceof JetStreamApiError) return error.status >= 500;
  // not exported by the client: JetStream not (yet) enabled on a server starting up
  return error instanceof Error && error.name === 'JetStreamNotEnabled';
}

/** A call given up because the connection was re-established meanwhile: its answer will not come. */
class ReconnectedError extends XrefError {
  constructor() {
    super('XREF_NATS_UNAVAILABLE', 'the connection came back while the call was in flight: its answer will not come');
  }
}

/** Who waits for NATS, and since when (read by readiness and metrics); and the connection's reconnects. */
export class NatsWaits {
  /** Calls waiting, by what they wait for. */
  private readonly waiting = new Map<string, number>();
  private readonly onReconnect = new Set<() => void>();

  /** Follows the reconnects of `nc`, so that a read in flight across one is sent again at once. */
  constructor(nc?: NatsConnection) {
    if (nc === undefined) return;
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type !== 'reconnect') continue;
        for (const listener of [...this.onReconnect]) listener();
      }
    })().catch(() => undefined);
  }

  /** Calls `listener` at each reconnect of the connection, until the returned function is called. */
  whenReconnected(listener: () => void): () => void {
    this.onReconnect.add(listener);
    return () => this.onReconnect.delete(listener);
  }

  /**
   * The answer of `pending`, or a ReconnectedError if the connection comes back first (a request
   * the dead server had taken is never answered).
   */
  answerOrReconnect<T>(pending: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const listener = () => {
        this.onReconnect.delete(listener);
        reject(new ReconnectedError());
      };
      this.onReconnect.add(listener);
      pending.then(
        (value) => {
          this.onReconnect.delete(listener);
          resolve(value);
        },
        (error: unknown) => {
          this.onReconnect.delete(listener);
          reject(error);
        },
      );
    });
  }

  /** One more call waits for `what`; true for the first (an outage begins). */
  begin(what: string): boolean {
    const calls = this.waiting.get(what) ?? 0;
    this.waiting.set(what, calls + 1);
    return calls === 0;
  }
  /** A call waiting for `what` is answered (or gave up); true for the last one (the wait ends). */
  end(what: string): boolean {
    const calls = this.waiting.get(what);
    if (calls === undefined) return false;
    if (calls > 1) this.waiting.set(what, calls - 1);
    else this.waiting.delete(what);
    return calls === 1;
  }
  /** What is waiting now, e.g. `['loading passivated actors']`. */
  get current(): string[] {
    return [...this.waiting.keys()];
  }
}

export interface RetryOptions {
  readonly logger: Logger;
  /** Where the wait shows (readiness, metrics). */
  readonly waits?: NatsWaits;
  /** Longest pause between two attempts (default 1 s). */
  readonly maxDelayMs?: number;
}

export interface UntilAnsweredOptions extends RetryOptions {
  /**
   * For a read (safe to send twice): a call in flight when the connection comes back is sent
   * again at once instead of waiting out its timeout, since a request the dead server had taken
   * is never answered.
   */
  readonly idempotent?: boolean;
}

/**
 * Runs `call` until it answers: a transient failure (see `isTransientNatsError`) is retried with
 * backoff, however long NATS is away; any other failure is thrown at once. An outage is logged
 * once when it starts and once when it ends.
 */
export async function untilAnswered<T>(what: string, call: () => Promise<T>, options: UntilAnsweredOptions): Promise<T> {
  const { logger, waits, maxDelayMs = 1000, idempotent = false } = options;
  let attempts = 0;
  for (;;) {
    try {
      const result = await (idempotent && waits !== undefined ? waits.answerOrReconnect(call()) : call());
      if (attempts > 0 && (waits?.end(what) ?? true)) logger.info({ what, attempts }, 'NATS answered again: going on');
      return result;
    } catch (error) {
      if (!isTransientNatsError(error)) {
        if (attempts > 0) waits?.end(what);
        throw error;
      }
      if (attempts === 0 && (waits?.begin(what) ?? true)) logger.warn({ what, err: error }, 'NATS does not answer: waiting and retrying');
      attempts++;
      if (error instanceof ReconnectedError) continue;
      await new Promise((resolve) => setTimeout(resolve, Math.min(maxDelayMs, 50 * 2 ** Math.min(attempts, 10))));
    }
  }
}

