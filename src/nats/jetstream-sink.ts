import type { Logger } from 'pino';
import type { XrefEvent } from '../domain/envelope.ts';
import type { ErrorRecord } from '../domain/error-record.ts';
import { type EventSink, SinkOverloadedError, type SinkReceipt } from '../http/sink.ts';
import { componentLogger } from '../log.ts';
import { errorMessage } from '../service/outputs.ts';
import type { JetStreamPublisher } from './publisher.ts';
import { SOURCES, subjects } from './subjects.ts';

export interface JetStreamSinkOptions {
  /** The `<source>` of `xref.in.<source>` (default http). */
  readonly source?: string;
  /** Events awaiting their ack at once before publish() refuses with SinkOverloadedError (default 100000). */
  readonly maxPending?: number;
  /** Where a failure to store an error record is logged (default the `collector-errors` component logger). */
  readonly logger?: Logger;
}

/**
 * The real adapter: publishes each event to `xref.in.<source>` with `Nats-Msg-Id` = event id
 * through the pipelined JetStreamPublisher (which retries until stored, so callers race it
 * against their own deadline). An id already in flight is not published again: the second
 * caller waits for the first publish and gets `duplicate: true`. That keeps a client retrying
 * through a NATS outage from piling up copies of the same events. Error records go to
 * `xref.errors.<reason>` with their id as the message id, without waiting for their acks.
 */
export class JetStreamSink implements EventSink {
  private readonly subject: string;
  private readonly maxPending: number;
  private readonly inflight = new Map<string, Promise<SinkReceipt>>();
  private readonly logger: Logger;
  /** Error records JetStream never stored (refused, or the publisher closed first): logged, and counted here. */
  failedErrorRecords = 0;

  constructor(
    private readonly publisher: Pick<JetStreamPublisher, 'publish'>,
    options: JetStreamSinkOptions = {},
  ) {
    this.subject = subjects.in(options.source ?? SOURCES.http);
    this.maxPending = options.maxPending ?? 100_000;
    this.logger = options.logger ?? componentLogger('collector-errors');
  }

  /** Events awaiting their ack. */
  get pending(): number {
    return this.inflight.size;
  }

  publish(event: XrefEvent, json?: string): Promise<SinkReceipt> {
    const id = event.id;
    const running = this.inflight.get(id);
    if (running !== undefined) return running.then((first) => ({ duplicate: true, seq: first.seq }));
    if (this.inflight.size >= this.maxPending) return Promise.reject(new SinkOverloadedError(this.inflight.size));
    const stored = this.publisher.publish(this.subject, json ?? JSON.stringify(event), id).then(
      (ack) => {
        this.inflight.delete(id);
        return { duplicate: ack.duplicate, seq: ack.seq };
      },
      (error: unknown) => {
        this.inflight.delete(id);
        throw error;
      },
    );
    this.inflight.set(id, stored);
    return stored;
  }

  recordErrors(records: readonly ErrorRecord[]): void {
    for (const record of records) {
      const message = errorMessage(record);
      this.publisher.publish(message.subject, message.payload, message.msgId).catch((error: unknown) => {
        this.failedErrorRecords++;
        this.logger.warn({ err: error, reason: record.reason, id: record.id }, 'an error record could not be stored in XREF_ERRORS');
      });
    }
  }
}
