import { describe, expect, it } from 'vitest';
import { startEngineProcess } from '../helpers/engine-process.ts';
import { basic } from '../helpers/http.ts';
import { freePort, useNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/streams.ts';

const ADMIN = { authorization: 'Bearer admin-secret' };
const READ = { authorization: 'Bearer read-secret' };
const WRITE = { authorization: basic('key'), 'content-type': 'application/json' };

describe('forget through the admin API of xref serve', () => {
  const nats = useNatsServer();

  it('POST forget, then the status says done with a receipt of zeros; the person is gone from the queries, their cookie is suppressed until unsuppressed', async () => {
    const port = await freePort();
    const serve = startEngineProcess(nats.server.url, { PORT: String(port), XREF_READ_TOKENS: 'read-secret', XREF_ADMIN_TOKENS: 'admin-secret', XREF_CHECKPOINT_MS: '200' });
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    const get = async (path: string, headers: Record<string, string> = READ) => {
      const response = await fetch(url(path), { headers });
      return { status: response.status, body: (await response.json().catch(() => undefined)) as Record<string, any> };
    };
    const post = async (path: string, body: unknown, headers: Record<string, string>) => {
      const response = await fetch(url(path), { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    };
    const send = (...events: unknown[]) => post('/v1/events', events, WRITE);
    await waitFor('xref serve to be ready', async () => (await fetch(url('/readyz')).catch(() => undefined))?.status === 200 || serve.exitCode !== null, 60_000);
    expect(serve.exitCode, serve.output()).toBeNull();

    const at = (minute: number) => new Date(Date.UTC(2026, 10, 2, 10, minute)).toISOString();
    expect((await send(
      { id: 'p1', name: 'pageview', timestamp: at(0), ids: { cookie: 'c-gone' } },
      { id: 'p2', name: 'login', timestamp: at(1), ids: { user_id: 'u-gone', cookie: 'c-gone', device: 'd-gone' } },
      { id: 'p3', name: 'pageview', timestamp: at(2), ids: { user_id: 'u-stays', cookie: 'c-stays' } },
    )).status).toBe(200);
    await waitFor('the read model to have the person', async () => (await get('/v1/users/user_id/u-gone')).body?.counts?.events === 2, 60_000);

    const asked = await post('/v1/users/user_id/u-gone/forget', {}, ADMIN);
    expect(asked.status).toBe(202);
    const statusUrl = asked.body.status_url as string;
    await waitFor('the forget done', async () => (await get(statusUrl, ADMIN)).body?.status === 'done', 60_000);
    const { body: status } = await get(statusUrl, ADMIN);
    expect(status.done).toBe(true);
    for (const [store, part] of Object.entries(status.receipt as Record<string, { remaining: number }>)) expect(part.remaining, store).toBe(0);
    expect(status.receipt.XREF_IN.erased).toBe(2);
    expect(status.receipt.read_model.deleted).toBeDefined();

    expect((await get('/v1/users/user_id/u-gone')).status).toBe(404);
    expect((await get('/v1/identifiers/cookie/c-gone')).body.status).toBe('unknown');
    expect((await get('/v1/users/user_id/u-stays')).body.counts.events).toBe(1);

    await send({ id: 'p4', name: 'pageview', timestamp: at(3), ids: { cookie: 'c-gone' } });
    await waitFor('the event suppressed', async () => /^xref_suppressed_total 1$/m.test(await (await fetch(url('/metrics'))).text()), 30_000);
    expect((await post('/v1/identifiers/cookie/c-gone/unsuppress', {}, ADMIN)).status).toBe(202);
    await waitFor('the unsuppress applied', async () => (await get('/v1/audit?reason=unsuppress')).body?.records?.length === 1, 30_000);
    await send({ id: 'p5', name: 'pageview', timestamp: at(4), ids: { cookie: 'c-gone' } });
    await waitFor('the cookie back, as a new identifier', async () => (await get('/v1/identifiers/cookie/c-gone')).body?.status === 'buffering', 30_000);
    serve.kill('SIGTERM');
  }, 120_000);
});
