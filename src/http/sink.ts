import type { XrefEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';

/**
 * Where the collector stores accepted events: the port. `publish` resolves once the event is
 * durable (JetStream acked it), with `duplicate: true` when an event with that id was already
 * stored; it rejects when the event cannot be stored. `json` is the event as the caller already
 * serialized it (saves a second JSON.stringify).
 */
export interface EventSink {
  publish(event: XrefEvent, json?: string): Promise<{ duplicate: boolean }>;
}

/** The sink holds too many events awaiting storage: the caller should answer 503 at once. */
export class SinkOverloadedError extends XrefError {
  constructor(readonly pending: number) {
    super('XREF_OVERLOADED', `${pending} events already await storage`);
  }
}

/**
 * The in-memory adapter: keeps the events (parsed from their JSON, as they would be stored),
 * drops a repeated id as a duplicate.
 */
export class MemorySink implements EventSink {
  readonly events: XrefEvent[] = [];
  private readonly ids = new Set<string>();
  /** publish() calls so far. */
  publishes = 0;

  publish(event: XrefEvent, json?: string): Promise<{ duplicate: boolean }> {
    this.publishes++;
    return Promise.resolve(this.store(event.id, json ?? JSON.stringify(event)));
  }

  /** Stores the event of `json` unless `id` is stored already. */
  protected store(id: string, json: string): { duplicate: boolean } {
    if (this.ids.has(id)) return { duplicate: true };
    this.ids.add(id);
    this.events.push(JSON.parse(json) as XrefEvent);
    return { duplicate: false };
  }
}
