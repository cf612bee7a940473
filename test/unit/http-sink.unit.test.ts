import { describe, expect, it } from 'vitest';
import { MemorySink, SinkOverloadedError } from '../../src/http/sink.ts';
import { JetStreamSink } from '../../src/nats/jetstream-sink.ts';
import type { PublishAck } from '../../src/nats/publisher.ts';
import { ScriptedSink } from '../helpers/scripted-sink.ts';
import { sinkContract } from '../helpers/sink-contract.ts';

sinkContract('MemorySink', async () => {
  const sink = new MemorySink();
  return { sink, stored: async () => sink.events, recorded: async () => sink.errors, close: async () => undefined };
});

// the app tests' sink: until told to hang or fail, it must behave as the others
sinkContract('ScriptedSink, storing', async () => {
  const sink = new ScriptedSink();
  return { sink, stored: async () => sink.events, recorded: async () => sink.errors, close: async () => undefined };
});

/** A publisher that records calls and settles them when told. */
function manualPublisher() {
  const calls: Array<{ subject: string; data: string; msgId: string; settle: (ack: Partial<PublishAck>) => void; fail: (e: Error) => void }> = [];
  return {
    calls,
    publish(subject: string, data: Uint8Array | string, msgId: string): Promise<PublishAck> {
      return new Promise((resolve, reject) =>
        calls.push({ subject, data: String(data), msgId, settle: (ack) => resolve({ stream: 'XREF_IN', seq: calls.length, duplicate: false, ...ack }), fail: reject }),
      );
    },
  };
}

describe('JetStreamSink', () => {
  const e = (id: string) => ({ id, ids: { cookie: 'c' } });

  it('publishes to xref.in.http with Nats-Msg-Id = event id, the JSON given', async () => {
    const publisher = manualPublisher();
    const sink = new JetStreamSink(publisher);
    const done = sink.publish(e('e1'), '{"id":"e1","ids":{"cookie":"c"}}');
    expect(publisher.calls.map(({ subject, data, msgId }) => ({ subject, data, msgId }))).toEqual([{ subject: 'xref.in.http', data: '{"id":"e1","ids":{"cookie":"c"}}', msgId: 'e1' }]);
    publisher.calls[0]!.settle({ duplicate: true, seq: 7 });
    expect(await done).toEqual({ duplicate: true, seq: 7 });
    expect(sink.pending).toBe(0);
  });

  it('an id already in flight is not published again: the second caller gets a duplicate', async () => {
    const publisher = manualPublisher();
    const sink = new JetStreamSink(publisher);
    const first = sink.publish(e('same'));
    const second = sink.publish(e('same'));
    expect(publisher.calls).toHaveLength(1);
    publisher.calls[0]!.settle({});
    expect(await Promise.all([first, second])).toEqual([
      { duplicate: false, seq: 1 },
      { duplicate: true, seq: 1 },
    ]);
    // settled: a later publish of the id goes to JetStream again (its dedup decides)
    void sink.publish(e('same'));
    expect(publisher.calls).toHaveLength(2);
  });

  it('past maxPending events awaiting acks, publish refuses at once (the app answers 503)', async () => {
    const publisher = manualPublisher();
    const sink = new JetStreamSink(publisher, { maxPending: 2 });
    void sink.publish(e('a'));
    void sink.publish(e('b'));
    await expect(sink.publish(e('c'))).rejects.toBeInstanceOf(SinkOverloadedError);
    publisher.calls[0]!.settle({});
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.pending).toBe(1);
    void sink.publish(e('c'));
    expect(publisher.calls).toHaveLength(3);
  });

  it('a failed publish rejects and frees the id', async () => {
    const publisher = manualPublisher();
    const sink = new JetStreamSink(publisher);
    const failed = sink.publish(e('f'));
    publisher.calls[0]!.fail(new Error('publisher closed'));
    await expect(failed).rejects.toThrow('publisher closed');
    expect(sink.pending).toBe(0);
  });
});
