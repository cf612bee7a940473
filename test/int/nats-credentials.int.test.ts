/**
 * xref's NATS connections authenticate, on nats-servers with an authorization config as
 * docs/security.md gives it: xref's user (NATS_USER, NATS_PASSWORD) connects, makes the topology
 * and writes a control input; a wrong password, or none, is an XREF_NATS_UNAVAILABLE saying so,
 * never quoting the password; the commands' connectOrEmbed reads the credentials from the
 * environment; an event publisher's user (`publish: { allow: ["xref.in.>"], deny: ["xref.ctl.>"] }`)
 * sends events but cannot write a control input, an admin tool's user (docs/security.md) can;
 * NATS_TOKEN on a server that wants a token.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { killOnExit } from '../../src/child-processes.ts';
import { connectOrEmbed } from '../../src/cli/serve-command.ts';
import { requestForget } from '../../src/control/requests.ts';
import { connectNats } from '../../src/nats/connection.ts';
import { STREAMS, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import type { NatsAuth } from '../../src/settings.ts';
import { type NatsBackendOptions, natsBackend } from '../../src/tracker/nats.ts';
import { freePort } from '../helpers/nats-server.ts';

const XREF_PASSWORD = 'pw_xref_int_71c3e9';
const SHOP_PASSWORD = 'pw_shop_int_2d8f04';
const OPS_PASSWORD = 'pw_ops_int_c49e17';
const TOKEN = 'tk_int_b61a5e';
const silent = pino({ level: 'silent' });
const xref: NatsAuth = { scheme: 'user', user: 'xref', pass: XREF_PASSWORD };

/** The authorization of docs/security.md: xref's user may do everything, the event publisher only send events, an admin tool write control inputs. */
const USERS = `authorization {
  users = [
    { user: xref, password: "${XREF_PASSWORD}" }
    { user: shop, password: "${SHOP_PASSWORD}", permissions: {
        publish:   { allow: ["xref.in.>"], deny: ["xref.ctl.>"] }
        subscribe: { allow: ["_INBOX.>"] }
      } }
    { user: ops, password: "${OPS_PASSWORD}", permissions: {
        publish:   { allow: ["xref.ctl.>", "$KV.xref_control.>", "$JS.API.>"] }
        subscribe: { allow: ["_INBOX.>"] }
      } }
  ]
}`;

const READY_DEADLINE_MS = 10_000;

/**
 * A nats-server of this suite's own, started with `-c` on a config of `authorization` (the helper
 * of test/helpers/nats-server.ts takes no config) on a free port; resolves once it says it is ready.
 */
async function startServer(authorization: string): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'xref-nats-auth-'));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'nats-server.conf');
    await writeFile(config, `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir, 'js')}" }\n${authorization}\n`);
    const child = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    killOnExit(child);
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve()); // not spawned: no 'exit' follows
    });
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    };
    const outcome = await ready(child, exited);
    if (outcome === 'ready') return { url: `nats://127.0.0.1:${port}`, stop };
    // the free port was taken meanwhile: another one
    if (/address already in use/i.test(outcome) && attempt < 5) continue;
    await stop();
    throw new Error(`nats-server -c ${config} did not start: ${outcome}`);
  }
}

/** 'ready' once the server's banner says so, else what its stderr said when it exited (or the deadline passed). */
function ready(child: ChildProcess, exited: Promise<void>): Promise<string> {
  let stderr = '';
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`not ready within ${READY_DEADLINE_MS} ms: ${stderr}`), READY_DEADLINE_MS);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('Server is ready')) {
        clearTimeout(timer);
        resolve('ready');
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolve(`exited: ${stderr}`);
    });
  });
}

/** A logger whose lines the test reads. */
function capturedLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
  return { logger, lines };
}

async function refusal(url: string, auth: NatsAuth): Promise<Error & { code?: string }> {
  try {
    const nc = await connectNats(url, 'xref-test', silent, auth);
    await nc.close();
  } catch (error) {
    return error as Error;
  }
  throw new Error(`connected to ${url} with ${auth.scheme}`);
}

describe('a nats-server with users', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startServer(USERS);
    nc = await connectNats(server.url, 'xref-test', silent, xref);
    await ensureTopology(nc, await jetstreamManager(nc), silent);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  /** The control inputs in XREF_IN, per subject. */
  async function controlInputs(): Promise<Record<string, number>> {
    const info = await (await jetstreamManager(nc)).streams.info(STREAMS.in, { subjects_filter: subjects.ctlAll });
    return { ...info.state.subjects };
  }

  it("xref's user connects with its password, makes the topology and writes a control input; the log names the user, not the password", async () => {
    const { logger, lines } = capturedLogger();
    const own = await connectNats(server.url, 'xref-test', logger, xref);
    try {
      await ensureTopology(own, await jetstreamManager(own), silent);
      const before = (await controlInputs())[subjects.ctl('forget')] ?? 0;
      await requestForget(own, { kind: 'user_id', id: 'u-1', by: 'cli:test' });
      expect((await controlInputs())[subjects.ctl('forget')]).toBe(before + 1);
    } finally {
      await own.close();
    }
    const connected = lines.map((line) => JSON.parse(line) as { msg: string; auth?: string }).find((line) => line.msg === 'connected to NATS');
    expect(connected?.auth).toBe('the user "xref" (NATS_USER, NATS_PASSWORD)');
    expect(lines.join('')).not.toContain(XREF_PASSWORD);
  });

  it('a wrong password, or none, is an XREF_NATS_UNAVAILABLE saying what was refused, never quoting the password', async () => {
    const wrong = await refusal(server.url, { scheme: 'user', user: 'xref', pass: 'not-the-password' });
    expect(wrong).toMatchObject({ code: 'XREF_NATS_UNAVAILABLE' });
    expect(wrong.message).toBe(
      `NATS at ${server.url} refused the user "xref" (NATS_USER, NATS_PASSWORD) (Authorization Violation): check them against the users of nats-server's authorization config (docs/security.md)`,
    );
    const none = await refusal(server.url, { scheme: 'none' });
    expect(none).toMatchObject({ code: 'XREF_NATS_UNAVAILABLE' });
    expect(none.message).toBe(
      `NATS at ${server.url} wants credentials (Authorization Violation): set xref's credentials in NATS_USER and NATS_PASSWORD, NATS_TOKEN or NATS_CREDS (docs/security.md)`,
    );
  });

  it("the commands' connection (connectOrEmbed) sends NATS_USER and NATS_PASSWORD from the environment", async () => {
    vi.stubEnv('NATS_USER', 'xref');
    vi.stubEnv('NATS_PASSWORD', XREF_PASSWORD);
    try {
      const running = await connectOrEmbed(server.url, tmpdir(), 'xref-test');
      await running.stop();
      vi.stubEnv('NATS_PASSWORD', 'not-the-password');
      await expect(connectOrEmbed(server.url, tmpdir(), 'xref-test')).rejects.toMatchObject({ code: 'XREF_NATS_UNAVAILABLE', message: expect.stringMatching(/refused the user "xref"/) });
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("an event publisher's user sends events but cannot write a control input, raw or as xref writes them; xref's user can", async () => {
    const shop = await connect({ servers: server.url, user: 'shop', pass: SHOP_PASSWORD, noAsyncTraces: true });
    try {
      const js = jetstream(shop);
      const ack = await js.publish(subjects.in('shop'), JSON.stringify({ id: 'e-1', name: 'pageview', ids: { cookie: 'c-1' } }));
      expect(ack.stream).toBe(STREAMS.in);

      const before = await controlInputs();
      const forged = JSON.stringify({ verb: 'forget', request: '6f1c0c57-0f7e-4b8e-9d6a-3e2f1b0a9c11', user: { kind: 'user_id', hash: 'a'.repeat(64) }, suppress: true, by: 'shop', at: new Date().toISOString() });
      await expect(js.publish(subjects.ctl('forget'), forged, { timeout: 2_000 })).rejects.toThrow(/Permissions Violation for Publish to "xref\.ctl\.forget"/);
      // xref's own way (the salt read through the JetStream API, the record in xref_control) is closed too
      await expect(requestForget(shop, { kind: 'user_id', id: 'u-2', by: 'shop' })).rejects.toThrow(/Permissions Violation/);
      expect(await controlInputs()).toEqual(before);

      await requestForget(nc, { kind: 'user_id', id: 'u-2', by: 'cli:test' });
      expect((await controlInputs())[subjects.ctl('forget')]).toBe((before[subjects.ctl('forget')] ?? 0) + 1);
    } finally {
      await shop.close();
    }
  });

  it("the tracker's natsBackend connects as the event publisher's user (connectOptions) and stores its events; without credentials it logs the refusal, stores nothing and reports the event dropped", async () => {
    const jsm = await jetstreamManager(nc);
    const subject = subjects.in('shop-tracker');
    const shopEvents = async () => (await jsm.streams.info(STREAMS.in, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;
    const before = await shopEvents();
    const send = async (options: Partial<NatsBackendOptions>) => {
      const drops: string[] = [];
      const { logger, lines } = capturedLogger();
      const backend = natsBackend({ servers: server.url, subject, minRetryDelayMs: 20, maxRetryDelayMs: 50, onDrop: (events, reason) => drops.push(...events.map(() => reason)), ...options });
      const host = { name: 'xref', logger, onDrop: () => {}, child: () => host };
      backend.attach(host);
      backend.send({ id: `shop-t-${before}-${Object.keys(options).length}`, name: 'pageview', timestamp: new Date().toISOString(), ids: { cookie: 'c-t' }, data: {}, context: {} });
      await backend.flush({ timeoutMs: 5_000 });
      await backend.close({ timeoutMs: 100 });
      return { drops, lines };
    };
    expect((await send({ connectOptions: { user: 'shop', pass: SHOP_PASSWORD } })).drops).toEqual([]);
    expect(await shopEvents()).toBe(before + 1);
    const refused = await send({});
    expect(refused.drops).toEqual(['closed']);
    expect(refused.lines.join('')).toMatch(/natsBackend cannot connect to nats:\/\/127\.0\.0\.1:\d+: [^"]*Authorization/i);
    expect(refused.lines.join('')).not.toContain(SHOP_PASSWORD);
    expect(await shopEvents()).toBe(before + 1);
    expect(() => natsBackend({ nc, connectOptions: { user: 'shop' } })).toThrow(/natsBackend\.connectOptions/);
  });

  it("an admin tool's user with the permissions docs/security.md gives writes a control input as xref does", async () => {
    const ops = await connect({ servers: server.url, user: 'ops', pass: OPS_PASSWORD, noAsyncTraces: true });
    try {
      const before = (await controlInputs())[subjects.ctl('forget')] ?? 0;
      await requestForget(ops, { kind: 'user_id', id: 'u-3', by: 'ops-tool' });
      expect((await controlInputs())[subjects.ctl('forget')]).toBe(before + 1);
    } finally {
      await ops.close();
    }
  });
});

describe('a nats-server with a token', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    server = await startServer(`authorization { token: "${TOKEN}" }`);
  });
  afterAll(async () => server?.stop());

  it('NATS_TOKEN connects; a wrong token is refused naming NATS_TOKEN, never quoting it', async () => {
    const nc = await connectNats(server.url, 'xref-test', silent, { scheme: 'token', token: TOKEN });
    expect(nc.info?.jetstream).toBe(true);
    await nc.close();
    const wrong = await refusal(server.url, { scheme: 'token', token: 'tk_wrong' });
    expect(wrong).toMatchObject({ code: 'XREF_NATS_UNAVAILABLE' });
    expect(wrong.message).toMatch(/^NATS at nats:\/\/127\.0\.0\.1:\d+ refused the token of NATS_TOKEN \(Authorization Violation\)/);
    expect(wrong.message).not.toContain('tk_wrong');
  });
});
