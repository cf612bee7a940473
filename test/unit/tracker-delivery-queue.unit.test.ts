import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { type BatchAttempt, DeliveryQueue, type DeliveryOptions, type Outcome, backoffMs, parseRetryAfter } from '../../src/tracker/delivery-queue.ts';
import { CollectorRefusedError, collectorTransport, httpBackend } from '../../src/tracker/http-backend.ts';
import type { BackendStats, DropReason, TrackerEvent } from '../../src/tracker/types.ts';
import { waitFor } from '../helpers/streams.ts';

let n = 0;
function event(extra: Partial<TrackerEvent> = {}): TrackerEvent {
  n++;
  return { id: `ev-${n}`, name: 'viewed', timestamp: '2024-05-01T12:00:00.000Z', ids: { cookie: `c-${n}` }, data: { n }, context: {}, ...extra };
}

/** An attempt the test answers when it likes. */
interface Pending {
  readonly batch: BatchAttempt;
  readonly at: number;
  answer(outcome: Outcome): void;
}

/** A transport whose attempts wait for the test, or are answered at once by `auto`. */
function scriptedTransport(auto?: (batch: BatchAttempt) => Outcome | undefined) {
  const attempts: Pending[] = [];
  const waiting: Pending[] = [];
  const delivered: string[] = [];
  const transport = (batch: BatchAttempt) =>
    new Promise<Outcome>((resolve) => {
      const pending: Pending = {
        batch,
        at: performance.now(),
        answer(outcome) {
          waiting.splice(waiting.indexOf(pending), 1);
          if (outcome.kind === 'delivered') {
            const rejected = new Set((outcome.rejected ?? []).map((r) => r.index));
            batch.jsons.forEach((json, i) => rejected.has(i) || delivered.push((JSON.parse(json) as TrackerEvent).id));
          }
          resolve(outcome);
        },
      };
      attempts.push(pending);
      waiting.push(pending);
      const now = auto?.(batch);
      if (now !== undefined) pending.answer(now);
    });
  return { transport, attempts, waiting, delivered };
}

interface Drop {
  readonly source: 'backend' | 'host';
  readonly ids: string[];
  readonly reason: DropReason;
  readonly error: Error | undefined;
}

const queues: DeliveryQueue[] = [];
afterEach(async () => {
  for (const queue of queues.splice(0)) await queue.close({ timeoutMs: 0 });
});

function makeQueue(options: DeliveryOptions & { auto?: (batch: BatchAttempt) => Outcome | undefined; keepIds?: boolean; random?: () => number; maxBatchBytes?: number } = {}) {
  const { auto, keepIds, random, maxBatchBytes, ...rest } = options;
  const scripted = scriptedTransport(auto);
  const drops: Drop[] = [];
  let given = 0;
  const record = (source: Drop['source']) => (events: readonly TrackerEvent[], reason: DropReason, error?: Error) => drops.push({ source, ids: events.map((e) => e.id), reason, error });
  const queue = new DeliveryQueue({
    flushIntervalMs: 60_000,
    minRetryDelayMs: 1,
    maxRetryDelayMs: 4,
    ...rest,
    onDrop: record('backend'),
    kind: 'testBackend',
    transport: scripted.transport,
    defaults: { flushAt: 10, flushIntervalMs: 1000, maxInFlight: 2, ...(maxBatchBytes === undefined ? {} : { maxBatchBytes }) },
    ...(keepIds === undefined ? {} : { keepIds }),
    ...(random === undefined ? {} : { random }),
  });
  queue.attach({ name: 'xref', logger: logger.child({ component: 'test' }), onDrop: record('host'), child: () => { throw new Error('no children') } });
  queues.push(queue);
  const send = (e: TrackerEvent = event()) => {
    given++;
    queue.send(e);
    return e;
  };
  /** sent + failed + dropped + pending is every event given, and droppedBy adds up. */
  const exact = (): BackendStats => {
    const s = queue.stats();
    expect(s.sent + s.failed + s.dropped + s.pending).toBe(given);
    expect(s.droppedBy.rejected ?? 0).toBe(s.failed);
    expect(Object.entries(s.droppedBy).reduce((sum, [reason, count]) => (reason === 'rejected' ? sum : sum + (count ?? 0)), 0)).toBe(s.dropped);
    return s;
  };
  const dropped = (reason: DropReason, source: Drop['source'] = 'backend') => drops.filter((d) => d.source === source && d.reason === reason).flatMap((d) => d.ids);
  return { queue, ...scripted, drops, dropped, send, exact };
}

const delivered: Outcome = { kind: 'delivered' };

describe('DeliveryQueue: batching and accounting', () => {
  it('sends full batches at once, the rest at flush(), and counts every event exactly once', async () => {
    const q = makeQueue({ flushAt: 10, maxInFlight: 2 });
    for (let i = 0; i < 25; i++) q.send();
    expect(q.exact()).toMatchObject({ sent: 0, pending: 25 });
    await waitFor('two full batches in flight', () => q.waiting.length === 2);
    expect(q.attempts.map((a) => a.batch.jsons.length)).toEqual([10, 10]);
    q.waiting[0]!.answer(delivered);
    await waitFor('the first batch counted', () => q.queue.stats().sent === 10);
    // the last five wait for a full batch (or the interval, or a flush)
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(q.attempts).toHaveLength(2);
    expect(q.exact()).toMatchObject({ sent: 10, pending: 15 });
    const flushed = q.queue.flush();
    await waitFor('the remainder in flight', () => q.attempts.length === 3);
    while (q.waiting.length > 0) q.waiting[0]!.answer(delivered);
    await flushed;
    expect(q.attempts.map((a) => a.batch.jsons.length)).toEqual([10, 10, 5]);
    expect(q.exact()).toEqual({ sent: 25, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
    expect(new Set(q.delivered).size).toBe(25);
  });

  it('sends what waited flushIntervalMs without a flush', async () => {
    const q = makeQueue({ flushAt: 100, flushIntervalMs: 20, auto: () => delivered });
    q.send();
    q.send();
    await waitFor('the interval batch', () => q.queue.stats().sent === 2, 2000);
    expect(q.attempts).toHaveLength(1);
    expect(q.exact().pending).toBe(0);
  });

  it('keeps a batch under maxBatchBytes (the body is [a,b,…])', async () => {
    const q = makeQueue({ flushAt: 100, auto: () => delivered, maxBatchBytes: 1000, maxEventBytes: 400 });
    const sizes: number[] = [];
    for (let i = 0; i < 9; i++) sizes.push(Buffer.byteLength(JSON.stringify(q.send(event({ data: { pad: 'x'.repeat(150) } })))));
    await q.queue.flush();
    for (const attempt of q.attempts) expect(attempt.batch.bytes + attempt.batch.jsons.length + 1).toBeLessThanOrEqual(1000);
    expect(q.attempts.length).toBeGreaterThan(1);
    expect(q.exact().sent).toBe(9);
  });

  it('drops an event without ids as no_ids at send, and tells both onDrop callbacks', async () => {
    const q = makeQueue({ auto: () => delivered });
    const bad = q.send(event({ ids: {} }));
    q.send();
    expect(q.exact()).toMatchObject({ dropped: 1, pending: 1, droppedBy: { no_ids: 1 } });
    await q.queue.flush();
    expect(q.dropped('no_ids')).toEqual([bad.id]);
    expect(q.dropped('no_ids', 'host')).toEqual([bad.id]);
    expect(q.exact()).toMatchObject({ sent: 1, dropped: 1, pending: 0 });
  });

  it('drops an event over maxEventBytes as too_large, naming its size', async () => {
    const q = makeQueue({ maxEventBytes: 200 });
    const big = q.send(event({ data: { pad: 'x'.repeat(300) } }));
    expect(q.exact()).toMatchObject({ dropped: 1, pending: 0, droppedBy: { too_large: 1 } });
    await q.queue.flush();
    const drop = q.drops.find((d) => d.reason === 'too_large')!;
    expect(drop.ids).toEqual([big.id]);
    expect(drop.error?.message).toMatch(/bytes, over testBackend's maxEventBytes of 200/);
  });

  it('fails an event that is not serialisable, without throwing from send', async () => {
    const q = makeQueue();
    const cyclic = event();
    (cyclic.data as Record<string, unknown>).self = cyclic.data;
    expect(() => q.send(cyclic)).not.toThrow();
    expect(q.exact()).toMatchObject({ failed: 1, droppedBy: { rejected: 1 } });
    await q.queue.flush();
    expect(q.drops[0]).toMatchObject({ reason: 'rejected', ids: [cyclic.id] });
    expect(q.drops[0]!.error?.message).toMatch(/not serialisable as JSON/);
  });
});

describe('DeliveryQueue: overflow', () => {
  // nothing leaves the queue: batches wait for 1000 events or a minute
  const held = { flushAt: 1000, flushIntervalMs: 60_000 } as const;

  it('drop-oldest (default) by events: the oldest queued make room, counted and reported', async () => {
    const q = makeQueue({ ...held, maxQueueEvents: 5, auto: () => delivered });
    const sent = Array.from({ length: 8 }, () => q.send());
    expect(q.exact()).toMatchObject({ dropped: 3, pending: 5, droppedBy: { overflow: 3 } });
    await q.queue.flush();
    expect(q.dropped('overflow')).toEqual(sent.slice(0, 3).map((e) => e.id));
    expect(q.dropped('overflow', 'host')).toEqual(sent.slice(0, 3).map((e) => e.id));
    expect(q.delivered).toEqual(sent.slice(3).map((e) => e.id));
    expect(q.exact()).toMatchObject({ sent: 5, dropped: 3, pending: 0 });
  });

  it('drop-newest by events: the events that do not fit are dropped', async () => {
    const q = makeQueue({ ...held, maxQueueEvents: 5, overflow: 'drop-newest', auto: () => delivered });
    const sent = Array.from({ length: 8 }, () => q.send());
    expect(q.exact()).toMatchObject({ dropped: 3, pending: 5, droppedBy: { overflow: 3 } });
    await q.queue.flush();
    expect(q.dropped('overflow')).toEqual(sent.slice(5).map((e) => e.id));
    expect(q.delivered).toEqual(sent.slice(0, 5).map((e) => e.id));
  });

  it('bounds the queue in bytes too, under either policy', async () => {
    const size = Buffer.byteLength(JSON.stringify(event()));
    for (const overflow of ['drop-oldest', 'drop-newest'] as const) {
      const q = makeQueue({ ...held, maxQueueBytes: size * 3 + 5, maxEventBytes: size + 5, overflow, auto: () => delivered });
      const sent = Array.from({ length: 5 }, () => q.send());
      expect(q.exact()).toMatchObject({ dropped: 2, pending: 3, droppedBy: { overflow: 2 } });
      await q.queue.flush();
      const expected = overflow === 'drop-oldest' ? sent.slice(0, 2) : sent.slice(3);
      expect(q.dropped('overflow')).toEqual(expected.map((e) => e.id));
      expect(q.exact()).toMatchObject({ sent: 3, dropped: 2, pending: 0 });
    }
  });

  it('a large event evicts as many old ones as it needs (drop-oldest)', async () => {
    const q = makeQueue({ ...held, maxQueueBytes: 1000, maxEventBytes: 900, auto: () => delivered });
    const small = Array.from({ length: 4 }, () => q.send());
    const large = q.send(event({ data: { pad: 'x'.repeat(700) } }));
    expect(q.exact().pending).toBeLessThan(5);
    await q.queue.flush();
    expect(q.delivered).toContain(large.id);
    expect([...q.dropped('overflow'), ...q.delivered].sort()).toEqual([...small, large].map((e) => e.id).sort());
  });
});

describe('DeliveryQueue: retries', () => {
  it('backoff is full jitter under a doubling ceiling capped at maxRetryDelayMs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 100_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, min, extra, r) => {
        const max = min + extra;
        const delay = backoffMs(attempt, min, max, () => r);
        const ceiling = Math.min(max, min * 2 ** (attempt - 1));
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(Math.max(1, ceiling));
        expect(delay).toBeLessThanOrEqual(max);
      }),
    );
    expect(backoffMs(1, 100, 30_000, () => 0.999)).toBe(99);
    expect(backoffMs(4, 100, 30_000, () => 0.999)).toBe(799);
    expect(backoffMs(30, 100, 30_000, () => 0.999)).toBe(29_970);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2024-05-01T12:00:00.000Z');
    expect(parseRetryAfter('5', now)).toBe(5000);
    expect(parseRetryAfter(' 1.5 ', now)).toBe(1500);
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('99999', now)).toBe(300_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
  });

  it('retries a batch until it is delivered, the same events each time, and counts them once', async () => {
    let failures = 3;
    const q = makeQueue({ flushAt: 5, auto: () => (failures-- > 0 ? { kind: 'retry', error: new Error('ECONNREFUSED') } : delivered) });
    const sent = Array.from({ length: 5 }, () => q.send());
    await waitFor('the batch delivered', () => q.queue.stats().sent === 5, 5000);
    expect(q.attempts).toHaveLength(4);
    for (const attempt of q.attempts) expect(attempt.batch.jsons).toEqual(q.attempts[0]!.batch.jsons);
    expect(q.attempts.map((a) => a.batch.attempt)).toEqual([1, 2, 3, 4]);
    expect(q.delivered).toEqual(sent.map((e) => e.id));
    expect(q.exact()).toMatchObject({ sent: 5, failed: 0, dropped: 0, pending: 0 });
  });

  it('waits the Retry-After the server asked for before the next attempt', async () => {
    let first = true;
    const q = makeQueue({ flushAt: 1, auto: () => (first ? ((first = false), { kind: 'retry', error: new Error('429'), afterMs: 150 }) : delivered) });
    q.send();
    await waitFor('the retry', () => q.queue.stats().sent === 1, 5000);
    expect(q.attempts[1]!.at - q.attempts[0]!.at).toBeGreaterThanOrEqual(145);
  });

  it('a batch being retried is pending, and the queue behind it fills and overflows', async () => {
    const q = makeQueue({ flushAt: 2, maxInFlight: 1, maxQueueEvents: 3, auto: () => ({ kind: 'retry', error: new Error('down') }) });
    q.send();
    q.send();
    await waitFor('the first batch in flight', () => q.attempts.length >= 1);
    for (let i = 0; i < 8; i++) q.send();
    await waitFor('a few retries', () => q.attempts.length >= 3);
    expect(q.exact()).toMatchObject({ sent: 0, pending: 5, dropped: 5, droppedBy: { overflow: 5 } });
  });
});

describe('DeliveryQueue: rejections', () => {
  it('items a delivered batch lists as rejected fail with their own error; the rest are sent', async () => {
    const q = makeQueue({ flushAt: 4, auto: (b) => ({ kind: 'delivered', rejected: [{ index: 2, error: new Error(`bad timestamp in ${b.jsons.length}`) }] }) });
    const sent = Array.from({ length: 4 }, () => q.send());
    await q.queue.flush();
    expect(q.exact()).toMatchObject({ sent: 3, failed: 1, droppedBy: { rejected: 1 } });
    expect(q.drops.filter((d) => d.source === 'backend')).toEqual([{ source: 'backend', ids: [sent[2]!.id], reason: 'rejected', error: new Error('bad timestamp in 4') }]);
    expect(q.drops.filter((d) => d.source === 'host')).toHaveLength(1);
  });

  it('a refused batch fails every item once, never retried', async () => {
    const q = makeQueue({ flushAt: 3, auto: () => ({ kind: 'refused', error: new Error('401 unauthorized'), rejected: [{ index: 0, error: new Error('item 0 bad') }] }) });
    const sent = Array.from({ length: 3 }, () => q.send());
    await q.queue.flush();
    expect(q.attempts).toHaveLength(1);
    expect(q.exact()).toMatchObject({ sent: 0, failed: 3, pending: 0, droppedBy: { rejected: 3 } });
    const mine = q.drops.filter((d) => d.source === 'backend');
    expect(mine).toContainEqual({ source: 'backend', ids: [sent[0]!.id], reason: 'rejected', error: new Error('item 0 bad') });
    expect(mine).toContainEqual({ source: 'backend', ids: [sent[1]!.id, sent[2]!.id], reason: 'rejected', error: new Error('401 unauthorized') });
  });
});

describe('DeliveryQueue: flush and close', () => {
  it('flush() resolves at its timeout while delivery is stuck, and never rejects', async () => {
    const q = makeQueue({ flushAt: 2 });
    for (let i = 0; i < 5; i++) q.send();
    const started = performance.now();
    await expect(q.queue.flush({ timeoutMs: 80 })).resolves.toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(q.exact()).toMatchObject({ sent: 0, pending: 5 });
  });

  it('flush() waits only for what was queued before it', async () => {
    const q = makeQueue({ flushAt: 100, maxInFlight: 1 });
    q.send();
    const flushed = q.queue.flush();
    await waitFor('the first batch', () => q.waiting.length === 1);
    q.send(); // after the flush: not waited for
    let done = false;
    void flushed.then(() => (done = true));
    q.waiting[0]!.answer(delivered);
    await flushed;
    expect(done).toBe(true);
    expect(q.exact()).toMatchObject({ sent: 1, pending: 1 });
  });

  it('close() sends what is queued and waits for it', async () => {
    const q = makeQueue({ flushAt: 100, auto: () => delivered });
    for (let i = 0; i < 7; i++) q.send();
    await q.queue.close();
    expect(q.exact()).toEqual({ sent: 7, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
  });

  it('close({ timeoutMs }): what is undelivered at the end is dropped as closed, the in-flight attempt aborted and its outcome ignored', async () => {
    const q = makeQueue({ flushAt: 3, maxInFlight: 1 });
    const sent = Array.from({ length: 7 }, () => q.send());
    await waitFor('a batch in flight', () => q.waiting.length === 1);
    const inFlight = q.waiting[0]!;
    await q.queue.close({ timeoutMs: 50 });
    expect(inFlight.batch.signal.aborted).toBe(true);
    expect(q.exact()).toMatchObject({ sent: 0, dropped: 7, pending: 0, droppedBy: { closed: 7 } });
    expect(q.dropped('closed').sort()).toEqual(sent.map((e) => e.id).sort());
    expect(q.dropped('closed', 'host')).toHaveLength(7);
    inFlight.answer(delivered); // too late: already counted as closed
    await new Promise((resolve) => setImmediate(resolve));
    expect(q.exact()).toMatchObject({ sent: 0, dropped: 7, pending: 0 });
  });

  it('close() stops retries at its timeout', async () => {
    const q = makeQueue({ flushAt: 1, minRetryDelayMs: 5, maxRetryDelayMs: 10, auto: () => ({ kind: 'retry', error: new Error('down') }) });
    q.send();
    await q.queue.close({ timeoutMs: 60 });
    const attempts = q.attempts.length;
    expect(q.exact()).toMatchObject({ dropped: 1, pending: 0, droppedBy: { closed: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(q.attempts.length).toBe(attempts);
  });

  it('is idempotent, and an event sent after close() is dropped as closed', async () => {
    const q = makeQueue({ auto: () => delivered });
    q.send();
    const first = q.queue.close();
    expect(q.queue.close()).toBe(first);
    await first;
    const late = q.send();
    await q.queue.close();
    expect(q.exact()).toEqual({ sent: 1, failed: 0, dropped: 1, pending: 0, droppedBy: { closed: 1 } });
    await q.queue.flush();
    expect(q.dropped('closed')).toEqual([late.id]);
  });
});

describe('DeliveryQueue: exact at every step (property)', () => {
  type Step =
    | { op: 'send'; ids: boolean; pad: number }
    | { op: 'answer'; pick: number; outcome: 'delivered' | 'reject-one' | 'retry' | 'refused' }
    | { op: 'tick' }
    | { op: 'flush' };
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant('send' as const), ids: fc.integer({ min: 0, max: 4 }).map((x) => x > 0), pad: fc.integer({ min: 0, max: 300 }) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('answer' as const), pick: fc.nat(10), outcome: fc.constantFrom('delivered' as const, 'reject-one' as const, 'retry' as const, 'refused' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('flush' as const) }) },
  );

  it('every event ends exactly once as sent, failed or dropped, and the stats add up after each step', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ flushAt: fc.integer({ min: 1, max: 6 }), maxInFlight: fc.integer({ min: 1, max: 3 }), maxQueueEvents: fc.integer({ min: 1, max: 12 }), overflow: fc.constantFrom('drop-oldest' as const, 'drop-newest' as const) }),
        fc.array(step, { maxLength: 60 }),
        fc.boolean(),
        async (config, steps, closeGently) => {
          const q = makeQueue({ ...config, maxQueueBytes: 4000, maxEventBytes: 600 });
          const given: string[] = [];
          for (const s of steps) {
            if (s.op === 'send') given.push(q.send(event(s.ids ? { data: { pad: 'p'.repeat(s.pad) } } : { ids: {}, data: { pad: 'p'.repeat(s.pad) } })).id);
            else if (s.op === 'answer' && q.waiting.length > 0) {
              const pending = q.waiting[s.pick % q.waiting.length]!;
              const outcome: Outcome =
                s.outcome === 'delivered' ? delivered
                : s.outcome === 'reject-one' ? { kind: 'delivered', rejected: [{ index: 0, error: new Error('bad') }] }
                : s.outcome === 'retry' ? { kind: 'retry', error: new Error('down'), afterMs: 0 }
                : { kind: 'refused', error: new Error('400') };
              pending.answer(outcome);
            } else if (s.op === 'tick') await new Promise((resolve) => setImmediate(resolve));
            else if (s.op === 'flush') await q.queue.flush({ timeoutMs: 0 });
            await Promise.resolve();
            q.exact();
          }
          if (closeGently) {
            const closing = q.queue.close({ timeoutMs: 5000 });
            await waitFor('everything answered', async () => {
              for (const pending of [...q.waiting]) pending.answer(delivered);
              await new Promise((resolve) => setImmediate(resolve));
              return q.queue.stats().pending === 0;
            }, 5000);
            await closing;
          } else await q.queue.close({ timeoutMs: 0 });
          const s = q.exact();
          expect(s.pending).toBe(0);
          // each id once: delivered, or reported to onDrop (the same to the host's)
          const reported = q.drops.filter((d) => d.source === 'backend').flatMap((d) => d.ids);
          expect([...q.delivered, ...reported].sort()).toEqual([...given].sort());
          expect(q.drops.filter((d) => d.source === 'host').flatMap((d) => d.ids).sort()).toEqual([...reported].sort());
          expect(q.delivered.length).toBe(s.sent);
          expect(reported.length).toBe(s.failed + s.dropped);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('httpBackend: what the collector answers', () => {
  const batch = (jsons: string[]): BatchAttempt => ({ jsons, ids: [], bytes: jsons.join('').length, attempt: 1, signal: new AbortController().signal });
  const answering = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const requests: Array<{ url: string; init: RequestInit }> = [];
    const fetch = (async (url: string, init: RequestInit) => {
      requests.push({ url, init });
      return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
    }) as unknown as typeof globalThis.fetch;
    return { fetch, requests };
  };

  it('POSTs the queued JSON as one array to <url>/v1/events with Basic auth', async () => {
    const { fetch, requests } = answering(200, { success: true, accepted: 2, duplicates: 0, rejected: [], seq: 2 });
    const outcome = await collectorTransport({ url: 'http://collector.test:8080/', writeKey: 'wk_1', fetch })(batch(['{"id":"a"}', '{"id":"b"}']));
    expect(outcome).toEqual({ kind: 'delivered', rejected: [] });
    expect(requests[0]!.url).toBe('http://collector.test:8080/v1/events');
    expect(requests[0]!.init.body).toBe('[{"id":"a"},{"id":"b"}]');
    expect((requests[0]!.init.headers as Record<string, string>).authorization).toBe(`Basic ${Buffer.from('wk_1:').toString('base64')}`);
  });

  it("a 200 with rejected items: those fail with the collector's error", async () => {
    const { fetch } = answering(200, { success: true, accepted: 1, duplicates: 0, rejected: [{ index: 1, code: 'XREF_INVALID_EVENT', field: 'timestamp', error: 'timestamp must be ISO 8601, got "yesterday"' }], seq: 1 });
    const outcome = await collectorTransport({ url: 'http://c.test', writeKey: 'k', fetch })(batch(['{}', '{}']));
    expect(outcome.kind).toBe('delivered');
    const [r] = (outcome as unknown as { rejected: ReadonlyArray<{ index: number; error: CollectorRefusedError }> }).rejected;
    expect(r!.index).toBe(1);
    expect(r!.error).toMatchObject({ code: 'XREF_INVALID_EVENT', field: 'timestamp', status: 200, serverMessage: 'timestamp must be ISO 8601, got "yesterday"' });
  });

  it('a 4xx other than 408 and 429 is refused, not retried; 408, 429 and 5xx are retried after Retry-After', async () => {
    for (const status of [400, 401, 403, 404, 413, 415]) {
      const { fetch } = answering(status, { error: `no (${status})`, code: status === 401 ? 'XREF_UNAUTHORIZED' : 'XREF_INVALID_EVENT' });
      const outcome = await collectorTransport({ url: 'http://c.test', writeKey: 'k', fetch })(batch(['{}']));
      expect(outcome.kind, String(status)).toBe('refused');
      expect((outcome as { error: Error }).error.message).toContain(`no (${status})`);
    }
    for (const status of [408, 429, 500, 502, 503]) {
      const { fetch } = answering(status, { error: 'later', code: 'XREF_NOT_READY' }, { 'retry-after': '2' });
      const outcome = await collectorTransport({ url: 'http://c.test', writeKey: 'k', fetch })(batch(['{}']));
      expect(outcome, String(status)).toMatchObject({ kind: 'retry', afterMs: 2000 });
    }
    const down = (async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    }) as unknown as typeof globalThis.fetch;
    expect(await collectorTransport({ url: 'http://c.test', writeKey: 'k', fetch: down })(batch(['{}']))).toMatchObject({ kind: 'retry', error: { message: expect.stringMatching(/ECONNREFUSED/) } });
  });

  it('a request with no answer within requestTimeoutMs is aborted and retried', async () => {
    const hanging = ((_url: string, init: RequestInit) =>
      new Promise((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)))) as unknown as typeof globalThis.fetch;
    const outcome = await collectorTransport({ url: 'http://c.test', writeKey: 'k', fetch: hanging, requestTimeoutMs: 50 })(batch(['{}']));
    expect(outcome).toMatchObject({ kind: 'retry', error: { message: 'POST http://c.test/v1/events failed: no answer within 50 ms' } });
  });

  it('a 400 listing every item: each fails with its own error; the backend never sends them again', async () => {
    const { fetch, requests } = answering(400, { success: false, accepted: 0, duplicates: 0, error: 'all 2 events were rejected', code: 'XREF_INVALID_EVENT', rejected: [{ index: 0, code: 'XREF_INVALID_EVENT', error: 'bad 0' }, { index: 1, code: 'XREF_INVALID_EVENT', error: 'bad 1' }] });
    const drops: Array<{ reason: DropReason; message: string | undefined }> = [];
    const backend = httpBackend({ url: 'http://c.test', writeKey: 'k', fetch, flushAt: 2, onDrop: (_events, reason, error) => drops.push({ reason, message: error?.message }) });
    backend.attach({ name: 'xref', logger: logger.child({ component: 'test' }), onDrop: () => undefined, child: () => { throw new Error('no children') } });
    backend.send(event());
    backend.send(event());
    await backend.flush();
    expect(requests).toHaveLength(1);
    expect(backend.stats()).toEqual({ sent: 0, failed: 2, dropped: 0, pending: 0, droppedBy: { rejected: 2 } });
    expect(drops.map((d) => d.message)).toEqual(['the collector rejected the event (400): bad 0', 'the collector rejected the event (400): bad 1']);
    await backend.close();
  });

  it('names the bad option', () => {
    expect(() => httpBackend({ url: 'localhost:8080', writeKey: 'k' })).toThrow(/httpBackend\.url must be the collector's base URL/);
    expect(() => httpBackend({ url: 'http://c.test', writeKey: '' })).toThrow(/httpBackend\.writeKey/);
    expect(() => httpBackend({ url: 'http://c.test', writeKey: 'k', flushAt: 0 })).toThrow(/httpBackend\.flushAt must be an integer >= 1, got 0/);
    expect(() => httpBackend({ url: 'http://c.test', writeKey: 'k', overflow: 'drop-all' as never })).toThrow(/httpBackend\.overflow must be 'drop-oldest' or 'drop-newest', got "drop-all"/);
    expect(() => httpBackend({ url: 'http://c.test', writeKey: 'k', maxEventBytes: 600 * 1024 })).toThrow(/httpBackend\.maxEventBytes/);
  });
});
