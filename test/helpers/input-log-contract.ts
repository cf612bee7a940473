/**
 * The InputLog contract (src/runtime/input-log.ts), run against every adapter: in memory
 * (test/unit/input-log-memory.unit.test.ts) and on JetStream (test/int/input-log-jetstream.int.test.ts).
 *
 *   inputLogContract('memory', async () => memoryFixture());
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InputDelivery, InputLog, InputMessage, LogGap } from '../../src/runtime/input-log.ts';
import { isGap } from '../../src/runtime/input-log.ts';
import { Feed, MemoryInputLog } from '../../src/runtime/memory-input-log.ts';
import { waitFor } from './streams.ts';

/**
 * What the port promises across a failure: every sequence is handed out fresh once, in log order
 * (a message, or a gap where the log holds none); inputs handed out before may come again (below
 * the next sequence), which the consumer recognises and never applies twice.
 */

/** One adapter under test, on a log of its own, with the few things only a test does to it. */
export interface InputLogFixture {
  readonly log: InputLog;
  /** Appends messages in order; resolves with their sequences once they are stored. */
  append(messages: ReadonlyArray<{ subject: string; data: string }>): Promise<number[]>;
  delete(seq: number): Promise<void>;
  /** How far the log keeps `consumer` acked through. */
  ackedThrough(consumer: string): Promise<number>;
  /**
   * A failure its deliveries must ride out, while one is open (JetStream: the server killed and
   * started again on the same store; memory: messages lost in transit and others sent again).
   */
  fail(): Promise<void>;
  close(): Promise<void>;
}

const decoder = new TextDecoder();

/**
 * Takes what a delivery hands out, as a consumer does: fresh inputs (and gaps) must come in log
 * order, each sequence once; what comes again (a sequence below the next one) is kept apart.
 */
export class Reader {
  readonly fresh: Array<InputMessage | LogGap> = [];
  readonly repeats: InputMessage[] = [];
  readonly problems: string[] = [];
  delivery!: InputDelivery;
  private woken = false;
  private wakeUp: (() => void) | undefined;

  constructor(private next: number) {}

  /** The `delivered` callback of the delivery read. */
  readonly delivered = (): void => {
    this.woken = true;
    this.wakeUp?.();
  };

  /** Takes inputs until every sequence through `last` was handed out (or fails after `ms`). */
  async through(last: number, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.next <= last) {
      const item = this.delivery.next();
      if (item === undefined) {
        await this.signal(deadline, last);
        continue;
      }
      const got = item instanceof Promise ? await item : item;
      if (got.seq < this.next) {
        if (isGap(got)) this.problems.push(`a gap handed out again at ${got.seq}`);
        else this.repeats.push(got);
        continue;
      }
      if (got.seq !== this.next) this.problems.push(`input ${got.seq} handed out where ${this.next} was next`);
      this.fresh.push(got);
      this.next = got.seq + 1;
    }
  }

  /** The fresh inputs, as `seq` or `seq:gap`. */
  seqs(): string[] {
    return this.fresh.map((item) => (isGap(item) ? `${item.seq}:gap` : String(item.seq)));
  }

  /** The last fresh message handed out. */
  last(): InputMessage {
    const last = this.fresh.findLast((item): item is InputMessage => !isGap(item));
    if (last === undefined) throw new Error('no message handed out yet');
    return last;
  }

  private async signal(deadline: number, last: number): Promise<void> {
    if (!this.woken) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for input ${this.next} (reading through ${last})`)), Math.max(0, deadline - Date.now()));
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.wakeUp = undefined;
    this.woken = false;
  }
}

/** Opens a delivery for `consumer` from `fromSeq`, read by a Reader; fenced or failed deliveries are test failures. */
export async function readFrom(log: InputLog, consumer: string, fromSeq: number): Promise<Reader> {
  const reader = new Reader(fromSeq);
  reader.delivery = await log.deliver({
    consumer,
    fromSeq,
    delivered: reader.delivered,
    fenced: (why) => reader.problems.push(`fenced: ${why}`),
    failed: (error) => reader.problems.push(`failed: ${error.message}`),
  });
  return reader;
}

const text = (msg: InputMessage | LogGap) => (isGap(msg) ? '(gap)' : decoder.decode(msg.data));
const messages = (from: number, count: number, subject = (i: number) => `xref.in.${i % 2 === 0 ? 'even' : 'odd'}`) =>
  Array.from({ length: count }, (_, k) => ({ subject: subject(from + k), data: JSON.stringify({ n: from + k }) }));

export function inputLogContract(name: string, setup: () => Promise<InputLogFixture>): void {
  describe(`InputLog contract: ${name}`, () => {
    let fixture: InputLogFixture;
    const open: Reader[] = [];
    const read = async (consumer: string, fromSeq: number) => {
      const reader = await readFrom(fixture.log, consumer, fromSeq);
      open.push(reader);
      return reader;
    };

    beforeEach(async () => {
      fixture = await setup();
    });
    afterEach(async () => {
      for (const reader of open.splice(0)) await reader.delivery.close();
      await fixture.close();
    });

    it('hands out every input in log order from the sequence it starts at, with its subject, data and publish time', async () => {
      const before = Date.now();
      const seqs = await fixture.append(messages(1, 10));
      const after = Date.now();
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const reader = await read('contract', 4);
      await reader.through(10);
      expect(reader.seqs()).toEqual(['4', '5', '6', '7', '8', '9', '10']);
      expect(reader.fresh.map(text)).toEqual(messages(4, 7).map((m) => m.data));
      for (const msg of reader.fresh as InputMessage[]) {
        expect(msg.subject).toBe(`xref.in.${msg.seq % 2 === 0 ? 'even' : 'odd'}`);
        expect(msg.ackable).toBe(true);
        expect(msg.redelivered).toBe(false);
        // the server's clock stamps it: the same machine's, within a second of the append
        expect(msg.publishedMs()).toBeGreaterThanOrEqual(before - 1000);
        expect(msg.publishedMs()).toBeLessThanOrEqual(after + 1000);
      }
      expect(reader.repeats).toEqual([]);
      expect(reader.problems).toEqual([]);
    });

    it('reads an input by sequence: the same message, nothing to ack; none where the log holds none', async () => {
      await fixture.append(messages(1, 3));
      const msg = await fixture.log.read(2);
      expect(msg?.seq).toBe(2);
      expect(msg?.subject).toBe('xref.in.even');
      expect(text(msg!)).toBe(JSON.stringify({ n: 2 }));
      expect(msg?.ackable).toBe(false);
      expect(await fixture.log.read(4)).toBeUndefined();
    });

    it('resumes at a sequence after a close, with nothing before it', async () => {
      await fixture.append(messages(1, 10));
      const first = await read('contract', 1);
      await first.through(5);
      await first.delivery.close();
      const second = await read('contract', 6);
      await second.through(10);
      expect(second.seqs()).toEqual(['6', '7', '8', '9', '10']);
      expect([...second.repeats, ...first.repeats]).toEqual([]);
      expect([...first.problems, ...second.problems]).toEqual([]);
    });

    it('an ack covers every input through it; acked inputs are not delivered again, nor after a resume past them', async () => {
      await fixture.append(messages(1, 10));
      const reader = await read('contract', 1);
      await reader.through(10);
      (reader.fresh[5] as InputMessage).ack(); // input 6, and with it 1 to 5
      await waitFor('the ack of input 6', async () => (await fixture.ackedThrough('contract')) >= 6, 10_000);
      reader.last().ack();
      await waitFor('the ack of input 10', async () => (await fixture.ackedThrough('contract')) >= 10, 10_000);
      await fixture.append(messages(11, 2));
      await reader.through(12);
      expect(reader.seqs()).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
      await reader.delivery.close();
      await fixture.append(messages(13, 1));
      const resumed = await read('contract', 13);
      await resumed.through(13);
      expect(resumed.seqs()).toEqual(['13']);
      expect([...reader.repeats, ...resumed.repeats]).toEqual([]);
      expect([...reader.problems, ...resumed.problems]).toEqual([]);
    });

    it('a deleted input is handed out as a gap in its place, the first one too', async () => {
      await fixture.append(messages(1, 6));
      await fixture.delete(1);
      await fixture.delete(3);
      const reader = await read('contract', 1);
      await reader.through(6);
      expect(reader.seqs()).toEqual(['1:gap', '2', '3:gap', '4', '5', '6']);
      expect(await fixture.log.read(3)).toBeUndefined();
      expect(reader.problems).toEqual([]);
    });

    it('delivers inputs appended after it started, as they come', async () => {
      const reader = await read('contract', 1);
      await fixture.append(messages(1, 3));
      await reader.through(3);
      await fixture.append(messages(4, 2));
      await reader.through(5);
      expect(reader.seqs()).toEqual(['1', '2', '3', '4', '5']);
      expect(reader.problems).toEqual([]);
    });

    it('lastSeq is the last sequence the log holds, never reused once deleted', async () => {
      expect(await fixture.log.lastSeq()).toBe(0);
      await fixture.append(messages(1, 3));
      expect(await fixture.log.lastSeq()).toBe(3);
      await fixture.delete(3);
      expect(await fixture.log.lastSeq()).toBe(3);
      expect(await fixture.append(messages(4, 1))).toEqual([4]);
      expect(await fixture.log.lastSeq()).toBe(4);
    });

    it('deliveries of two consumers are their own: each hands out the whole log, each is acked on its own', async () => {
      await fixture.append(messages(1, 4));
      const one = await read('contract-one', 1);
      const two = await read('contract-two', 3);
      await one.through(4);
      await two.through(4);
      expect(one.seqs()).toEqual(['1', '2', '3', '4']);
      expect(two.seqs()).toEqual(['3', '4']);
      one.last().ack();
      await waitFor('the ack of input 4', async () => (await fixture.ackedThrough('contract-one')) >= 4, 10_000);
      expect(await fixture.ackedThrough('contract-two')).toBeLessThan(3);
    });

    it('rides out a failure: every input handed out once, in order, as the log holds it, and acks go on', async () => {
      await fixture.append(messages(1, 300));
      const reader = await read('contract', 1);
      await reader.through(100);
      (reader.fresh[99] as InputMessage).ack();
      await waitFor('the ack of input 100', async () => (await fixture.ackedThrough('contract')) >= 100, 10_000);
      await fixture.fail();
      await fixture.append(messages(301, 200));
      const last = await fixture.log.lastSeq();
      await reader.through(last, 60_000);
      expect(reader.problems).toEqual([]);
      expect(reader.seqs()).toEqual(Array.from({ length: last }, (_, i) => String(i + 1)));
      // what was handed out is what the log holds at each sequence, repeats included
      for (const msg of [...reader.fresh, ...reader.repeats]) expect(text(msg), `input ${msg.seq}`).toBe(text((await fixture.log.read(msg.seq))!));
      // every message appended is there
      expect(new Set(reader.fresh.map(text))).toEqual(new Set(messages(1, 500).map((m) => m.data)));
      const lastDelivered = reader.fresh.findLast((msg): msg is InputMessage => !isGap(msg) && msg.ackable);
      lastDelivered?.ack();
      await waitFor('acks after the failure', async () => (await fixture.ackedThrough('contract')) >= (lastDelivered?.seq ?? 0), 20_000);
    }, 120_000);
  });
}

/**
 * The memory log, whose `fail()` loses messages in transit (every other one of the next 40 sent)
 * and sends the last unacked ones delivered again: what a connection lost and made again does.
 */
export class FlakyMemoryInputLog extends MemoryInputLog {
  private dropping = 0;
  private readonly seen = new Set<Feed>();

  fail(): void {
    this.dropping = 40;
    // the last few delivered and not acked come again
    const again = new Set<number>();
    for (const feed of this.seen) if (!feed.closed) for (let seq = Math.max(feed.ackedThrough + 1, feed.next - 5); seq < feed.next; seq++) again.add(seq);
    for (const seq of again) this.redeliver(seq);
  }

  protected override transmit(feed: Feed, msg: InputMessage): void {
    this.seen.add(feed);
    if (this.dropping > 0 && this.dropping-- % 2 === 0) return;
    super.transmit(feed, msg);
  }
}

/** The contract's fixture on a FlakyMemoryInputLog. */
export function memoryFixture(): InputLogFixture {
  const log = new FlakyMemoryInputLog();
  return {
    log,
    append: async (items) => items.map((m) => log.append(m.subject, m.data)),
    delete: async (seq) => log.delete(seq),
    ackedThrough: async (consumer) => log.ackedThrough(consumer),
    fail: async () => log.fail(),
    close: async () => {},
  };
}
