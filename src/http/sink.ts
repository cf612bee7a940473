import type { XrefEvent } from '../domain/envelope.ts';

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
export class SinkOverloadedError extends Error {
  constructor(readonly pending: number) {
    super(`${pending} events already await storage`);
    this.name = 'SinkOverloadedError';
  }
}

type Mode = 'store' | 'hang' | 'fail';

/**
 * The in-memory adapter: keeps the events (parsed from their JSON, as they would be stored),
 * drops a repeated id as a duplicate. For tests it can be told to hang (never settle until
 * `release()`) or to fail.
 */
export class MemorySink implements EventSink {
  readonly events: XrefEvent[] = [];
  private readonly ids = new Set<string>();
  private readonly hung: Array<() => void> = [];
  private mode: Mode = 'store';
  private failure: Error = new Error('the sink is failing');
  publishes = 0;

  /** 'store' (default), 'hang' (publishes never settle until release()) or 'fail' (they reject). */
  set(mode: Mode, failure?: Error): this {
    this.mode = mode;
    if (failure !== undefined) this.failure = failure;
    return this;
  }

  /** Back to 'store', and stores what hung so far. */
  release(): void {
    this.mode = 'store';
    for (const go of this.hung.splice(0)) go();
  }

  get hanging(): number {
    return this.hung.length;
  }

  publish(event: XrefEvent, json?: string): Promise<{ duplicate: boolean }> {
    this.publishes++;
    const text = json ?? JSON.stringify(event);
    if (this.mode === 'fail') return Promise.reject(this.failure);
    if (this.mode === 'hang') return new Promise((resolve) => this.hung.push(() => resolve(this.store(event.id, text))));
    return Promise.resolve(this.store(event.id, text));
  }

  private store(id: string, json: string): { duplicate: boolean } {
    if (this.ids.has(id)) return { duplicate: true };
    this.ids.add(id);
    this.events.push(JSON.parse(json) as XrefEvent);
    return { duplicate: false };
  }
}
