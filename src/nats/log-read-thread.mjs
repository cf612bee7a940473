// Reads a range of a stream on a thread of its own and hands the messages over in batches, so a
// replay applies one batch while the next is read. Plain JavaScript: a worker thread starts with
// no TypeScript loader. The main-thread side, and the types of what crosses, are in log-read-worker.ts.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connect, credsAuthenticator } from '@nats-io/transport-node';

const { servers, auth, stream, filter, fromSeq, toSeq, batchSize, maxBatchesAhead } = workerData;
let credits = maxBatchesAhead;
let wake;
parentPort.on('message', () => {
  credits++;
  wake?.();
});

/** One batch: every message's bytes end to end in one buffer that is transferred, not copied. */
function pack(messages) {
  let size = 0;
  for (const m of messages) size += m.data.length;
  const bytes = new Uint8Array(size);
  const ends = new Uint32Array(messages.length);
  const seqs = new Float64Array(messages.length);
  const published = new Float64Array(messages.length);
  const subjects = [];
  let at = 0;
  messages.forEach((m, i) => {
    bytes.set(m.data, at);
    at += m.data.length;
    ends[i] = at;
    seqs[i] = m.seq;
    published[i] = Number(m.timestampNanos / 1_000_000n);
    subjects.push(m.subject);
  });
  return { batch: { bytes, ends, seqs, published, subjects }, transfer: [bytes.buffer, ends.buffer, seqs.buffer, published.buffer] };
}

async function send(messages) {
  while (credits === 0) await new Promise((resolve) => (wake = resolve));
  credits--;
  const { batch, transfer } = pack(messages);
  parentPort.postMessage({ batch }, transfer);
}

/** xref's NATS credentials (NatsAuth, src/settings.ts) as connect() takes them: what authOptions in connection.ts gives. */
function credentials() {
  if (auth.scheme === 'user') return { user: auth.user, pass: auth.pass };
  if (auth.scheme === 'token') return { token: auth.token };
  if (auth.scheme === 'creds') return { authenticator: credsAuthenticator(() => readFileSync(auth.credsFile)) };
  return {};
}

let nc;
try {
  nc = await connect({ servers, noAsyncTraces: true, ...credentials() });
  const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq });
  const messages = await consumer.consume({ max_messages: 2000 });
  let batch = [];
  for await (const msg of messages) {
    if (msg.seq > toSeq) break;
    batch.push(msg);
    const last = msg.seq >= toSeq || msg.info.pending === 0;
    if (batch.length >= batchSize || last) {
      await send(batch);
      batch = [];
    }
    if (last) break;
  }
  if (batch.length > 0) await send(batch);
  parentPort.postMessage({ done: true });
} catch (error) {
  parentPort.postMessage({ error: error instanceof Error ? error.message : String(error) });
} finally {
  await nc?.close();
}
