import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
const RUNS = 7;

/** Wall time of a fresh plain-Node process running `script` (ms), the best of RUNS. */
function bestMs(script: string): number {
  let best = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, stdio: 'ignore' });
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  return best;
}

export interface ImportBenchResult {
  bareMs: number;
  offlineMs: number;
  natsMs: number;
  httpMs: number;
}

/**
 * What importing each entry point of the built package costs in plain Node (no tsx), beside a
 * process that imports nothing: the offline library must stay light (no NATS, fastify or
 * prom-client loaded for `groupEvents`).
 */
export function benchImport(): ImportBenchResult {
  if (!existsSync(join(repo, 'dist/src/index.js'))) execFileSync('npm', ['run', 'build'], { cwd: repo, stdio: 'ignore' });
  const entry = (path: string) => `await import(${JSON.stringify(join(repo, 'dist/src', path))});`;
  return {
    bareMs: bestMs(''),
    offlineMs: bestMs(entry('index.js')),
    natsMs: bestMs(entry('nats/index.js')),
    httpMs: bestMs(entry('http/index.js')),
  };
}
