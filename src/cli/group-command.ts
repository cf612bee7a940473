import { readFileSync, statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { type ConfigInput, resolveConfig } from '../domain/config.ts';
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

/** The most kinds the warning below lists. */
const MAX_LISTED_KINDS = 20;

/**
 * The warning when no event carried an internal kind (nothing can be grouped under a user): the
 * kinds asked for, where they came from, and the kinds the events do carry, most frequent first.
 */
export function noInternalKindMessage(internal: readonly string[], source: string, carried: ReadonlyMap<string, number>): string {
  const asked = `${internal.length === 1 ? 'the internal kind' : 'any of the internal kinds'} ${internal.join(', ')} (${source})`;
  const kinds = [...carried].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const listed = kinds.slice(0, MAX_LISTED_KINDS).map(([kind, n]) => `${kind} (${n} event${n === 1 ? '' : 's'})`);
  if (kinds.length > MAX_LISTED_KINDS) listed.push(`and ${kinds.length - MAX_LISTED_KINDS} more`);
  return [
    `warning: no event carried ${asked}, so no event is grouped under a user.`,
    `  The events carry: ${listed.join(', ')}. If one of these is your own user id, name it: --internal <kind>`,
  ].join('\n');
}

/**
 * `xref group FILE|-`: prints the groups document (or the whole report). Bad lines go to stderr
 * as `line N: reason` and the rest is still grouped. When no event carried an internal kind, a
 * warning on stderr lists the kinds the events carry. Returns the exit status: 1 if any line was
 * rejected, else 0.
 */
export async function groupCommand(file: string, options: GroupCommandOptions, io: CommandIo): Promise<number> {
  const config = loadConfigFile(options.config);
  const fromOption = options.internal !== undefined && options.internal.length > 0;
  if (fromOption) config.internal = options.internal;
  const grouper = new Grouper(config);
  const internal = resolveConfig(config).internal;
  const internalSource = fromOption ? '--internal' : config.internal !== undefined ? `"internal" in ${options.config}` : 'the default';
  // the kinds the good events carry (and how many events carry each), until one carries an internal kind
  let carried: Map<string, number> | undefined = new Map();
  const size = file === '-' ? 0 : statSync(file).size;
  const progress = progressBar(size >= PROGRESS_MIN_BYTES ? size : 0, 'bytes');
  let read = 0;
  let rejected = 0;
  for await (const entry of readNdjson(openInput(file))) {
    const error = 'error' in entry ? (grouper.reject(entry.error), entry.error) : grouper.add(entry.value, entry.bytes);
    if (error !== undefined) {
      rejected++;
      io.stderr.write(`line ${entry.line}: ${error.message}\n`);
    } else if (carried !== undefined && 'value' in entry) {
      // a good event: its ids is an object of kinds
      for (const kind of Object.keys((entry.value as { ids: object }).ids)) carried.set(kind, (carried.get(kind) ?? 0) + 1);
      if (internal.some((kind) => carried!.has(kind))) carried = undefined;
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
  if (carried !== undefined && carried.size > 0) io.stderr.write(`${noInternalKindMessage(internal, internalSource, carried)}\n`);
  return rejected > 0 ? 1 : 0;
}
