/**
 * One contract for every EventSink adapter (the in-memory one and the JetStream one): run it
 * against each, so the fake the app tests use behaves like the real thing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { ErrorRecord } from '../../src/domain/error-record.ts';
import type { EventSink } from '../../src/http/sink.ts';
import { waitFor } from './streams.ts';

export interface SinkFixture {
  readonly sink: EventSink;
  /** Every stored event, in store order (parsed from what was stored). */
  stored(): Promise<XrefEvent[]>;
  /** Every error record kept so far. */
  recorded(): Promise<ErrorRecord[]>;
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

    it('stores an event as its JSON and resolves { duplicate: false, seq }', async () => {
      const e = event(`${prefix}one`);
      const stored = await fixture.sink.publish(e, JSON.stringify(e));
      expect(stored).toEqual({ duplicate: false, seq: expect.any(Number) });
      expect(stored.seq).toBeGreaterThan(0);
      expect(await mine()).toEqual([e]);
    });

    it('serializes the event itself when no JSON is given', async () => {
      const e = event(`${prefix}nojson`);
      await fixture.sink.publish(e);
      expect(await mine()).toEqual([e]);
    });

    it('the same id again → { duplicate: true } with the seq of the one stored, stored once', async () => {
      const e = event(`${prefix}dup`);
      const first = await fixture.sink.publish(e);
      expect(await fixture.sink.publish({ ...e, name: 'changed' })).toEqual({ duplicate: true, seq: first.seq });
      expect(await mine()).toEqual([e]);
    });

    it('the same id twice at once → stored once, one of them a duplicate, both with its seq', async () => {
      const e = event(`${prefix}race`);
      const acks = await Promise.all([fixture.sink.publish(e), fixture.sink.publish(e)]);
      expect(acks.map((a) => a.duplicate).sort()).toEqual([false, true]);
      expect(acks[0]!.seq).toBe(acks[1]!.seq);
      expect(await mine()).toHaveLength(1);
    });

    it('many at once (pipelined) → all stored, each once, each its own seq', async () => {
      const events = Array.from({ length: 500 }, (_, i) => event(`${prefix}many-${i}`));
      const acks = await Promise.all(events.map((e) => fixture.sink.publish(e)));
      expect(acks.every((a) => !a.duplicate)).toBe(true);
      expect(new Set(acks.map((a) => a.seq)).size).toBe(events.length);
      expect((await mine()).map((e) => e.id).sort()).toEqual(events.map((e) => e.id).sort());
    });

    it('keeps the error records it is given, as they are', async () => {
      const records: ErrorRecord[] = ['invalid_event', 'schema_violation'].map((reason, index) => ({
        id: `${prefix}err-${index}`,
        reason,
        code: reason === 'invalid_event' ? 'XREF_INVALID_EVENT' : 'XREF_SCHEMA_VIOLATION',
        message: 'contract',
        origin: 'http',
        source: '/v1/events',
        at: '2024-05-01T12:00:00.000Z',
        index,
      }));
      fixture.sink.recordErrors(records);
      const kept = () => fixture.recorded().then((all) => all.filter((r) => r.id.startsWith(prefix)));
      await waitFor('the error records to be kept', async () => (await kept()).length === records.length);
      expect(await kept()).toEqual(records);
    });
  });
}
