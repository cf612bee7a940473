/**
 * `xref events [filters]`, `xref who <kind> <value>` and `xref user <kind> <id>`: the query API
 * for people at a terminal. They read the read model's database directly (XREF_DATABASE_URL, as
 * `xref serve` fills it), or ask a running server with `--url` and a read token (`--token`, or
 * XREF_READ_TOKEN). Either way the answer is the API's JSON: `--json` prints it, otherwise it is
 * shown as tables. The filters are the API's parameters (`--session-id` is `session_id`), read by
 * the same parser, so a bad value gets the same message.
 *
 * Exit status: 0 with an answer (an empty list of events is one); 1 when `who` finds the
 * identifier unknown or `user` finds no such user; 2 for a bad argument or a failure (main.ts).
 */
import Table from 'cli-table3';
import { resolveConfig } from '../domain/config.ts';
import { ERROR_CATALOGUE, type ErrorCode, XrefError, isXrefError, quote } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { openReadModel } from '../projection/open-store.ts';
import { type QueryString, checkIdentifier, checkUser, parseActivityQuery, parseEventsQuery } from '../projection/query-params.ts';
import { type ActivityAnswer, type EventJson, type EventsAnswer, type IdentifierAnswer, ReadModelQueries, type UserAnswer } from '../projection/queries.ts';
import type { Settings } from '../settings.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';

/** Where the query commands read: the database (default) or a running server. */
export interface RemoteOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** What the commands need of the settings (reading the database directly). */
export type QuerySettings = Pick<Settings, 'databaseUrl' | 'dataDir' | 'configFile' | 'userEventsCap' | 'readToken'>;

/** How long a `--url` request may take. */
const REMOTE_TIMEOUT_MS = 30_000;

/** The answers the commands print, wherever they come from. */
interface Answers {
  events(params: QueryString): Promise<EventsAnswer>;
  activity(params: QueryString): Promise<ActivityAnswer>;
  identifier(kind: string, value: string): Promise<IdentifierAnswer>;
  user(kind: string, id: string): Promise<UserAnswer>;
  close(): Promise<void>;
}

/** The read model's database, read here. */
async function localAnswers(settings: QuerySettings): Promise<Answers> {
  const config = resolveConfig(loadConfigFile(settings.configFile));
  const logger = componentLogger('query');
  // a person at a terminal wants the answer, not which file was opened
  const store = await openReadModel({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger: componentLogger('read-model').child({}, { level: 'warn' }) });
  const queries = new ReadModelQueries(store, { config, userEventsCap: settings.userEventsCap, logger });
  return {
    events: (params) => queries.events(parseEventsQuery(params, queries)),
    activity: (params) => queries.activity(parseActivityQuery(params)),
    identifier: (kind, value) => queries.identifier(checkIdentifier(kind, value)),
    user: (kind, id) => queries.user(checkUser('kind', kind, id, queries)),
    close: () => store.close(),
  };
}

/** A running server's query API; its error answers come back as the XrefErrors they were. */
function remoteAnswers(url: string, token: string | undefined): Answers {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    base = new URL('invalid:');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new XrefError('XREF_INVALID_ARGUMENT', `--url must be the server's http:// or https:// address (e.g. http://localhost:8080), got ${quote(url)}`, { field: 'url' });
  const get = async <T>(path: string, params: QueryString = {}): Promise<T> => {
    const target = new URL(path, base);
    for (const [name, value] of Object.entries(params)) for (const one of Array.isArray(value) ? value : [value]) if (typeof one === 'string') target.searchParams.append(name, one);
    let response: Response;
    try {
      response = await fetch(target, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(REMOTE_TIMEOUT_MS) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new XrefError('XREF_INVALID_ARGUMENT', `cannot reach --url ${base.origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`, { field: 'url', cause: error });
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.ok && body !== undefined) return body as T;
    const answer = (body ?? {}) as { error?: unknown; code?: unknown; field?: unknown };
    const code = typeof answer.code === 'string' && answer.code in ERROR_CATALOGUE ? (answer.code as ErrorCode) : 'XREF_INTERNAL';
    const message = typeof answer.error === 'string' ? answer.error : `${base.origin} answered ${response.status} ${quote(text.slice(0, 200))}`;
    throw new XrefError(code, message, typeof answer.field === 'string' ? { field: answer.field } : {});
  };
  const part = encodeURIComponent;
  return {
    events: (params) => get('/v1/events', params),
    activity: (params) => get('/v1/activity', params),
    identifier: (kind, value) => get(`/v1/identifiers/${part(kind)}/${part(value)}`),
    user: (kind, id) => get(`/v1/users/${part(kind)}/${part(id)}`),
    close: async () => undefined,
  };
}


/** Runs `work` on the answers `options` point at, closing them after. */
export async function withAnswers<T>(options: RemoteOptions, settings: QuerySettings, work: (answers: Answers) => Promise<T>): Promise<T> {
  const answers = options.url === undefined ? await localAnswers(settings) : remoteAnswers(options.url, options.token ?? settings.readToken);
  try {
    return await work(answers);
  } finally {
    await answers.close();
  }
}

/** `--session-id` (commander's `sessionId`) → `session_id`: the API's parameter names. */
function apiParams(options: Record<string, unknown>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key === 'url' || key === 'token' || key === 'json' || value === undefined) continue;
    params[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = String(value);
  }
  return params;
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** A table with no colours (output may go to a file) and the given head. */
function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] } });
}

const refText = (user: { kind: string; id: string } | null | undefined) => (user == null ? '' : `${user.kind}:${user.id}`);
const viaText = (via: { kind: string; value: string } | null) => (via === null ? '' : `${via.kind}:${via.value}`);

/** Events as rows: time, name, category, session, source, user, via, id. */
function eventsTable(events: readonly EventJson[]): string {
  const rows = table(['time', 'name', 'category', 'session', 'source', 'user', 'via', 'id']);
  for (const e of events) rows.push([e.timestamp ?? '', e.name ?? '', e.category ?? '', e.session_id ?? '', e.source, refText(e.user), viaText(e.via), e.id]);
  return rows.toString();
}

/** `xref events`: a page of events, and how to ask for the next. */
export async function eventsCommand(options: Record<string, string | boolean | undefined> & RemoteOptions, io: CommandIo, settings: QuerySettings): Promise<number> {
  const answer = await withAnswers(options, settings, (answers) => answers.events(apiParams(options)));
  if (options.json === true) {
    io.stdout.write(json(answer));
    return 0;
  }
  io.stdout.write(answer.events.length === 0 ? 'no events match\n' : `${eventsTable(answer.events)}\n`);
  io.stdout.write(`${answer.events.length} event${answer.events.length === 1 ? '' : 's'}; read model at input ${answer.watermark}\n`);
  if (answer.next !== null) io.stdout.write(`next page: the same command with --cursor ${answer.next}\n`);
  if (answer.watermark === 0 && options.url === undefined) io.stderr.write('xref events: the read model is empty: xref serve (or xref project) fills it from the streams\n');
  return 0;
}

/** `xref who <kind> <value>`: the identifier's status and what goes with it; exit 1 when unknown. */
export async function whoCommand(kind: string, value: string, options: RemoteOptions, io: CommandIo, settings: QuerySettings): Promise<number> {
  const answer = await withAnswers(options, settings, (answers) => answers.identifier(kind, value));
  io.stdout.write(options.json === true ? json(answer) : whoText(answer));
  return answer.status === 'unknown' ? 1 : 0;
}

/** The status block of `xref who`. */
export function whoText(answer: IdentifierAnswer): string {
  const lines = [`${answer.identifier.kind} ${quote(answer.identifier.value)}: ${answer.status}`];
  const line = (label: string, text: string) => lines.push(`  ${label.padEnd(10)} ${text}`);
  if (answer.user !== undefined) {
    line('user', refText(answer.user));
    line('since', answer.since ?? '(not known yet)');
    line('linked by', answer.linked_by ?? '(not known yet)');
  }
  if (answer.buffered !== undefined) {
    const { count, oldest, expires, events } = answer.buffered;
    line('buffered', `${count} event${count === 1 ? '' : 's'} waiting for a user, the oldest at ${oldest ?? '?'}; unlinked they leave as expired from ${expires ?? '?'}`);
    lines.push(eventsTable(events));
  }
  if (answer.unmatched !== undefined) line('unmatched', answer.unmatched.map(({ reason, count }) => `${reason}: ${count}`).join(', '));
  if (answer.status === 'unknown') lines.push('  the read model holds no event with this identifier');
  return `${lines.join('\n')}\n`;
}

/** `xref user <kind> <id>`: linked identifiers, then events by identifier; exit 1 when there is no such user. */
export async function userCommand(kind: string, id: string, options: RemoteOptions, io: CommandIo, settings: QuerySettings): Promise<number> {
  let answer: UserAnswer;
  try {
    answer = await withAnswers(options, settings, (answers) => answers.user(kind, id));
  } catch (error) {
    if (!isXrefError(error, 'XREF_NOT_FOUND')) throw error;
    io.stderr.write(`xref: ${error.message}\n`);
    return 1;
  }
  io.stdout.write(options.json === true ? json(answer) : userTables(answer));
  return 0;
}

/** The tables of `xref user`. */
export function userTables(answer: UserAnswer): string {
  const { kind, id } = answer.user;
  const out = [`${kind} ${quote(id)}: ${answer.counts.events} event${answer.counts.events === 1 ? '' : 's'}, ${answer.counts.identifiers} linked identifier${answer.counts.identifiers === 1 ? '' : 's'}`];
  if (answer.identifiers.length > 0) {
    const links = table(['kind', 'value', 'since', 'linked by']);
    for (const i of answer.identifiers) links.push([i.kind, i.value, i.since ?? '', i.linked_by]);
    out.push(links.toString());
  }
  for (const [viaKind, values] of Object.entries(answer.document[kind]?.[id] ?? {})) {
    for (const [value, events] of Object.entries(values)) {
      out.push(`events through ${viaKind} ${quote(value)} (${events.length}):`);
      const rows = table(['time', 'name', 'category', 'session', 'id']);
      for (const e of events) rows.push([e.timestamp ?? '', e.name ?? '', e.category ?? '', e.session_id ?? '', e.id]);
      out.push(rows.toString());
    }
  }
  if (answer.truncated) out.push(`only the newest of them are shown: xref events --user ${kind}:${id} pages through all ${answer.counts.events}`);
  return `${out.join('\n')}\n`;
}
