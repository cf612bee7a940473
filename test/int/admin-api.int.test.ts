/**
 * The admin API and the CLI's control commands on a real nats-server: a forget, an unsuppress
 * and an unlink land in XREF_IN as control inputs parseControl reads, named by the installation's
 * salted hash and never by value, with their `requested` record in xref_control; the admin token
 * is the only credential of the admin routes and is no read token; a forget's status, from
 * `requested` to `done` (the engine's record and the read model's receipt); `xref forget`,
 * `xref erasure`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { erasureCommand, forgetCommand, unlinkCommand } from '../../src/cli/control-commands.ts';
import { controlActions } from '../../src/control/actions.ts';
import type { ErasureReceipts, ReadModelReceipt } from '../../src/control/status.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import { type ControlVerb, parseControl } from '../../src/domain/control.ts';
import { ControlStore } from '../../src/nats/control-store.ts';
import { BUCKETS, STREAMS, controlKeys, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import { ReadModelQueries } from '../../src/projection/queries.ts';
import { capture } from '../helpers/cli.ts';
import { AUTH, expectError, useTestApps } from '../helpers/http.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/streams.ts';

const ADMIN = 'at_admin_51c7e2';
const READ = 'rt_admin_test_0d9a';
const silent = pino({ level: 'silent' });
const nats = useNatsServer();
const make = useTestApps();
const admin = { authorization: `Bearer ${ADMIN}` };
const BY = `admin-token:${createHash('sha256').update(ADMIN).digest('hex').slice(0, 6)}`;
/** A user id no hash or record may show: a slash, a space, a non-ASCII letter. */
const SECRET_ID = 'jane.doe/42 Zoë@example.com';

let queries: ReadModelQueries;

beforeAll(async () => {
  await ensureTopology(nats.nc, await jetstreamManager(nats.nc), silent);
  const store = await openReadModel({ databaseUrl: 'sqlite::memory:', dataDir: '.', logger: silent });
  queries = new ReadModelQueries(store, { config: resolveConfig({}), userEventsCap: 10_000, logger: silent });
  return () => store.close();
});

/** An app with the admin routes on the test's NATS (and the query routes, to try an admin token there). */
function adminApp(options: { readModel?: ErasureReceipts; adminTokens?: ReadonlySet<string> | null } = {}) {
  const adminTokens = options.adminTokens === undefined ? new Set([ADMIN]) : options.adminTokens;
  return make({ control: controlActions(nats.nc, options.readModel), ...(adminTokens === null ? {} : { adminTokens }), queries, readTokens: new Set([READ]) }).app;
}

const part = encodeURIComponent;

/** The last control input of `verb` in XREF_IN: its Nats-Msg-Id, its bytes, and what parseControl reads of them. */
async function lastControl(verb: ControlVerb) {
  const jsm = await jetstreamManager(nats.nc);
  const message = await jsm.streams.getMessage(STREAMS.in, { last_by_subj: subjects.ctl(verb) });
  if (message === null) throw new Error(`no message on ${subjects.ctl(verb)}`);
  const text = new TextDecoder().decode(message.data);
  return { msgId: message.header.get('Nats-Msg-Id'), text, command: parseControl(verb, JSON.parse(text)) };
}

/** The raw text of a request's record in xref_control. */
async function rawRecord(verb: ControlVerb, request: string): Promise<string> {
  const kv = await new Kvm(nats.nc).open(BUCKETS.control);
  const entry = await kv.get(controlKeys.request(verb, request));
  return entry?.string() ?? '';
}

async function hash(kind: string, value: string): Promise<string> {
  return (await new ControlStore(nats.nc).hasher())(kind, value);
}

describe('POST /v1/users/:kind/:id/forget', () => {
  it('202 with a request id; XREF_IN holds the forget by hash, never the id, and xref_control its requested record', async () => {
    const app = adminApp();
    const response = await app.inject({ method: 'POST', url: `/v1/users/user_id/${part(SECRET_ID)}/forget`, headers: admin });
    expect(response.statusCode, response.body).toBe(202);
    const body = response.json() as { request_id: string; status: string; status_url: string };
    expect(body).toEqual({ request_id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/), status: 'requested', status_url: `/v1/forget/${body.request_id}` });

    const { msgId, text, command } = await lastControl('forget');
    expect(msgId).toBe(`ctl:${body.request_id}`);
    expect(command).toEqual({ verb: 'forget', request: body.request_id, user: { kind: 'user_id', hash: await hash('user_id', SECRET_ID) }, suppress: true, by: BY, at: expect.any(String) });
    for (const piece of [SECRET_ID, 'jane.doe', 'Zoë']) expect(text).not.toContain(piece);

    const record = await new ControlStore(nats.nc).get('forget', body.request_id);
    expect(record).toEqual({ verb: 'forget', request: body.request_id, status: 'requested', by: BY, requestedAt: command.at, id: { kind: 'user_id', hash: await hash('user_id', SECRET_ID) } });
    const raw = await rawRecord('forget', body.request_id);
    expect(raw).toContain(body.request_id);
    for (const piece of [SECRET_ID, 'jane.doe', 'Zoë']) expect(raw).not.toContain(piece);
    expect(response.body).not.toContain('jane');
  });

  it('one salt for every request: the same id hashes the same, another id otherwise; suppress: false is kept; an empty JSON body is no body', async () => {
    const app = adminApp();
    const forget = async (id: string, payload?: string) => {
      const response = await app.inject({ method: 'POST', url: `/v1/users/user_id/${part(id)}/forget`, headers: { ...admin, 'content-type': 'application/json' }, ...(payload === undefined ? {} : { payload }) });
      expect(response.statusCode, response.body).toBe(202);
      return (await lastControl('forget')).command;
    };
    const first = await forget('u-7');
    const second = await forget('u-7', '{ "suppress": false }');
    const other = await forget('u-8', '');
    expect(first.request).not.toBe(second.request);
    expect(first.verb === 'forget' && second.verb === 'forget' && other.verb === 'forget').toBe(true);
    if (first.verb !== 'forget' || second.verb !== 'forget' || other.verb !== 'forget') return;
    expect(second.user.hash).toBe(first.user.hash);
    expect(other.user.hash).not.toBe(first.user.hash);
    expect([first.suppress, second.suppress, other.suppress]).toEqual([true, false, true]);
    // at the identifier limit, well past fastify's 100 characters of a route parameter
    const longest = await forget('y'.repeat(256));
    expect(longest.verb === 'forget' && longest.user.hash).toBe(await hash('user_id', 'y'.repeat(256)));
    expectError(await app.inject({ method: 'POST', url: '/v1/users/user_id/u-7/erase', headers: admin }), 404, 'XREF_NOT_FOUND');
    expectError(await app.inject({ method: 'POST', url: '/v1/identifiers/cookie/c-1/relink', headers: admin }), 404, 'XREF_NOT_FOUND');
  });

  it('400 naming the field: a bad kind, an id over the limit, a suppress that is no boolean, an unknown option', async () => {
    const app = adminApp();
    const post = (url: string, payload?: unknown) => app.inject({ method: 'POST', url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
    const cases: Array<[url: string, payload: unknown, field: string, message: RegExp]> = [
      ['/v1/users/user.id/u-1/forget', undefined, 'kind', /^kind must be a kind name \(\[A-Za-z0-9_-\], 1 to 64 characters\), got "user\.id"$/],
      [`/v1/users/${'k'.repeat(65)}/u-1/forget`, undefined, 'kind', /^kind must be a kind name/],
      [`/v1/users/user_id/${'x'.repeat(257)}/forget`, undefined, 'id', /^id must be a non-empty string of at most 256 characters, got "x+…$/],
      ['/v1/users/user_id//forget', undefined, 'id', /^id must be a non-empty string/],
      ['/v1/users/user_id/u-1/forget', { suppress: 'no' }, 'suppress', /^suppress must be true or false, got "no"$/],
      ['/v1/users/user_id/u-1/forget', { supress: false }, 'supress', /^unknown option "supress" in the body: \/v1\/users\/<kind>\/<id>\/forget takes "suppress"$/],
      ['/v1/users/user_id/u-1/forget', [true], 'body', /^the body of \/v1\/users\/<kind>\/<id>\/forget must be a JSON object/],
    ];
    for (const [url, payload, field, message] of cases) {
      const body = expectError(await post(url, payload), 400, 'XREF_INVALID_ARGUMENT');
      expect(body.field, url).toBe(field);
      expect(body.error).toMatch(message);
    }
  });
});

describe('POST /v1/identifiers/:kind/:value/unsuppress and /unlink', () => {
  it('202 with a request id; the inputs parse, name the identifier by hash only, and unlink keeps block', async () => {
    const app = adminApp();
    const value = 'cookie/ABC 123';
    const unsuppress = await app.inject({ method: 'POST', url: `/v1/identifiers/cookie/${part(value)}/unsuppress`, headers: admin });
    expect(unsuppress.statusCode, unsuppress.body).toBe(202);
    const { request_id: unsuppressed } = unsuppress.json() as { request_id: string };
    expect(Object.keys(unsuppress.json() as object)).toEqual(['request_id']);
    const lifted = await lastControl('unsuppress');
    expect(lifted.command).toEqual({ verb: 'unsuppress', request: unsuppressed, identifier: { kind: 'cookie', hash: await hash('cookie', value) }, by: BY, at: expect.any(String) });
    expect(lifted.text).not.toContain('ABC');
    expect((await new ControlStore(nats.nc).get('unsuppress', unsuppressed))?.status).toBe('requested');

    for (const [payload, block] of [[undefined, false], [{ block: true }, true]] as const) {
      const unlink = await app.inject({ method: 'POST', url: `/v1/identifiers/cookie/${part(value)}/unlink`, headers: admin, ...(payload === undefined ? {} : { payload }) });
      expect(unlink.statusCode, unlink.body).toBe(202);
      const { request_id } = unlink.json() as { request_id: string };
      const detached = await lastControl('unlink');
      expect(detached.msgId).toBe(`ctl:${request_id}`);
      expect(detached.command).toEqual({ verb: 'unlink', request: request_id, identifier: { kind: 'cookie', hash: await hash('cookie', value) }, block, by: BY, at: expect.any(String) });
      expect(await rawRecord('unlink', request_id)).not.toContain('ABC');
    }
    expect(expectError(await app.inject({ method: 'POST', url: '/v1/identifiers/cookie/c-1/unsuppress', headers: admin, payload: { block: true } }), 400).field).toBe('block');
  });
});

describe('the admin token: the only credential of the admin routes, and not a read token', () => {
  it('401 naming the header: no credential, a wrong token, a read token, a write key (Basic or as a Bearer token)', async () => {
    const app = adminApp();
    const jsm = await jetstreamManager(nats.nc);
    const before = (await jsm.streams.info(STREAMS.in)).state.messages;
    const cases: Array<[headers: Record<string, string>, message: RegExp]> = [
      [{}, /^an admin token is required: send an admin token as Authorization: Bearer <admin token> \(one of XREF_ADMIN_TOKENS\)$/],
      [{ authorization: 'Bearer at_wrong_00' }, /^the admin token in the Authorization header is not one of this collector's admin tokens \(XREF_ADMIN_TOKENS\)$/],
      [{ authorization: `Bearer ${READ}` }, /is not one of this collector's admin tokens/],
      [AUTH, /^the Authorization header is HTTP Basic \(a write key\), and write keys cannot forget, unsuppress or unlink: send an admin token as Authorization: Bearer <admin token>/],
      [{ authorization: 'Bearer wk_test_7f3a9c' }, /is not one of this collector's admin tokens/],
    ];
    for (const [headers, message] of cases) {
      for (const [method, url] of [
        ['POST', '/v1/users/user_id/u-1/forget'],
        ['GET', '/v1/forget/00000000-0000-4000-8000-000000000000'],
        ['POST', '/v1/identifiers/cookie/c-1/unsuppress'],
        ['POST', '/v1/identifiers/cookie/c-1/unlink'],
      ] as const) {
        const response = await app.inject({ method, url, headers });
        const body = expectError(response, 401, 'XREF_UNAUTHORIZED');
        expect(body.error, `${method} ${url}`).toMatch(message);
        expect(body.error).toContain('Authorization');
        expect(response.headers['www-authenticate']).toBe('Bearer realm="xref admin"');
        for (const secret of [ADMIN, READ, 'wk_test_7f3a9c']) expect(body.error).not.toContain(secret);
      }
    }
    expect((await jsm.streams.info(STREAMS.in)).state.messages).toBe(before);
  });

  it('an admin token does not read: 401 on a query route', async () => {
    const app = adminApp();
    const body = expectError(await app.inject({ method: 'GET', url: '/v1/events', headers: admin }), 401, 'XREF_UNAUTHORIZED');
    expect(body.error).toMatch(/the read token in the Authorization header is not one of this collector's read tokens \(XREF_READ_TOKENS\)/);
    expect((await app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${READ}` } })).statusCode).toBe(200);
  });

  it('no admin tokens configured: 401 saying to set XREF_ADMIN_TOKENS', async () => {
    const app = adminApp({ adminTokens: null });
    const body = expectError(await app.inject({ method: 'POST', url: '/v1/users/user_id/u-1/forget', headers: admin }), 401, 'XREF_UNAUTHORIZED');
    expect(body.error).toBe('this route takes an admin token (Authorization: Bearer <admin token>), and this collector has none: set XREF_ADMIN_TOKENS=token1,token2');
  });

  it('an app without the control requests has no admin routes, and its 404 does not list them; with them, it does', async () => {
    const without = make().app;
    const missing = expectError(await without.inject({ method: 'POST', url: '/v1/users/user_id/u-1/forget', headers: admin }), 404, 'XREF_NOT_FOUND');
    expect(missing.error).not.toContain('GET /v1/forget');
    const listed = expectError(await adminApp().inject({ method: 'GET', url: '/v1/nothing', headers: admin }), 404, 'XREF_NOT_FOUND');
    expect(listed.error).toContain('POST /v1/users/<kind>/<id>/forget, GET /v1/forget/<request id>, POST /v1/identifiers/<kind>/<value>/unsuppress, POST /v1/identifiers/<kind>/<value>/unlink');
  });
});

describe('GET /v1/forget/:request_id', () => {
  const receipts = new Map<string, ReadModelReceipt>();
  const readModel: ErasureReceipts = { erasure: async (request) => receipts.get(request) };

  async function forgetOne(app: ReturnType<typeof adminApp>): Promise<string> {
    const response = await app.inject({ method: 'POST', url: '/v1/users/user_id/u-status/forget', headers: admin });
    return (response.json() as { request_id: string }).request_id;
  }

  it('404 for an unknown request naming it, 400 for a malformed one', async () => {
    const app = adminApp();
    const unknown = '3f2b8c1e-0000-4000-8000-000000000001';
    const missing = expectError(await app.inject({ method: 'GET', url: `/v1/forget/${unknown}`, headers: admin }), 404, 'XREF_NOT_FOUND');
    expect(missing.error).toBe(`forget request ${unknown} is not known`);
    for (const bad of ['not-a-uuid', '3F2B8C1E-0000-4000-8000-000000000001']) {
      const body = expectError(await app.inject({ method: 'GET', url: `/v1/forget/${bad}`, headers: admin }), 400, 'XREF_INVALID_ARGUMENT');
      expect(body.field).toBe('request_id');
      expect(body.error).toContain(bad);
    }
  });

  it('requested at first; erased by the engine: done without a read model, erased until the read model receipt is there, then done', async () => {
    const withReadModel = adminApp({ readModel });
    const request = await forgetOne(withReadModel);
    const status = async (app: ReturnType<typeof adminApp>) => {
      const response = await app.inject({ method: 'GET', url: `/v1/forget/${request}`, headers: admin });
      expect(response.statusCode, response.body).toBe(200);
      return response.json() as Record<string, unknown>;
    };
    const requested = await status(withReadModel);
    expect(requested).toEqual({ request_id: request, status: 'requested', requested_at: expect.any(String), by: BY, done: false });

    const store = new ControlStore(nats.nc);
    const record = (await store.get('forget', request))!;
    const erasedAt = new Date().toISOString();
    await store.put({ ...record, status: 'erased', seq: 12, hashes: [record.id!.hash], erasedAt, receipt: { XREF_IN: { erased: 3, remaining: 0 }, xref_links: { erased: 2, remaining: 0 } } });
    const engineReceipt = { XREF_IN: { erased: 3, remaining: 0 }, xref_links: { erased: 2, remaining: 0 } };
    expect(await status(withReadModel)).toEqual({ request_id: request, status: 'erased', requested_at: record.requestedAt, by: BY, seq: 12, erased_at: erasedAt, receipt: engineReceipt, done: false });
    expect(await status(adminApp())).toMatchObject({ status: 'done', done: true, receipt: engineReceipt });

    receipts.set(request, { request, deleted: { events: 4, identifiers: 2 }, remaining: 0, at: erasedAt });
    expect(await status(withReadModel)).toEqual({
      request_id: request,
      status: 'done',
      requested_at: record.requestedAt,
      by: BY,
      seq: 12,
      erased_at: erasedAt,
      receipt: { ...engineReceipt, read_model: { deleted: { events: 4, identifiers: 2 }, remaining: 0, at: erasedAt } },
      done: true,
    });
  });
});

describe('xref forget, xref erasure, xref unlink', () => {
  const target = () => ({ natsUrl: nats.server.url, dataDir: '.' });
  const run = promisify(execFile);

  it('through the real binary: xref forget --no-suppress prints the request id; a bad kind exits 2 with the message, no stack', async () => {
    const env = { ...process.env, NATS_URL: nats.server.url };
    const { stdout } = await run(process.execPath, ['bin/xref.js', 'forget', 'user_id', 'u-binary', '--no-suppress'], { env });
    const request = stdout.trim();
    const { command } = await lastControl('forget');
    expect(command).toMatchObject({ request, suppress: false, by: expect.stringMatching(/^cli:/) });
    const failed = await run(process.execPath, ['bin/xref.js', 'unlink', 'bad.kind', 'c-1', '--block'], { env }).catch((error: { code: number; stderr: string }) => error);
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toBe('xref: kind must be a kind name ([A-Za-z0-9_-], 1 to 64 characters), got "bad.kind"\n');
  });

  it('xref forget prints the request id, and the input is in the log by cli:<user>; xref erasure prints its status', async () => {
    const { io, out } = capture();
    expect(await forgetCommand('user_id', SECRET_ID, { suppress: false }, io, target())).toBe(0);
    const request = out.stdout.trim();
    expect(request).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(out.stderr).toContain(`xref erasure ${request}`);
    const { command, text } = await lastControl('forget');
    expect(command).toMatchObject({ request, suppress: false, by: expect.stringMatching(/^cli:.+/), user: { kind: 'user_id', hash: await hash('user_id', SECRET_ID) } });
    expect(text).not.toContain('jane');

    const status = capture();
    expect(await erasureCommand(request, status.io, target())).toBe(0);
    expect(JSON.parse(status.out.stdout)).toMatchObject({ request_id: request, status: 'requested', done: false });

    const unknown = capture();
    expect(await erasureCommand('3f2b8c1e-0000-4000-8000-000000000002', unknown.io, target())).toBe(1);
    expect(unknown.out.stderr).toMatch(/^xref: forget request 3f2b8c1e-0000-4000-8000-000000000002 is not known/);
  });

  it('xref forget --wait prints the status once done, and exits 1 when the timeout comes first', async () => {
    const late = capture();
    expect(await forgetCommand('user_id', 'u-wait-1', { wait: true, timeout: 300 }, late.io, target())).toBe(1);
    expect(JSON.parse(late.out.stdout.slice(late.out.stdout.indexOf('{')))).toMatchObject({ status: 'requested', done: false });
    expect(late.out.stderr).toMatch(/^xref forget: not done after 300 ms \(status requested\)/);

    const { io, out } = capture();
    const running = forgetCommand('user_id', 'u-wait-2', { wait: true, timeout: 20_000 }, io, target());
    await waitFor('the request id', () => /^[0-9a-f-]{36}\n/.test(out.stdout), 10_000);
    const request = out.stdout.slice(0, 36);
    const store = new ControlStore(nats.nc);
    await store.put({ ...(await store.get('forget', request))!, status: 'erased', erasedAt: new Date().toISOString() });
    expect(await running).toBe(0);
    expect(JSON.parse(out.stdout.slice(37))).toMatchObject({ request_id: request, status: 'done', done: true });
  });

  it('a bad argument is an XrefError naming it, thrown before connecting (main prints it, exit 2)', async () => {
    const { io } = capture();
    await expect(unlinkCommand('bad kind', 'c-1', {}, io, { natsUrl: 'nats://127.0.0.1:1', dataDir: '.' })).rejects.toMatchObject({ code: 'XREF_INVALID_ARGUMENT', field: 'kind' });
    await expect(erasureCommand('nope', io, { natsUrl: 'nats://127.0.0.1:1', dataDir: '.' })).rejects.toMatchObject({ code: 'XREF_INVALID_ARGUMENT', field: 'request_id' });
  });
});
