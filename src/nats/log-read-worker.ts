import { Worker } from 'node:worker_threads';
import { XrefError } from '../domain/errors.ts';
import { type NatsAuth, natsAuth } from '../settings.ts';
import { STREAMS } from './subjects.ts';

/** Consecutive messages of XREF_IN: their bytes end to end in `bytes`, message i ending at `ends[i]`. */
export interface LogBatch {
  readonly bytes: Uint8Array;
  readonly ends: Uint32Array;
  readonly seqs: Float64Array;
  /** Publish times, epoch ms. */
  readonly published: Float64Array;
  readonly subjects: string[];
}

type FromThread = { batch: LogBatch } | { done: true } | { error: string };

const BATCH_SIZE = 1000;
/** Batches read ahead of the one being applied. */
const BATCHES_AHEAD = 4;

/**
 * Reads XREF_IN from `fromSeq` through `toSeq` (inclusive) on a worker thread with a connection of
 * its own, and calls `onBatch` for each batch in log order: the next batches are read while one is
 * applied, so a replay costs about the larger of reading and applying instead of their sum.
 * Resolves once `toSeq` (or the end of the stream) is reached.
 */
export async function readLogAhead(servers: string, fromSeq: number, toSeq: number, onBatch: (batch: LogBatch) => void | Promise<void>, auth: NatsAuth = natsAuth()): Promise<void> {
  if (toSeq < fromSeq) return;
  const worker = new Worker(new URL('./log-read-thread.mjs', import.meta.url), {
    workerData: { servers, auth, stream: STREAMS.in, fromSeq, toSeq, batchSize: BATCH_SIZE, maxBatchesAhead: BATCHES_AHEAD },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      let applied = Promise.resolve();
      worker.on('message', (message: FromThread) => {
        if ('error' in message) reject(new XrefError('XREF_NATS_UNAVAILABLE', `reading XREF_IN failed: ${message.error}`));
        else if ('done' in message) applied.then(resolve, reject);
        else {
          applied = applied.then(() => onBatch(message.batch)).then(() => worker.postMessage('more'));
          applied.catch(reject);
        }
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new XrefError('XREF_INTERNAL', `the XREF_IN reader thread stopped early (exit code ${code})`)));
    });
  } finally {
    await worker.terminate();
  }
}
