import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import autocannon from 'autocannon';
import { logger } from '../src/log.ts';
import { JetStreamPublisher } from '../src/nats/publisher.ts';
import { STREAMS, subjects } from '../src/nats/subjects.ts';
import { ensureTopology } from '../src/nats/topology.ts';
import { exited } from '../test/helpers/engine-process.ts';
import { freePort, startNatsServer } from '../test/helpers/nats-server.ts';

const log = logger.child({ component: 'bench' });
const WRITE_KEY = 'bench-key';

export interface HttpBenchResult {
  events: number;
  publishRate: number;
  httpRate: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Segment track calls, unique message ids, batches of `size`. */
function batchBody(n: number, size: number): string {
  const batch = [];
  for (let i = 0; i < size; i++) {
    const k = n * size + i;
    batch.push({ type: 'track', event: 'Viewed', messageId: `h-${k}`, anonymousId: `anon-${k % 5000}`, timestamp: '2024-01-01T00:00:00.000Z', properties: { path: '/p', n: k } });
  }
  return JSON.stringify({ batch });
}

/**
 * `/v1/batch` with batches of 100 from autocannon (this process) against `xref serve --no-engine`
 * (its own process) and a nats-server of our own, beside the raw JetStream publish rate of the
 * same kind of events in the same run.
 */
export async function benchHttp(batches = 2_000, size = 100): Promise<HttpBenchResult> {
  const server = await startNatsServer();
  let child: ChildProcess | undefined;
  try {
    const nc = await connect({ servers: server.url, noAsyncTraces: true });
    await ensureTopology(nc, await jetstreamManager(nc), log);

    // the yardstick: the same events published straight to JetStream, pipelined
    const publisher = new JetStreamPublisher(nc, log);
    const started = performance.now();
    for (let n = 0; n < batches; n++) {
      for (const message of (JSON.parse(batchBody(n, size)) as { batch: Array<{ messageId: string }> }).batch) {
        const event = { id: `raw-${message.messageId}`, name: 'Viewed', timestamp: '2024-01-01T00:00:00.000Z', ids: { anonymous_id: 'a' }, data: { path: '/p' } };
        void publisher.publish(subjects.in('raw'), JSON.stringify(event), event.id);
        if (publisher.pending >= 5000) await publisher.below(2500);
      }
    }
    await publisher.flushed();
    const publishRate = (batches * size) / ((performance.now() - started) / 1000);
    await publisher.close();

    const port = await freePort();
    child = spawn(process.execPath, ['bin/xref.js', 'serve', '--no-engine'], {
      env: { ...process.env, NATS_URL: server.url, PORT: String(port), XREF_HTTP_HOST: '127.0.0.1', XREF_WRITE_KEYS: WRITE_KEY, XREF_LOG_LEVEL: 'warn', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-http-')) },
      stdio: 'ignore',
    });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if ((await fetch(`${url}/readyz`).then((r) => r.ok).catch(() => false)) === true) break;
      if (i > 200) throw new Error('xref serve did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let n = 0;
    const result = await autocannon({
      url: `${url}/v1/batch`,
      connections: 16,
      amount: batches,
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` },
      requests: [{ setupRequest: (request) => ({ ...request, body: batchBody(n++, size) }) }],
    });
    const { state } = await (await jetstreamManager(nc)).streams.info(STREAMS.in);
    await nc.close();
    const httpEvents = state.messages - batches * size;
    if (httpEvents < batches * size) throw new Error(`expected ${batches * size} events from HTTP in XREF_IN, found ${httpEvents}`);
    return {
      events: batches * size,
      publishRate,
      httpRate: (result.requests.total * size) / result.duration,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.non2xx,
    };
  } finally {
    child?.kill('SIGTERM');
    if (child) await exited(child);
    await server.stop();
  }
}
