import { PassThrough } from 'node:stream';

/** An injected io for a CLI command whose output is read back as strings (`out.stdout`, `out.stderr`). */
export function capture() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (chunk) => (out.stdout += chunk));
  stderr.on('data', (chunk) => (out.stderr += chunk));
  return { io: { stdout, stderr }, out };
}
