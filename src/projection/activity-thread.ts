/**
 * The active-people counting on a thread of its own, so that the projection's thread (reading and
 * parsing the streams) is not slowed by it: a worker holding its own connection to the read
 * model and an ActivityCounting, driven by messages (activity-stage.ts ThreadCounting):
 * `{ start }` → `{ ready, position }`; `{ advance, id }` → `{ written }`… and `{ done, id, outcome }`
 * or `{ done, id, error }` (a round's last write may be reported after it is done);
 * `{ reload, id }` → `{ done, id }`; `{ stop }` → `{ stopped }` (once the write under way is done).
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../domain/config.ts';
import { logger } from '../log.ts';
import { ActivityCounting } from './activity-counting.ts';
import { openReadModel } from './open-store.ts';

export interface ThreadStart {
  /** The read model's URL (`sqlite:<path>` or `postgres://…`). */
  readonly url: string;
  readonly config: Config;
  readonly owner: string;
  readonly chunk: number;
  /** SQLite: a port to the projection's writer thread, which this thread's writes go through. */
  readonly writer?: MessagePort;
}

const port = parentPort!;
const start = workerData as ThreadStart;
const log = logger.child({ component: 'activity' });
// SQLite: written through the projection's writer thread, so that the two never wait on each other's lock
const store = await openReadModel({ databaseUrl: start.url, dataDir: '.', logger: log.child({ component: 'read-model' }, { level: 'warn' }), ...(start.writer === undefined ? {} : { writer: start.writer }) });
let stopping = false;
try {
  const counting = await ActivityCounting.open({ store, config: start.config, owner: start.owner, logger: log, chunk: start.chunk });
  port.postMessage({ ready: true, position: counting.position });
  let running = Promise.resolve();
  port.on('message', (message: { advance?: number; reload?: true; id?: number; stop?: true }) => {
    if (message.stop) {
      stopping = true;
      void running.then(async () => {
        await counting.close();
        await store.close();
        port.postMessage({ stopped: true });
        port.close();
      });
      return;
    }
    const { advance: target, id } = message;
    if (target === undefined && message.reload === undefined) return;
    running = running.then(async () => {
      try {
        const outcome = target === undefined ? (await counting.reload(), 'counted') : await counting.advance(target, (seq) => port.postMessage({ written: seq }), () => stopping);
        port.postMessage({ done: id, outcome, position: counting.position });
      } catch (error) {
        port.postMessage({ done: id, error: error instanceof Error ? error.message : String(error), position: counting.position });
      }
    });
  });
} catch (error) {
  await store.close();
  port.postMessage({ failed: error instanceof Error ? error.message : String(error) });
  port.close();
}
