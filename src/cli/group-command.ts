import { readFileSync, statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { ConfigInput } from '../domain/config.ts';
import { XrefError } from '../domain/errors.ts';
import { Grouper } from '../group.ts';
import { openInput, readNdjson } from './ndjson.ts';
import { progressBar } from './progress.ts';

export interface GroupCommandOptions {
  config?: string;
  internal?: string[];
  report?: boolean;
}

export interface CommandIo {
  stdout: Writable;
  stderr: Writable;
}

/** Files smaller than this finish before a progress bar would be worth drawing. */
const PROGRESS_MIN_BYTES = 8 * 1024 * 1024;

export function loadConfigFile(path: string | undefined): ConfigInput {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new XrefError('XREF_INVALID_CONFIG', `cannot read config file ${JSON.stringify(path)}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text) as ConfigInput;
  } catch (cause) {
    throw new XrefError('XREF_INVALID_CONFIG', `config file ${JSON.stringify(path)} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/**
 * `xref group FILE|-`: prints the groups document (or the whole report). Bad lines go to stderr
 * as `line N: reason` and the rest is still grouped. Returns the exit status: 1 if any line was
 * rejected, else 0.
 */
export async function groupCommand(file: string, options: GroupCommandOptions, io: CommandIo): Promise<number> {
  const config = loadConfigFile(options.config);
  if (options.internal !== undefined && options.internal.length > 0) config.internal = options.internal;
  const grouper = new Grouper(config);
  const size = file === '-' ? 0 : statSync(file).size;
  const progress = progressBar(size >= PROGRESS_MIN_BYTES ? size : 0, 'bytes');
  let read = 0;
  let rejected = 0;
  for await (const entry of readNdjson(openInput(file))) {
    const error = 'error' in entry ? (grouper.reject(entry.error), entry.error) : grouper.add(entry.value, entry.bytes);
    if (error !== undefined) {
      rejected++;
      io.stderr.write(`line ${entry.line}: ${error.message}\n`);
    }
    if ('bytes' in entry) read += entry.bytes + 1;
    if ((entry.line & 0x3ff) === 0) progress.update(read);
  }
  progress.stop();
  const report = grouper.finish();
  const out = options.report
    ? { groups: report.groups, unmatched: report.unmatched, audit: report.audit }
    : report.groups;
  io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return rejected > 0 ? 1 : 0;
}
