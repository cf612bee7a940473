import type { XrefEvent } from '../domain/envelope.ts';
import { type EventSink, SinkOverloadedError } from '../http/sink.ts';
import type { JetStreamPublisher } from './publisher.ts';
import { SOURCES, subjects } from './subjects.ts';

const STORED = Object.freeze({ duplicate: false });
const DUPLICATE = Object.freeze({ duplicate: true });

export interface JetStreamSinkOptions {
  /** The `<source>` of `xref.in.<source>` (default http). */
  readonly source?: string;
  /** Events awaiting their ack at once before publish() refuses with SinkOverloadedError (default 100000). */
  readonly maxPending?: number;
}

/**
 * The real adapter: publishes each event to `xref.in.<source>` with `Nats-Msg-Id` = event id
 * through the pipelined JetStreamPublisher (which retries until stored, so callers race it
 * against their own deadline). An id already in flight is not published again: the second
 * caller waits for the first publish and gets `duplicate: true`. That keeps a client retrying
 * through a NATS outage from piling up copies of the same events.
 */
export class JetStreamSink implements EventSink {
  private readonly subject: string;
  private readonly maxPending: number;
  private readonly inflight = new Map<string, Promise<{ duplicate: boolean }>>();

  constructor(
    private readonly publisher: Pick<JetStreamPublisher, 'publish'>,
    options: JetStreamSinkOptions = {},
  ) {
    this.subject = subjects.in(options.source ?? SOURCES.http);
    this.maxPending = options.maxPending ?? 100_000;
  }

  /** Events awaiting their ack. */
  get pending(): number {
    return this.inflight.size;
  }

  publish(event: XrefEvent, json?: string): Promise<{ duplicate: boolean }> {
    const id = event.id;
    const running = this.inflight.get(id);
    if (running !== undefined) return running.then(() => DUPLICATE);
    if (this.inflight.size >= this.maxPending) return Promise.reject(new SinkOverloadedError(this.inflight.size));
    const stored = this.publisher.publish(this.subject, json ?? JSON.stringify(event), id).then(
      (ack) => {
        this.inflight.delete(id);
        return ack.duplicate ? DUPLICATE : STORED;
      },
      (error: unknown) => {
        this.inflight.delete(id);
        throw error;
      },
    );
    this.inflight.set(id, stored);
    return stored;
  }
}
