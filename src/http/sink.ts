import type { XrefEvent } from '../domain/envelope.ts';
import type { ErrorRecord } from '../domain/error-record.ts';
import { XrefError } from '../domain/errors.ts';

/** What storing one event gave: whether its id was stored already, and its place in XREF_IN either way. */
export interface SinkReceipt {
  readonly duplicate: boolean;
  /** The XREF_IN sequence of the event (of the one stored first, for a duplicate). */
  readonly seq: number;
}

/**
 * Where the collector stores accepted events and records what it refused: the port. `publish`
 * resolves once the event is durable (JetStream acked it), with `duplicate: true` when an event
 * with that id was already stored; it rejects when the event cannot be stored. `json` is the
 * event as the caller already serialized it (saves a second JSON.stringify). `recordErrors` hands
 * over error records to keep (XREF_ERRORS): fire and forget, it never fails the request.
 */
export interface EventSink {
  publish(event: XrefEvent, json?: string): Promise<SinkReceipt>;
  recordErrors(records: readonly ErrorRecord[]): void;
}

/** The sink holds too many events awaiting storage: the caller should answer 503 at once. */
export class SinkOverloadedError extends XrefError {
  constructor(readonly pending: number) {
    super('XREF_OVERLOADED', `${pending} events already await storage`);
  }
}

/**
 * The in-memory adapter: keeps the events (parsed from their JSON, as they would be stored),
 * drops a repeated id as a duplicate; an event's seq is its 1-based place in `events`. Keeps the
 * error records too.
 */
export class MemorySink implements EventSink {
  readonly events: XrefEvent[] = [];
  readonly errors: ErrorRecord[] = [];
  private readonly seqs = new Map<string, number>();
  /** publish() calls so far. */
  publishes = 0;

  publish(event: XrefEvent, json?: string): Promise<SinkReceipt> {
    this.publishes++;
    return Promise.resolve(this.store(event.id, json ?? JSON.stringify(event)));
  }

  recordErrors(records: readonly ErrorRecord[]): void {
    this.errors.push(...records);
  }

  /** Stores the event of `json` unless `id` is stored already. */
  protected store(id: string, json: string): SinkReceipt {
    const seq = this.seqs.get(id);
    if (seq !== undefined) return { duplicate: true, seq };
    this.events.push(JSON.parse(json) as XrefEvent);
    this.seqs.set(id, this.events.length);
    return { duplicate: false, seq: this.events.length };
  }
}
