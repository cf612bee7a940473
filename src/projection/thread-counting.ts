/**
 * The projection's side of the counting thread (activity-thread.ts): the same Counting as an
 * ActivityCounting in process, each round posted to the thread and its writes reported back.
 */
import { Worker } from 'node:worker_threads';
import { XrefError } from '../domain/errors.ts';
import type { Counting, CountingOutcome } from './activity-counting.ts';
import type { ThreadStart } from './activity-thread.ts';

type Reply = { ready?: true; position?: number; failed?: string; written?: number; done?: number; outcome?: CountingOutcome; error?: string; stopped?: true };


export class ThreadCounting implements Counting {
  private seq = 0;
  private next = 0;
  private readonly rounds = new Map<number, { resolve: (outcome: CountingOutcome) => void; reject: (error: Error) => void }>();
  /** Whom a write tells (the last round's: a round's last write may be reported after it is done). */
  private written: (seq: number) => void = () => {};
  private failure: Error | undefined;
  private stopped: (() => void) | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: Reply) => this.answered(reply));
    worker.on('error', (error) => this.failed(error));
    worker.on('exit', () => {
      this.failed(new XrefError('XREF_INTERNAL', 'the activity counting thread stopped'));
      this.stopped?.();
    });
  }

  /** Starts the thread on the read model at `url`; resolves once it loaded the stored counts. */
  static async start(start: ThreadStart): Promise<ThreadCounting> {
    // the sources (run through tsx) or a build: activity-thread-start.mjs loads the one this is
    const workerData: ThreadStart & { typescript: boolean } = { ...start, typescript: import.meta.url.endsWith('.ts') };
    // a young generation larger than the default: the counter makes many short-lived objects
    const worker = new Worker(new URL('./activity-thread-start.mjs', import.meta.url), {
      workerData,
      transferList: start.writer === undefined ? [] : [start.writer],
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
    });
    const counting = new ThreadCounting(worker);
    await new Promise<void>((resolve, reject) => {
      const first = (reply: Reply) => {
        worker.off('message', first);
        if (reply.failed !== undefined) reject(new XrefError('XREF_DATABASE', `the activity counting thread could not start: ${reply.failed}`));
        else {
          counting.seq = reply.position ?? 0;
          resolve();
        }
      };
      worker.on('message', first);
      worker.once('error', reject);
    });
    return counting;
  }

  get position(): number {
    return this.seq;
  }

  advance(target: number, written: (seq: number) => void): Promise<CountingOutcome> {
    this.written = written;
    return this.ask({ advance: target });
  }

  async reload(): Promise<void> {
    await this.ask({ reload: true });
  }

  private ask(body: object): Promise<CountingOutcome> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.rounds.set(id, { resolve, reject });
      this.worker.postMessage({ ...body, id });
    });
  }

  /** Stops the thread once its round is written. */
  async close(): Promise<void> {
    if (this.failure !== undefined) return;
    const stopped = new Promise<void>((resolve) => (this.stopped = resolve));
    this.worker.postMessage({ stop: true });
    await stopped;
  }

  private answered(reply: Reply): void {
    if (reply.written !== undefined) {
      this.seq = reply.written;
      this.written(reply.written);
    }
    if (reply.done !== undefined) {
      // where the thread's counter is now (lower than written after the counts were deleted and loaded again)
      if (reply.position !== undefined) this.seq = reply.position;
      const round = this.rounds.get(reply.done);
      this.rounds.delete(reply.done);
      if (reply.error !== undefined) round?.reject(new XrefError('XREF_DATABASE', `counting active people: ${reply.error}`));
      else round?.resolve(reply.outcome ?? 'counted');
    }
  }

  /** The thread died or threw: every round from now on fails with XREF_INTERNAL (the projection stops for good). */
  private failed(error: Error): void {
    this.failure ??= error instanceof XrefError ? error : new XrefError('XREF_INTERNAL', `the activity counting thread failed: ${error.message}`, { cause: error });
    for (const round of this.rounds.values()) round.reject(this.failure);
    this.rounds.clear();
  }
}
