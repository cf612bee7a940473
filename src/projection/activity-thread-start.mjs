// The activity counting thread's first module: plain JavaScript, since a worker thread starts
// with no TypeScript loader. From the sources (as xref runs, through tsx) it registers tsx as
// bin/xref.js does, then loads activity-thread.ts; from a build, activity-thread.js.
import { workerData } from 'node:worker_threads';

if (workerData.typescript) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./activity-thread.ts');
} else {
  await import('./activity-thread.js');
}
