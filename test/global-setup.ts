import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every temporary file of a test run in one directory, removed when the run ends: the tests,
 * the nats-servers and the processes they start make theirs with `os.tmpdir()`, which reads
 * TMPDIR, and the test workers and their children inherit it.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'xref-test-run-'));
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
