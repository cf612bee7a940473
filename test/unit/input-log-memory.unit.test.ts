import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import type { CheckpointWriteOptions } from '../../src/runtime/checkpointer.ts';
import { DurableConsumer, type InputHandler, type OutputMessage, type OutputPublisher } from '../../src/runtime/durable-consumer.ts';
import type { InputMessage } from '../../src/runtime/input-log.ts';
import { MemoryInputLog } from '../../src/runtime/memory-input-log.ts';
import { FlakyMemoryInputLog, inputLogContract, memoryFixture, readFrom } from '../helpers/input-log-contract.ts';
import { waitFor } from '../helpers/streams.ts';

inputLogContract('in memory', async () => memoryFixture());

describe('the memory log', () => {
  it('sends a message again, marked redelivered, to a delivery that has not had it acked', async () => {
    const log = new MemoryInputLog();
    for (let i = 1; i <= 3; i++) log.append('xref.in.test', `{"n":${i}}`, 1000 + i);
    const reader = await readFrom(log, 'test', 1);
    await reader.through(3);
    (reader.fresh[0] as InputMessage).ack();
    log.redeliver(1); // acked: not sent again
    log.redeliver(2);
    log.append('xref.in.test', '{"n":4}');
    await reader.through(4);
    expect(reader.repeats.map((msg) => [msg.seq, msg.redelivered])).toEqual([[2, true]]);
    expect(reader.seqs()).toEqual(['1', '2', '3', '4']);
    expect((reader.fresh[1] as InputMessage).publishedMs()).toBe(1002);
    await reader.delivery.close();
  });

  it('messages lost in transit are read by sequence in their place (nothing to ack for those)', async () => {
    const log = new FlakyMemoryInputLog();
    const reader = await readFrom(log, 'test', 1);
    log.fail();
    for (let i = 1; i <= 10; i++) log.append('xref.in.test', `{"n":${i}}`);
    await reader.through(10);
    expect(reader.seqs()).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    const readBySeq = (reader.fresh as InputMessage[]).filter((msg) => !msg.ackable).map((msg) => msg.seq);
    expect(readBySeq).toEqual([1, 3, 5, 7, 9]);
    expect(reader.problems).toEqual([]);
    await reader.delivery.close();
  });

  it('refuses to delete or send again a sequence it does not hold, naming it', () => {
    const log = new MemoryInputLog();
    log.append('xref.in.test', '{}');
    log.delete(1);
    expect(() => log.delete(1)).toThrow(/no message 1 to delete/);
    expect(() => log.redeliver(2)).toThrow(/no message 2 to deliver again/);
  });
});

/** A publisher that stores what it is given only when told to. */
class HeldPublisher implements OutputPublisher {
  readonly stored: string[] = [];
  private readonly held: Array<() => void> = [];
  private readonly waiting: Array<{ count: number; resolve: () => void }> = [];

  publishThen<T>(_subject: string, _data: Uint8Array | string, msgId: string, done: (error: Error | undefined, ack: unknown, token: T) => void, token: T): void {
    this.held.push(() => {
      this.stored.push(msgId);
      done(undefined, undefined, token);
    });
  }
  get pending(): number {
    return this.held.length;
  }
  release(): void {
    for (const store of this.held.splice(0)) store();
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
  }
  below(count: number): Promise<void> {
    return this.pending < count ? Promise.resolve() : new Promise((resolve) => this.waiting.push({ count, resolve }));
  }
  async close(): Promise<void> {}
}

/** One output per input, `out-<seq>`; counts how often each input was applied. */
class Echo implements InputHandler {
  readonly outbox: OutputMessage[] = [];
  readonly appliedTimes = new Map<number, number>();
  readonly skipped: number[] = [];
  seq = 0;
  apply(input: InputMessage): undefined {
    this.appliedTimes.set(input.seq, (this.appliedTimes.get(input.seq) ?? 0) + 1);
    this.outbox.push({ subject: 'out', msgId: `out-${input.seq}`, payload: '{}' });
    this.seq = input.seq;
    return undefined;
  }
  skip(seq: number): void {
    this.skipped.push(seq);
    this.seq = seq;
  }
}

describe('a durable consumer on the memory log', () => {
  it('applies each input once in log order, acks only what is stored, and puts a checkpoint in force only once the outputs it covers are', async () => {
    const log = new MemoryInputLog();
    for (let i = 1; i <= 10; i++) log.append('xref.in.test', `{"n":${i}}`);
    log.delete(4);
    const publisher = new HeldPublisher();
    const echo = new Echo();
    const inForce: Array<{ seq: number; stored: string[] }> = [];
    const consumer = new DurableConsumer<{ seq: number }>({
      name: 'test',
      log,
      handler: echo,
      publisher,
      maxInFlight: 1000,
      logger: logger.child({ component: 'test-consumer' }),
      checkpoints: {
        every: 3,
        ms: 60_000,
        take: () => ({ seq: echo.seq }),
        writer: {
          async write(checkpoint: { seq: number }, options: CheckpointWriteOptions) {
            await options.alsoStored;
            inForce.push({ seq: checkpoint.seq, stored: [...publisher.stored] });
          },
        },
      },
    });
    await consumer.start(1);
    await waitFor('every input applied', () => consumer.position === 10, 5_000);
    log.redeliver(2); // delivered again while input 1 is in flight: neither applied again nor acked
    log.append('xref.in.test', '{"n":11}');
    await waitFor('input 11', () => consumer.position === 11, 5_000);
    expect(log.ackedThrough('test')).toBe(0);
    expect(inForce).toEqual([]);
    publisher.release();
    await waitFor('every input acked', () => log.ackedThrough('test') === 11, 5_000);
    await consumer.stop();
    expect([...echo.appliedTimes.keys()]).toEqual([1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);
    expect([...echo.appliedTimes.values()].every((times) => times === 1)).toBe(true);
    expect(echo.skipped).toEqual([4]);
    expect(inForce.length).toBeGreaterThan(1);
    expect(inForce.at(-1)?.seq).toBe(11); // the last, at the stop
    for (const { seq, stored } of inForce) {
      const covered = [...echo.appliedTimes.keys()].filter((s) => s <= seq).map((s) => `out-${s}`);
      expect(stored, `checkpoint ${seq}`).toEqual(expect.arrayContaining(covered));
    }
    expect(consumer.stats).toMatchObject({ inputs: 10, outputs: 10, lastCheckpointSeq: 11 });
  });

  it('fenced when its lease is not valid any more: it applies nothing more and writes no last checkpoint', async () => {
    const log = new MemoryInputLog();
    let valid = true;
    const fenced: string[] = [];
    const echo = new Echo();
    const writes: number[] = [];
    const consumer = new DurableConsumer<{ seq: number }>({
      name: 'test',
      log,
      handler: echo,
      publisher: new HeldPublisher(),
      maxInFlight: 1000,
      lease: { epoch: 1, valid: () => valid },
      onFenced: (why) => fenced.push(why),
      logger: logger.child({ component: 'test-consumer' }),
      checkpoints: { every: 1000, ms: 60_000, take: () => ({ seq: echo.seq }), writer: { write: async (checkpoint) => void writes.push(checkpoint.seq) } },
    });
    await consumer.start(1);
    log.append('xref.in.test', '{}');
    await waitFor('input 1', () => consumer.position === 1, 5_000);
    valid = false;
    log.append('xref.in.test', '{}');
    await waitFor('the fence', () => fenced.length > 0, 5_000);
    await consumer.stop();
    expect(consumer.position).toBe(1);
    expect(consumer.fenced).toBe('the lease is not valid any more');
    expect(writes).toEqual([]);
  });

  it('a lease lost while stopping, with inputs still queued: the stop ends, nothing more is applied, no last checkpoint', async () => {
    const log = new MemoryInputLog();
    let valid = true;
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const applied: number[] = [];
    const writes: number[] = [];
    const handler: InputHandler = {
      outbox: [],
      // the first input waits (a load), so the others are queued when the stop comes
      apply: (input) => {
        applied.push(input.seq);
        return input.seq === 1 ? held : undefined;
      },
      skip: () => undefined,
    };
    const consumer = new DurableConsumer<{ seq: number }>({
      name: 'test',
      log,
      handler,
      maxInFlight: 1000,
      lease: { epoch: 1, valid: () => valid },
      logger: logger.child({ component: 'test-consumer' }),
      checkpoints: { every: 1000, ms: 60_000, take: () => ({ seq: applied.at(-1) ?? 0 }), writer: { write: async (checkpoint) => void writes.push(checkpoint.seq) } },
    });
    await consumer.start(1);
    for (let i = 1; i <= 5; i++) log.append('xref.in.test', '{}');
    await waitFor('input 1 applying', () => applied.length === 1, 5_000);
    const stopped = consumer.stop();
    valid = false;
    release();
    await stopped;
    expect(applied).toEqual([1]);
    expect(consumer.fenced).toBe('the lease is not valid any more');
    expect(writes).toEqual([]);
  });
});
