/**
 * A MemorySink a test can tell to misbehave as JetStream does in an outage: hang (publishes never
 * settle until `release()`) or fail (they reject). Storing, it is the MemorySink.
 */
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { MemorySink, type SinkReceipt } from '../../src/http/sink.ts';

type Mode = 'store' | 'hang' | 'fail';

export class ScriptedSink extends MemorySink {
  private readonly hung: Array<() => void> = [];
  private mode: Mode = 'store';
  private failure: Error = new Error('the sink is failing');

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

  /** Publishes hanging now. */
  get hanging(): number {
    return this.hung.length;
  }

  override publish(event: XrefEvent, json?: string): Promise<SinkReceipt> {
    if (this.mode === 'store') return super.publish(event, json);
    this.publishes++;
    if (this.mode === 'fail') return Promise.reject(this.failure);
    const text = json ?? JSON.stringify(event);
    return new Promise((resolve) => this.hung.push(() => resolve(this.store(event.id, text))));
  }
}
