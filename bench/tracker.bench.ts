import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import autocannon from 'autocannon';
import { logger } from '../src/log.ts';
import { STREAMS } from '../src/nats/subjects.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { QUEUE_DEFAULTS } from '../src/tracker/delivery-queue.ts';
import { HTTP_DEFAULTS, httpBackend } from '../src/tracker/http-backend.ts';
import { type Tracker, createTracker, memoryBackend, redact, regexFilter } from '../src/tracker/index.ts';
import type { Backend, DeliveryReport } from '../src/tracker/types.ts';
import { exited } from '../test/helpers/engine-process.ts';
import { freePort, startNatsServer } from '../test/helpers/nats-server.ts';

const log = logger.child({ component: 'bench' });
const WRITE_KEY = 'bench-key';

export interface TrackerBenchResult {
  /** Events emitted (and delivered). */
  events: number;
  /** Events per POST, the backend's batch size and the yardstick's. */
  batchSize: number;
  /** Batches in flight at once. */
  inFlight: number;
  /** `emit` calls per second, counting only the time spent in them: the best of `emitRounds` rounds. */
  emitRate: number;
  /** The same over every round. */
  emitRateAll: number;
  emitRounds: number;
  /** emit latency, in µs. */
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** From the first emit until `flush()` resolved with every event stored. */
  deliveredRate: number;
  /** POST /v1/events with batches of the same size (autocannon, same run). */
  ingestRate: number;
  ingestConnections: number;
  ingestErrors: number;
  /** Which CPUs ran what (see pinApart). */
  layout: string;
  report: DeliveryReport;
}

/**
 * On a machine of a few cores, the collector and nats-server ingesting flat out take the cores the
 * emitting process runs on, and the emit figures measure the contention instead of the tracker. So
 * this process is pinned to CPU 0 and the collector and nats-server to the others (as if on hosts
 * of their own), for the yardstick and the tracker alike. Off with XREF_BENCH_TRACKER_PIN=0, or
 * without `taskset`. Returns the layout, for the printout; `unpin()` gives this process every CPU back.
 */
function pinApart(pids: ReadonlyArray<number | undefined>): string {
  const cpus = availableParallelism();
  if (process.env.XREF_BENCH_TRACKER_PIN === '0' || cpus < 2) return `not pinned (${cpus} CPUs)`;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    for (const pid of pids) if (pid !== undefined) execFileSync('taskset', ['-a', '-p', '-c', `1-${cpus - 1}`, String(pid)], { stdio: 'ignore' });
    return `this process on CPU 0, xref serve and nats-server on CPU${cpus > 2 ? `s 1-${cpus - 1}` : ' 1'}`;
  } catch {
    unpin();
    return `not pinned (no taskset)`;
  }
}

function unpin(): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', `0-${availableParallelism() - 1}`, String(process.pid)], { stdio: 'ignore' });
  } catch {
    // no taskset: nothing was pinned
  }
}

const sleepTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The tracker of the measure: 2 processors (a blocklist on the name, a redaction) and the ids from the contexts. */
function makeTracker(backends: Record<string, Backend>): Tracker {
  return createTracker({
    source: 'bench',
    ids: { 'context.user_id': 'db_id', 'context.cookie': 'cookie' },
    processors: [regexFilter({ type: 'blocklist', patterns: ['debug\\..*'] }), redact(['context.ip', 'data.password'])],
    backends,
  });
}

/** Runs `emitOne(i)` for i in [from, to) inside 3 nested contexts (app, request, user), the way a request handler would. */
function inContexts<T>(tracker: Tracker, visitor: number, fn: () => T): T {
  return tracker.context('app', { app: 'shop', release: '2026.1', region: 'eu-west-1' }, () =>
    tracker.context('request', { cookie: `visitor-${visitor}`, path: '/products/42', referer: 'https://example.com/', ip: '203.0.113.7', user_agent: 'Mozilla/5.0 (bench)' }, () =>
      tracker.context('user', { user_id: visitor % 3 === 0 ? visitor : undefined, plan: 'pro' }, fn),
    ),
  );
}

const data = (i: number) => ({ product: 'sku-42', price: 19.99, quantity: 1 + (i % 3), password: 'hunter2' });

/** `count` events as this tracker makes them, as /v1/events bodies of `size`: the yardstick's load. */
function yardstickBodies(count: number, size: number): string[] {
  const memory = memoryBackend();
  const tracker = makeTracker({ memory });
  const bodies: string[] = [];
  for (let b = 0; b < count / size; b++) {
    inContexts(tracker, b, () => {
      for (let i = 0; i < size; i++) tracker.emit('product_viewed', data(i));
    });
    bodies.push(JSON.stringify(memory.events.splice(0)));
  }
  return bodies;
}

/**
 * One run, against `xref serve --no-engine` (its own process) on a nats-server of our own:
 * (1) the collector's own ingest rate: autocannon POSTing /v1/events batches of the backend's size,
 *     made of the same events;
 * (2) a tracker with 3 nested contexts and 2 processors into an httpBackend on the same collector:
 *     (a) `emits` emits in 5 rounds of slices of 1,000, each slice timed, between which the event
 *     loop runs (as between requests): the emit rate, best round and all rounds; (b) `emits` more, each timed with process.hrtime.bigint:
 *     p50/p99 latency; then flush(): every event of (a) and (b) over the time from the first emit
 *     to the flush resolving is the delivered rate.
 * The backend runs with its defaults. Emitting outruns delivery, so each slice of 1,000 waits until
 * the backend's queue has room for it (as a busy app would keep it full): none is dropped, and the
 * backend always has batches to send.
 */
export async function benchTracker(emits = 200_000, tuning: { flushAt?: number; maxInFlight?: number } = {}): Promise<TrackerBenchResult> {
  const batchSize = tuning.flushAt ?? HTTP_DEFAULTS.flushAt;
  const inFlight = tuning.maxInFlight ?? HTTP_DEFAULTS.maxInFlight;
  const server = await startNatsServer();
  let child: ChildProcess | undefined;
  try {
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const port = await freePort();
    child = spawn(process.execPath, ['bin/xref.js', 'serve', '--no-engine'], {
      env: { ...process.env, NATS_URL: server.url, PORT: String(port), XREF_HTTP_HOST: '127.0.0.1', XREF_WRITE_KEYS: WRITE_KEY, XREF_LOG_LEVEL: 'warn', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-tracker-')) },
      stdio: 'ignore',
    });
    const url = `http://127.0.0.1:${port}`;
    const layout = pinApart([child.pid, server.pid]);
    for (let i = 0; ; i++) {
      if ((await fetch(`${url}/readyz`).then((r) => r.ok).catch(() => false)) === true) break;
      if (i > 200) throw new Error('xref serve did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    // (1) the yardstick
    const ingestConnections = 16;
    let bodies: string[] | undefined = yardstickBodies(emits, batchSize);
    let next = 0;
    const ingest = await autocannon({
      url: `${url}/v1/events`,
      connections: ingestConnections,
      amount: bodies.length,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` },
      requests: [{ setupRequest: (request) => ({ ...request, body: bodies![next++ % bodies!.length] }) }],
    });
    const ingestRate = (ingest.requests.total * batchSize) / ingest.duration;
    const ingestErrors = ingest.errors + ingest.non2xx;
    bodies = undefined;
    (globalThis as { gc?: () => void }).gc?.();

    // (2) the tracker
    const xref = httpBackend({ url, writeKey: WRITE_KEY, flushAt: batchSize, maxInFlight: inFlight });
    const tracker = makeTracker({ xref });
    // emitting outruns delivery: a slice waits until the backend's queue has room for it (its
    // default bound, 10,000 events), as a busy app's backlog would; the backend is never idle
    const slice = 1000;
    const room = async () => {
      while (xref.stats().pending > QUEUE_DEFAULTS.maxQueueEvents - slice) await new Promise((resolve) => setTimeout(resolve, 1));
    };
    // warm up the code paths (not counted: a memory backend only)
    const warm = makeTracker({ memory: memoryBackend() });
    for (let i = 0; i < 20_000; i++) inContexts(warm, i, () => warm.emit('product_viewed', data(i)));
    await warm.close();
    (globalThis as { gc?: () => void }).gc?.();

    // (a) throughput: 5 rounds of slices of 1,000 emits, each slice timed as a whole; (b) latency:
    // as many emits, each timed
    const rounds = 5;
    const roundRates: number[] = [];
    let allNs = 0n;
    const latencies = new Float64Array(emits);
    const started = performance.now();
    for (let round = 0, from = 0; round < rounds; round++) {
      let inEmitNs = 0n;
      const first = from;
      for (const end = Math.round(((round + 1) * emits) / rounds / slice) * slice; from < end; from += slice) {
        await room();
        inContexts(tracker, from / slice, () => {
          const sliceStart = process.hrtime.bigint();
          for (let i = from; i < from + slice; i++) tracker.emit('product_viewed', data(i));
          inEmitNs += process.hrtime.bigint() - sliceStart;
        });
        await sleepTick();
      }
      roundRates.push((from - first) / (Number(inEmitNs) / 1e9));
      allNs += inEmitNs;
    }
    for (let from = 0; from < emits; from += slice) {
      await room();
      inContexts(tracker, from / slice, () => {
        for (let i = from; i < from + slice; i++) {
          const t0 = process.hrtime.bigint();
          tracker.emit('product_viewed', data(i));
          latencies[i] = Number(process.hrtime.bigint() - t0);
        }
      });
      await sleepTick();
    }
    const report = await tracker.flush({ timeoutMs: 120_000 });
    const deliveredMs = performance.now() - started;
    await tracker.close();

    const { state } = await (await jetstreamManager(nc)).streams.info(STREAMS.in);
    await nc.close();
    if (report.total.sent !== 2 * emits) throw new Error(`the tracker delivered ${report.total.sent} of ${2 * emits} events: ${JSON.stringify(report)}`);
    if (state.messages < 3 * emits) throw new Error(`expected ${3 * emits} events in XREF_IN, found ${state.messages}`);

    latencies.sort();
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! / 1000;
    return {
      events: 2 * emits,
      batchSize,
      inFlight,
      emitRate: Math.max(...roundRates),
      emitRateAll: emits / (Number(allNs) / 1e9),
      emitRounds: rounds,
      p50Us: at(0.5),
      p99Us: at(0.99),
      p999Us: at(0.999),
      maxUs: latencies[latencies.length - 1]! / 1000,
      deliveredRate: (2 * emits) / (deliveredMs / 1000),
      ingestRate,
      ingestConnections,
      ingestErrors,
      layout,
      report,
    };
  } finally {
    unpin();
    child?.kill('SIGTERM');
    if (child) await exited(child);
    await server.stop();
  }
}

// `node --expose-gc --import tsx bench/tracker.bench.ts`: this part alone, as JSON
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchTracker(Number(process.env.XREF_BENCH_TRACKER_EVENTS ?? 200_000));
  process.stdout.write(`${JSON.stringify({ ...r, report: r.report.total }, null, 2)}\n`);
}
