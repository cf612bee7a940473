/**
 * One contract for every EventSink adapter (the in-memory one and the JetStream one): run it
 * against each, so the fake the app tests use behaves like the real thing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { EventSink } from '../../src/http/sink.ts';

export interface SinkFixture {
  readonly sink: EventSink;
  /** Every stored event, in store order (parsed from what was stored). */
  stored(): Promise<XrefEvent[]>;
  close(): Promise<void>;
}

let counter = 0;
const event = (id: string): XrefEvent => ({ id, name: 'contract', ids: { cookie: `c-${id}` }, data: { n: ++counter } });

export function sinkContract(name: string, make: () => Promise<SinkFixture>): void {
  describe(`EventSink contract: ${name}`, () => {
    let fixture: SinkFixture;
    let prefix: string;
    beforeEach(async () => {
      fixture = await make();
      prefix = `t${Date.now()}-${Math.random().toString(36).slice(2, 8)}-`;
    });
    afterEach(async () => {
      await fixture.close();
    });
    const mine = async () => (await fixture.stored()).filter((e) => e.id.startsWith(prefix));

    it('stores an event as its JSON and resolves { duplicate: false }', async () => {
      const e = event(`${prefix}one`);
      expect(await fixture.sink.publish(e, JSON.stringify(e))).toEqual({ duplicate: false });
      expect(await mine()).toEqual([e]);
    });

    it('serializes the event itself when no JSON is given', async () => {
      const e = event(`${prefix}nojson`);
      await fixture.sink.publish(e);
      expect(await mine()).toEqual([e]);
    });

    it('the same id again → { duplicate: true }, stored once', async () => {
      const e = event(`${prefix}dup`);
      await fixture.sink.publish(e);
      expect(await fixture.sink.publish({ ...e, name: 'changed' })).toEqual({ duplicate: true });
      expect(await mine()).toEqual([e]);
    });

    it('the same id twice at once → stored once, one of them a duplicate', async () => {
      const e = event(`${prefix}race`);
      const acks = await Promise.all([fixture.sink.publish(e), fixture.sink.publish(e)]);
      expect(acks.map((a) => a.duplicate).sort()).toEqual([false, true]);
      expect(await mine()).toHaveLength(1);
    });

    it('many at once (pipelined) → all stored, each once', async () => {
      const events = Array.from({ length: 500 }, (_, i) => event(`${prefix}many-${i}`));
      const acks = await Promise.all(events.map((e) => fixture.sink.publish(e)));
      expect(acks.every((a) => !a.duplicate)).toBe(true);
      expect((await mine()).map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    });
  });
}
