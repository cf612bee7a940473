import fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import { createTracker, httpBackend, memoryBackend, trackerPlugin } from '../../src/tracker/index.ts';
import { type Collector, startCollector } from '../helpers/collector.ts';
import { readStream } from '../helpers/streams.ts';

const WRITE_KEY = 'wk_tracker_e2e';

/**
 * The tracker as an app uses it: a fastify app with the tracker's plugin, whose handlers emit
 * events with no identifiers of their own; the request context gives them (the session cookie,
 * and the user once signed in), the HTTP backend delivers them to a real collector, and the
 * engine groups the anonymous visitor's events under the user they signed in as.
 */
describe('a fastify app with the tracker, into the collector and the engine', () => {
  let collector: Collector;
  beforeAll(async () => {
    collector = await startCollector({ writeKey: WRITE_KEY });
  });
  afterAll(() => collector?.close());

  it("an anonymous visitor's events and then the signed-in user's are grouped under that user", async () => {
    const seen = memoryBackend();
    const tracker = createTracker({
      backends: { xref: httpBackend({ url: collector.url, writeKey: WRITE_KEY }), seen },
      ids: { 'context.user_id': 'user_id', 'context.session_id': 'cookie' },
      logger: logger.child({ component: 'test-tracker' }),
    });
    const app = fastify();
    // the signed-in user, as an app's auth would tell it: here a header
    await app.register(trackerPlugin, { tracker, userId: (request) => request.headers['x-user'] as string | undefined });
    app.get('/page/:name', async (request) => {
      await new Promise((resolve) => setImmediate(resolve));
      return { id: tracker.emit('pageview', { page: (request.params as { name: string }).name }) };
    });
    app.post('/login', async () => ({ id: tracker.emit('login') }));
    await app.ready();
    try {
      const cookie = 'session_id=visitor-7';
      const ids: string[] = [];
      for (const name of ['home', 'pricing']) ids.push((await app.inject({ url: `/page/${name}`, headers: { cookie } })).json<{ id: string }>().id);
      ids.push((await app.inject({ method: 'POST', url: '/login', headers: { cookie, 'x-user': 'u-42' } })).json<{ id: string }>().id);
      ids.push((await app.inject({ url: '/page/account', headers: { cookie, 'x-user': 'u-42' } })).json<{ id: string }>().id);

      const report = await tracker.close({ timeoutMs: 10_000 });
      expect(report.backends.xref).toEqual({ sent: 4, failed: 0, dropped: 0, pending: 0, droppedBy: {} });
      expect(seen.events.map((event) => [event.name, event.ids])).toEqual([
        ['pageview', { cookie: 'visitor-7' }],
        ['pageview', { cookie: 'visitor-7' }],
        ['login', { user_id: 'u-42', cookie: 'visitor-7' }],
        ['pageview', { user_id: 'u-42', cookie: 'visitor-7' }],
      ]);
      expect(seen.events[0]!.context).toMatchObject({ session_id: 'visitor-7', path: '/page/home' });

      await collector.runEngine(4);
      const groups = await readStream<{ event: { id: string } }>(collector.nc, STREAMS.groups);
      expect(groups.map((message) => message.subject)).toEqual(Array(4).fill('xref.groups.user_id.u-42'));
      expect(groups.map((message) => message.data.event.id).sort()).toEqual([...ids].sort());
    } finally {
      await app.close();
    }
  });
});
