/**
 * The request context on real servers: a fastify app with trackerPlugin and a plain node http
 * server with trackerMiddleware, both listening on 127.0.0.1. Events emitted in handlers, after
 * awaits and after the body is read, carry the request's user_id, session_id, ip, user_agent,
 * path and referer; two concurrent requests never see each other's.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type MemoryBackend, type Tracker, createTracker, memoryBackend, trackerMiddleware, trackerPlugin } from '../../src/tracker/index.ts';
import { cookieValue } from '../../src/tracker/middleware.ts';

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A few turns of the event loop of different kinds, as a handler's awaits would take. */
async function someAwaits(): Promise<void> {
  await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 1));
  await new Promise((resolve) => process.nextTick(resolve));
}

const apps: FastifyInstance[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

function setup(): { tracker: Tracker; memory: MemoryBackend } {
  const memory = memoryBackend();
  const tracker = createTracker({ backends: { memory }, ids: { 'context.user_id': 'db_id', 'context.session_id': 'cookie' } });
  return { tracker, memory };
}

async function listen(app: FastifyInstance): Promise<string> {
  apps.push(app);
  return app.listen({ host: '127.0.0.1', port: 0 });
}

describe('trackerPlugin (fastify)', () => {
  it('gives events emitted in async handlers, after awaits and after the body is read, the request context', async () => {
    const { tracker, memory } = setup();
    const app = fastify();
    await app.register(trackerPlugin, { tracker, userId: (request) => request.headers['x-user'] as string | undefined });
    app.addHook('preHandler', async (request) => {
      await someAwaits();
      tracker.emit('hook', { route: request.url });
    });
    app.get('/page', async () => {
      await someAwaits();
      tracker.emit('pageview');
      return { ok: true };
    });
    app.post('/pay', async (request) => {
      await someAwaits();
      tracker.emit('pay', request.body as Record<string, unknown>);
      await someAwaits();
      tracker.emit('paid');
      return { ok: true };
    });
    const url = await listen(app);
    const headers = { 'user-agent': 'test-agent/1.0', referer: 'https://shop.example/cart', 'x-session-id': 'sess-1', 'x-user': 'u42' };
    expect((await fetch(`${url}/page?utm=x`, { headers })).status).toBe(200);
    expect((await fetch(`${url}/pay`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ amount: 3 }) })).status).toBe(200);
    const context = { user_id: 'u42', session_id: 'sess-1', ip: '127.0.0.1', user_agent: 'test-agent/1.0', referer: 'https://shop.example/cart' };
    expect(memory.events.map((e) => [e.name, e.context])).toEqual([
      ['hook', { ...context, path: '/page' }],
      ['pageview', { ...context, path: '/page' }],
      ['hook', { ...context, path: '/pay' }],
      ['pay', { ...context, path: '/pay' }],
      ['paid', { ...context, path: '/pay' }],
    ]);
    expect(memory.events[3]).toMatchObject({ data: { amount: 3 }, ids: { db_id: 'u42', cookie: 'sess-1' } });
    // nothing leaks out of the requests
    tracker.emit('outside');
    expect(memory.events.at(-1)?.context).toEqual({});
  });

  it('keeps two concurrent requests apart', async () => {
    const { tracker, memory } = setup();
    const app = fastify();
    await app.register(trackerPlugin, { tracker, userId: (request) => request.headers['x-user'] as string | undefined });
    const bEmitted = deferred();
    app.post('/a', async () => {
      await bEmitted.promise; // b is handled while a waits here
      tracker.emit('a');
      return 'a';
    });
    app.post('/b', async () => {
      await someAwaits();
      tracker.emit('b');
      bEmitted.resolve();
      return 'b';
    });
    const url = await listen(app);
    const post = (path: string, user: string) => fetch(`${url}${path}`, { method: 'POST', headers: { 'x-user': user, 'content-type': 'application/json' }, body: '{}' });
    const [a, b] = await Promise.all([post('/a', 'alice'), post('/b', 'bob')]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(Object.fromEntries(memory.events.map((e) => [e.name, [e.context.user_id, e.context.path]]))).toEqual({ a: ['alice', '/a'], b: ['bob', '/b'] });
  });

  it('an anonymous visitor gets no user_id; the session comes from the cookie when there is no header', async () => {
    const { tracker, memory } = setup();
    const app = fastify();
    await app.register(trackerPlugin, { tracker, userId: () => undefined, contextName: 'http' });
    app.get('/', async () => {
      await someAwaits();
      tracker.emit('visit');
      return 'ok';
    });
    const url = await listen(app);
    await fetch(`${url}/`, { headers: { cookie: 'theme=dark; session_id=anon%2D7' } });
    expect(memory.events[0]?.context).not.toHaveProperty('user_id');
    expect(memory.events[0]).toMatchObject({ context: { session_id: 'anon-7', path: '/' }, ids: { cookie: 'anon-7' } });
  });

  it("with hook: 'preHandler', reads the user an earlier auth hook set on the request", async () => {
    const { tracker, memory } = setup();
    const app = fastify();
    app.decorateRequest('user', undefined);
    app.addHook('onRequest', async (request) => {
      await someAwaits();
      (request as unknown as { user?: string }).user = request.headers.authorization?.replace('Bearer ', '');
    });
    await app.register(trackerPlugin, { tracker, hook: 'preHandler', userId: (request) => (request as unknown as { user?: string }).user });
    app.post('/', async () => {
      await someAwaits();
      tracker.emit('after auth');
      return 'ok';
    });
    const url = await listen(app);
    await fetch(`${url}/`, { method: 'POST', headers: { authorization: 'Bearer u9', 'content-type': 'application/json' }, body: '{}' });
    expect(memory.events[0]?.context).toMatchObject({ user_id: 'u9', path: '/' });
  });

  it('refuses bad options at registration, naming them', async () => {
    const app = fastify();
    apps.push(app);
    await expect(app.register(trackerPlugin, { tracker: {} as Tracker })).rejects.toThrow('config trackerPlugin tracker must be a tracker (from createTracker), got {}');
  });
});

describe('trackerMiddleware (node http)', () => {
  async function serve(tracker: Tracker, handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<string> {
    const middleware = trackerMiddleware({ tracker, userId: (req) => req.headers['x-user'] as string | undefined });
    const server = createServer((req, res) => middleware(req, res, () => void handler(req, res)));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('runs the handler inside the request context, through awaits and reading the body', async () => {
    const { tracker, memory } = setup();
    const url = await serve(tracker, async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      await someAwaits();
      tracker.emit('posted', JSON.parse(body));
      res.end('ok');
    });
    await fetch(`${url}/form?x=1`, { method: 'POST', headers: { 'x-user': '17', 'x-session-id': 's-9', 'user-agent': 'ua', referer: 'https://r.example/' }, body: '{"field":1}' });
    expect(memory.events[0]).toMatchObject({
      name: 'posted',
      data: { field: 1 },
      context: { user_id: '17', session_id: 's-9', ip: '127.0.0.1', user_agent: 'ua', path: '/form', referer: 'https://r.example/' },
      ids: { db_id: '17', cookie: 's-9' },
    });
  });

  it('keeps two concurrent requests apart', async () => {
    const { tracker, memory } = setup();
    const firstWaiting = deferred();
    const secondEmitted = deferred();
    const url = await serve(tracker, async (req, res) => {
      if (req.url === '/first') {
        firstWaiting.resolve();
        await secondEmitted.promise;
      } else {
        await firstWaiting.promise;
        await someAwaits();
      }
      tracker.emit(req.url ?? '');
      if (req.url === '/second') secondEmitted.resolve();
      res.end();
    });
    await Promise.all([fetch(`${url}/first`, { headers: { 'x-user': 'one' } }), fetch(`${url}/second`, { headers: { 'x-user': 'two' } })]);
    expect(memory.events.map((e) => [e.name, e.context.user_id])).toEqual([
      ['/second', 'two'],
      ['/first', 'one'],
    ]);
  });
});

describe('cookieValue', () => {
  it('finds a cookie by name, URI-decoded, and nothing for an empty or missing one', () => {
    expect(cookieValue('a=1; session_id=x%20y; b=2', 'session_id')).toBe('x y');
    expect(cookieValue('session_id="quoted"', 'session_id')).toBe('quoted');
    expect(cookieValue('my_session_id=1', 'session_id')).toBeUndefined();
    expect(cookieValue('session_id=', 'session_id')).toBeUndefined();
    expect(cookieValue(undefined, 'session_id')).toBeUndefined();
    expect(cookieValue('session_id=%E0%A4%A', 'session_id')).toBe('%E0%A4%A');
  });
});
