/**
 * `xref events`, `xref who` and `xref user` on a SQLite read model: read directly from the
 * database, and through `--url` from a running server with a read token, the same answers either
 * way; tables by default, the API's JSON with `--json`; exit 0, 1 (unknown identifier, no such
 * user) or 2 (a bad argument, with the API's message).
 */
import { loadSettings } from '../../src/settings.ts';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsCommand, userCommand, whoCommand } from '../../src/cli/query-commands.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import { XrefError } from '../../src/domain/errors.ts';
import type { XrefApp } from '../../src/http/app.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { ReadModelQueries } from '../../src/projection/queries.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { capture } from '../helpers/cli.ts';
import { testApp } from '../helpers/http.ts';
import { type FillInput, fillReadModel } from '../helpers/read-model-fill.ts';

const run = promisify(execFile);
const READ_TOKEN = 'rt_cli_90ab';
const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'xref-cli-query-'));
const file = join(dir, 'read-model.sqlite');
const settings = { databaseUrl: `sqlite:${file}`, dataDir: join(dir, 'data'), configFile: undefined, userEventsCap: 10_000, readToken: undefined };

const T = Date.parse('2021-05-20T10:00:00.000Z');
const at = (ms: number) => new Date(ms).toISOString();
const LOG: FillInput[] = [
  { source: 'web', event: { id: 'e1', timestamp: at(T), session_id: 's1', category: 'navigation', name: 'pageview', ids: { cookie: 'c-1' } } },
  { source: 'ios', event: { id: 'e2', timestamp: at(T + 2000), session_id: 's1', category: 'click', name: 'tap', ids: { device_id: 'd-1' } } },
  { source: 'web', event: { id: 'e3', timestamp: at(T + 1000), session_id: 's1', category: 'navigation', name: 'pageview', ids: { cookie: 'c-1', db_id: '42' } } },
  { source: 'web', event: { id: 'e4', timestamp: at(T + 3000), session_id: 's2', category: 'navigation', name: 'pageview', ids: { cookie: 'c-2' } } },
];

let store: ReadModelStore;
let app: XrefApp;
let url: string;

beforeAll(async () => {
  store = await openReadModel({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger: silent });
  await fillReadModel(store, LOG);
  const queries = new ReadModelQueries(store, { config: resolveConfig({}), userEventsCap: 10_000, logger: silent });
  ({ app } = testApp({ queries, readTokens: new Set([READ_TOKEN]) }));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a command with captured output: its exit status, stdout and stderr. */
async function captured(command: (io: ReturnType<typeof capture>['io']) => Promise<number>) {
  const { io, out } = capture();
  const code = await command(io);
  await new Promise((resolve) => setImmediate(resolve));
  return { code, ...out };
}

/** The error a command rejects with. */
async function rejection(command: (io: ReturnType<typeof capture>['io']) => Promise<number>): Promise<XrefError> {
  const { io } = capture();
  const error = await command(io).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(XrefError);
  return error as XrefError;
}

const remote = () => ({ url, token: READ_TOKEN });

/** A port nothing listens on (one just let go). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('xref events', () => {
  it('prints a table of the session in the order it happened, and how many', async () => {
    const { code, stdout, stderr } = await captured((io) => eventsCommand({ sessionId: 's1' }, io, settings));
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const lines = stdout.split('\n');
    expect(lines.find((l) => l.includes('time'))).toMatch(/time\s+│\s+name\s+│\s+category\s+│\s+session\s+│\s+source\s+│\s+user\s+│\s+via\s+│\s+id/);
    const rows = lines.filter((l) => /│ e\d/.test(l));
    expect(rows.map((l) => /│ (e\d) +│$/.exec(l)?.[1])).toEqual(['e1', 'e3', 'e2']);
    expect(rows[1]).toMatch(/2021-05-20T10:00:01\.000Z │ pageview │ navigation │ s1 +│ web +│ db_id:42 │ db_id:42 +│ e3/);
    expect(stdout).toContain('3 events; read model at input 4');
    expect(stdout).not.toContain('\u001b['); // no colours
  });

  it('--json prints the API answer, the same from the database and from --url', async () => {
    const local = await captured((io) => eventsCommand({ category: 'navigation', json: true }, io, settings));
    const answer = JSON.parse(local.stdout) as { events: Array<{ id: string }>; next: null; watermark: number };
    expect(answer.events.map((e) => e.id)).toEqual(['e4', 'e3', 'e1']);
    expect(answer).toMatchObject({ next: null, watermark: 4 });
    const served = await captured((io) => eventsCommand({ category: 'navigation', json: true, ...remote() }, io, settings));
    expect(served.code).toBe(0);
    expect(JSON.parse(served.stdout)).toEqual(answer);
    const api = await app.inject({ url: '/v1/events?category=navigation', headers: { authorization: `Bearer ${READ_TOKEN}` } });
    expect(JSON.parse(local.stdout)).toEqual(api.json());
  });

  it('pages with the cursor it prints', async () => {
    const first = await captured((io) => eventsCommand({ limit: '2', order: 'asc' }, io, settings));
    const cursor = /--cursor (\S+)/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const second = await captured((io) => eventsCommand({ limit: '2', order: 'asc', cursor, json: true }, io, settings));
    expect((JSON.parse(second.stdout) as { events: Array<{ id: string }> }).events.map((e) => e.id)).toEqual(['e2', 'e4']);
  });

  it('a bad filter is the API parameter error, naming it, from the database and from --url', async () => {
    const local = await rejection((io) => eventsCommand({ limit: '1001' }, io, settings));
    expect(local).toMatchObject({ code: 'XREF_INVALID_ARGUMENT', field: 'limit' });
    expect(local.message).toMatch(/^limit must be at most 1000, got "1001"/);
    const served = await rejection((io) => eventsCommand({ limit: '1001', ...remote() }, io, settings));
    expect(served).toMatchObject({ code: local.code, field: local.field, message: local.message });
    expect((await rejection((io) => eventsCommand({ after: 'tuesday' }, io, settings))).field).toBe('after');
  });

  it('--url takes the token from XREF_READ_TOKEN when --token is not given; a wrong one is refused', async () => {
    const fromEnv = { ...settings, readToken: loadSettings({ XREF_READ_TOKEN: READ_TOKEN }).readToken };
    expect((await captured((io) => eventsCommand({ url, json: true }, io, fromEnv))).code).toBe(0);
    const refused = await rejection((io) => eventsCommand({ url, token: 'rt_wrong' }, io, settings));
    expect(refused.code).toBe('XREF_UNAUTHORIZED');
    expect(refused.message).toContain('Authorization');
    expect((await rejection((io) => eventsCommand({ url: 'ftp://x' }, io, settings))).field).toBe('url');
    const closed = await closedPort();
    expect((await rejection((io) => eventsCommand({ url: `http://127.0.0.1:${closed}` }, io, settings))).message).toBe(`cannot reach --url http://127.0.0.1:${closed}: ECONNREFUSED`);
  });
});

describe('xref who', () => {
  it('a status block; exit 0 when known, 1 when unknown', async () => {
    const linked = await captured((io) => whoCommand('cookie', 'c-1', {}, io, settings));
    expect(linked.code).toBe(0);
    expect(linked.stdout).toBe(`cookie "c-1": linked\n  user       db_id:42\n  since      ${at(T + 1000)}\n  linked by  e3\n`);
    const buffering = await captured((io) => whoCommand('device_id', 'd-1', {}, io, settings));
    expect(buffering.stdout).toMatch(/^device_id "d-1": buffering\n  buffered   1 event waiting for a user, the oldest at 2021-05-20T10:00:02\.000Z; unlinked they leave as expired from 2021-05-27T10:00:02\.000Z\n/);
    expect(buffering.stdout).toMatch(/│ e2 +│/);
    const unknown = await captured((io) => whoCommand('cookie', 'nobody', {}, io, settings));
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('cookie "nobody": unknown\n  the read model holds no event with this identifier\n');
  });

  it('--json: the API answer, the same from --url', async () => {
    const local = await captured((io) => whoCommand('cookie', 'c-1', { json: true }, io, settings));
    expect(JSON.parse(local.stdout)).toEqual({ identifier: { kind: 'cookie', value: 'c-1' }, status: 'linked', user: { kind: 'db_id', id: '42' }, since: at(T + 1000), linked_by: 'e3' });
    const served = await captured((io) => whoCommand('cookie', 'c-1', { json: true, ...remote() }, io, settings));
    expect(JSON.parse(served.stdout)).toEqual(JSON.parse(local.stdout));
    expect((await captured((io) => whoCommand('cookie', 'nobody', { json: true, ...remote() }, io, settings))).code).toBe(1);
  });
});

describe('xref user', () => {
  it('the linked identifiers, then the events by identifier', async () => {
    const { code, stdout } = await captured((io) => userCommand('db_id', '42', {}, io, settings));
    expect(code).toBe(0);
    expect(stdout.split('\n')[0]).toBe('db_id "42": 2 events, 1 linked identifier');
    expect(stdout).toMatch(/kind +│ value +│ since +│ linked by/);
    expect(stdout).toMatch(/cookie │ c-1 +│ 2021-05-20T10:00:01\.000Z │ e3/);
    expect(stdout).toContain('events through cookie "c-1" (1):');
    expect(stdout).toContain('events through db_id "42" (1):');
  });

  it('--json: the API answer, the same from --url', async () => {
    const local = JSON.parse((await captured((io) => userCommand('db_id', '42', { json: true }, io, settings))).stdout) as { document: unknown; counts: unknown };
    expect(local.counts).toEqual({ events: 2, identifiers: 1 });
    const served = JSON.parse((await captured((io) => userCommand('db_id', '42', { json: true, ...remote() }, io, settings))).stdout) as unknown;
    expect(served).toEqual(local);
  });

  it('no such user: exit 1 saying so; a third-party kind: the argument error', async () => {
    for (const options of [{}, remote()]) {
      const { code, stdout, stderr } = await captured((io) => userCommand('db_id', 'nope', options, io, settings));
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/^xref: user db_id "nope" is not known to the read model/);
    }
    const refused = await rejection((io) => userCommand('cookie', 'c-1', {}, io, settings));
    expect(refused).toMatchObject({ code: 'XREF_INVALID_ARGUMENT', field: 'kind' });
  });
});

describe('through the real binary', () => {
  const xref = (args: string[]) =>
    run(process.execPath, ['bin/xref.js', ...args], { env: { ...process.env, XREF_DATABASE_URL: settings.databaseUrl, XREF_LOG_LEVEL: 'silent' }, timeout: 20_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

  it('exit 0 with a table, 1 for an unknown identifier, 2 for a bad argument with xref: <message>', async () => {
    const [events, unknown, bad] = await Promise.all([xref(['events', '--session-id', 's1']), xref(['who', 'cookie', 'nobody']), xref(['events', '--limit', '1001'])]);
    expect(events.code, events.stderr).toBe(0);
    expect(events.stdout).toContain('3 events; read model at input 4');
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain('cookie "nobody": unknown');
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^xref: limit must be at most 1000, got "1001"/);
  });
});
