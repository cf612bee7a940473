import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishCommand } from '../../src/cli/publish-command.ts';
import { tailCommand } from '../../src/cli/tail-command.ts';
import { XrefError } from '../../src/domain/errors.ts';
import { logger } from '../../src/log.ts';
import { STREAMS, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { capture } from '../helpers/cli.ts';
import { type NatsServerHandle, startNatsServer } from '../helpers/nats-server.ts';
import { readStream, waitFor } from '../helpers/streams.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'xref-publish-'));

function ndjson(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0);

describe('xref publish and xref tail on JetStream', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let target: { natsUrl: string; dataDir: string };

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    target = { natsUrl: server.url, dataDir: join(dir, 'data') };
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('publishes the good events once, reports the bad line and the duplicate, and exits 1', async () => {
    const file = ndjson('mixed.ndjson', [
      '{"id":"e1","name":"login","ids":{"db_id":1,"cookie":"c1"}}',
      '{"id":"e2","name":"pageview","ids":{"cookie":"c1"}}',
      '{"id":"e3","ids":{"cookie":"c2"},"timestmp":"2021-01-01T00:00:00Z"}',
      '',
      '{"id":"e1","name":"login","ids":{"db_id":1,"cookie":"c1"}}',
      '{"id":"e4","ids":{"device":"d1"}}',
    ]);
    const { io, out } = capture();
    // the streams do not exist yet: publish applies the topology first
    const code = await publishCommand(file, { subject: 'xref.in.web', json: true }, io, target);
    expect(code).toBe(1);
    expect(out.stderr).toMatch(/^line 3: timestmp is not an envelope field/m);
    expect(lines(out.stderr).filter((l) => l.startsWith('line '))).toHaveLength(1);
    expect(out.stderr).toMatch(/^published 5: 3 accepted, 1 duplicate, 1 rejected$/m);
    expect(JSON.parse(out.stdout)).toEqual({ subject: 'xref.in.web', published: 5, accepted: 3, duplicate: 1, rejected: 1 });

    const stored = await readStream<{ id: string; ids: Record<string, string> }>(nc, STREAMS.in);
    expect(stored.map((m) => [m.subject, m.msgId, m.data.id])).toEqual([
      ['xref.in.web', 'e1', 'e1'],
      ['xref.in.web', 'e2', 'e2'],
      ['xref.in.web', 'e4', 'e4'],
    ]);
    expect(stored[0]!.data.ids).toEqual({ db_id: '1', cookie: 'c1' }); // the validated, normalized event

    // the same file again: every good event is a duplicate, nothing new is stored
    const again = capture();
    expect(await publishCommand(file, {}, again.io, target)).toBe(1);
    expect(again.out.stderr).toMatch(/^published 5: 0 accepted, 4 duplicate, 1 rejected$/m);
    expect(again.out.stdout).toBe('');
    expect((await jsm.streams.info(STREAMS.in)).state.messages).toBe(3);
  });

  it('refuses a subject outside xref.in., naming it, before connecting', async () => {
    const file = ndjson('one.ndjson', ['{"id":"x1","ids":{"db_id":"1"}}']);
    for (const subject of ['xref.groups.db_id.7', 'xref.in.>', 'xref.in.', 'orders.in.web']) {
      const { io } = capture();
      const attempt = publishCommand(file, { subject }, io, { natsUrl: 'nats://127.0.0.1:1', dataDir: dir });
      await expect(attempt).rejects.toBeInstanceOf(XrefError);
      await expect(attempt).rejects.toThrow(`--subject must be a subject under xref.in. such as xref.in.web (tokens without spaces, '*' or '>'), got ${JSON.stringify(subject)}`);
    }
  });

  it('tails one user from the start, in order, and with --new only what arrives later', async () => {
    await ensureTopology(nc, jsm, logger.child({ component: 'test' }));
    const user = subjects.group('db_id', '7');
    const payload = (n: number) => ({ seq: n, user: { kind: 'db_id', id: '7' }, via: { kind: 'cookie', value: `c${n}` }, event: { id: `t${n}`, ids: { cookie: `c${n}` } } });
    for (const n of [1, 2, 3]) {
      await js.publish(user, JSON.stringify(payload(n)), { msgID: `t${n}:db_id.7` });
      await js.publish(subjects.group('db_id', '8'), JSON.stringify({ other: n }), { msgID: `o${n}` }); // another user
    }

    const all = capture();
    expect(await tailCommand('db_id', '7', { limit: 3 }, all.io, target)).toBe(0);
    expect(lines(all.out.stdout).map((l) => JSON.parse(l))).toEqual([payload(1), payload(2), payload(3)]);

    // --new: start the tail, wait until its consumer exists, then publish two more
    const fresh = capture();
    const tailing = tailCommand('db_id', '7', { new: true, limit: 2 }, fresh.io, target);
    await waitFor('the --new consumer', async () => {
      for await (const info of jsm.consumers.list(STREAMS.groups)) {
        if (info.config.deliver_policy === 'new' && info.config.filter_subject === user) return true;
      }
      return false;
    });
    for (const n of [4, 5]) await js.publish(user, JSON.stringify(payload(n)), { msgID: `t${n}:db_id.7` });
    expect(await tailing).toBe(0);
    expect(lines(fresh.out.stdout).map((l) => JSON.parse(l))).toEqual([payload(4), payload(5)]);
  });

  it('tails until aborted (SIGINT/SIGTERM in the CLI), then returns 0', async () => {
    const { io, out } = capture();
    const stop = new AbortController();
    const tailing = tailCommand('db_id', '7', {}, io, target, stop.signal);
    await waitFor('the five messages so far', () => lines(out.stdout).length === 5);
    stop.abort();
    expect(await tailing).toBe(0);
    expect(lines(out.stdout).map((l) => JSON.parse(l).event.id)).toEqual(['t1', 't2', 't3', 't4', 't5']);
  });

  it('says once on stderr what it waits for when nothing came within the idle time, and stops on abort', async () => {
    const { io, out } = capture();
    const stop = new AbortController();
    const tailing = tailCommand('user_id', 'nobody', { idleNoticeMs: 50 }, io, target, stop.signal);
    await waitFor('the idle notice', () => out.stderr.length > 0);
    expect(out.stderr).toBe('xref tail: waiting for events of user_id "nobody" (none resolved to this user so far); they are printed as xref serve resolves them. Stop with Ctrl-C.\n');
    // an event for the user still shows up after the notice
    const payload = { seq: 99, user: { kind: 'user_id', id: 'nobody' }, via: { kind: 'user_id', value: 'nobody' }, event: { id: 'n1', ids: { user_id: 'nobody' } } };
    await js.publish(subjects.group('user_id', 'nobody'), JSON.stringify(payload), { msgID: 'n1:user_id.nobody' });
    await waitFor('the event', () => lines(out.stdout).length === 1);
    stop.abort();
    expect(await tailing).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(payload);
    expect(lines(out.stderr)).toHaveLength(1);

    // --new says it waits for new events; events shown before the idle time: no notice
    const fresh = capture();
    const stopFresh = new AbortController();
    const waiting = tailCommand('user_id', 'nobody', { new: true, idleNoticeMs: 50 }, fresh.io, target, stopFresh.signal);
    await waitFor('the --new idle notice', () => fresh.out.stderr.length > 0);
    expect(fresh.out.stderr).toBe('xref tail: waiting for new events of user_id "nobody"; they are printed as xref serve resolves them. Stop with Ctrl-C.\n');
    stopFresh.abort();
    expect(await waiting).toBe(0);
    const busy = capture();
    expect(await tailCommand('user_id', 'nobody', { limit: 1 }, busy.io, target)).toBe(0);
    expect(busy.out.stderr).toBe('');
  });

  it('refuses a third-party kind through the real binary: exit 2 at once, what to tail instead on stderr', async () => {
    const env = { ...process.env, NATS_URL: server.url, XREF_DATA_DIR: join(dir, 'data') };
    const refused = await run(process.execPath, ['bin/xref.js', 'tail', 'anonymous_id', 'a1'], { env }).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stdout).toBe('');
    expect(refused?.stderr).toContain('xref: anonymous_id is a third-party kind: events are grouped under internal kinds only (db_id, user_id)');
    expect(refused?.stderr).toContain('xref tail user_id <id>');
  });

  it('refuses a kind outside [A-Za-z0-9_-]+, naming it', async () => {
    const { io } = capture();
    await expect(tailCommand('db.id', '7', { limit: 1 }, io, target)).rejects.toThrow('kind must match [A-Za-z0-9_-]+ (at most 64 characters), got "db.id"');
  });

  it('is wired into the real binary: publish, tail, and a bad subject exits 2', async () => {
    const env = { ...process.env, NATS_URL: server.url, XREF_DATA_DIR: join(dir, 'data') };
    const file = ndjson('bin.ndjson', ['{"id":"b1","ids":{"db_id":"9"}}', '{"id":"b2","ids":{"db_id":"9","cookie":"k"}}']);
    const published = await run(process.execPath, ['bin/xref.js', 'publish', file, '--subject', 'xref.in.bin', '--json'], { env });
    expect(JSON.parse(published.stdout)).toEqual({ subject: 'xref.in.bin', published: 2, accepted: 2, duplicate: 0, rejected: 0 });
    expect(published.stderr).toMatch(/^published 2: 2 accepted, 0 duplicate, 0 rejected$/m);
    const stored = await readStream(nc, STREAMS.in);
    expect(stored.filter((m) => m.subject === 'xref.in.bin').map((m) => m.msgId)).toEqual(['b1', 'b2']);

    const tailed = await run(process.execPath, ['bin/xref.js', 'tail', 'db_id', '7', '--limit', '2'], { env });
    expect(lines(tailed.stdout).map((l) => JSON.parse(l).event.id)).toEqual(['t1', 't2']);

    const refused = await run(process.execPath, ['bin/xref.js', 'publish', file, '--subject', 'xref.audit.x'], { env }).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain('--subject must be a subject under xref.in.');
    expect(refused?.stderr).toContain('"xref.audit.x"');
  });
});
