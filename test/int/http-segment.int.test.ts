/**
 * End to end with a client nobody here wrote: @segment/analytics-node, its `host` pointed at the
 * collector (listening on 127.0.0.1, a random port), the real JetStream sink, a real nats-server.
 * Anonymous page views, then an identify: XREF_IN holds the mapped envelopes (dedup ids =
 * messageIds), and the streaming engine groups the page views under the user in XREF_GROUPS.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Analytics } from '@segment/analytics-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { type Collector, startCollector } from '../helpers/collector.ts';
import { type GroupMessage, eventsVia, ofUser, readStream } from '../helpers/streams.ts';

const WRITE_KEY = 'wk_e2e_segment';


describe('Segment client → HTTP collector → JetStream → engine', () => {
  let nc: NatsConnection;
  let collector: Collector;
  let host: string;
  const responses: number[] = [];

  beforeAll(async () => {
    collector = await startCollector({ writeKey: WRITE_KEY });
    ({ nc, url: host } = collector);
  });
  afterAll(async () => {
    await collector?.close();
  });

  it('is ready once NATS and XREF_IN are there', async () => {
    const response = await fetch(`${host}/readyz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ready: true, checks: { nats: true, 'stream XREF_IN': true } });
  });

  it('anonymous page views, then identify: stored as envelopes, grouped under the user', async () => {
    const anonymousId = 'anon-7f1c';
    const userId = 'user-42';
    const analytics = new Analytics({ writeKey: WRITE_KEY, host, flushAt: 2, maxEventsInBatch: 2, flushInterval: 200, maxRetries: 3 });
    const errors: unknown[] = [];
    analytics.on('error', (error) => errors.push(error));
    analytics.on('http_response', (response) => responses.push(response.status));

    const pages = ['/', '/pricing', '/docs'];
    pages.forEach((path, i) =>
      analytics.page({ anonymousId, name: `Page ${i}`, category: 'Site', properties: { path }, messageId: `page-${i}`, timestamp: new Date(Date.UTC(2024, 4, 1, 10, i)) }),
    );
    // a retried call: the same messageId again is stored once
    analytics.page({ anonymousId, name: 'Page 0', category: 'Site', properties: { path: '/' }, messageId: 'page-0', timestamp: new Date(Date.UTC(2024, 4, 1, 10, 0)) });
    analytics.track({ anonymousId, event: 'Clicked Signup', properties: { button: 'hero' }, messageId: 'track-0', timestamp: new Date(Date.UTC(2024, 4, 1, 10, 5)) });
    analytics.identify({ anonymousId, userId, traits: { email: 'someone@example.com' }, messageId: 'identify-0', timestamp: new Date(Date.UTC(2024, 4, 1, 10, 6)) });
    await analytics.closeAndFlush({ timeout: 20_000 });

    expect(errors).toEqual([]);
    expect(responses.length).toBeGreaterThanOrEqual(3); // batches of at most 2
    expect(responses.every((status) => status === 200)).toBe(true);

    const input = await readStream<XrefEvent>(nc, 'XREF_IN');
    expect(input.map((m) => m.subject)).toEqual(Array(5).fill('xref.in.http'));
    expect(input.map((m) => m.msgId)).toEqual(['page-0', 'page-1', 'page-2', 'track-0', 'identify-0']);
    const byId = Object.fromEntries(input.map((m) => [m.data.id, m.data]));
    expect(byId['page-1']).toMatchObject({
      id: 'page-1',
      name: 'page',
      category: 'Site',
      timestamp: '2024-05-01T10:01:00.000Z',
      ids: { anonymous_id: anonymousId },
      data: { path: '/pricing', name: 'Page 1' },
      context: { library: { name: '@segment/analytics-node' } },
    });
    expect(byId['track-0']).toMatchObject({ name: 'Clicked Signup', ids: { anonymous_id: anonymousId }, data: { button: 'hero' } });
    expect(byId['identify-0']).toMatchObject({ name: 'identify', ids: { anonymous_id: anonymousId, user_id: userId }, data: { email: 'someone@example.com' } });
    for (const m of input) expect(Object.keys(m.data).sort()).not.toContain('writeKey');

    // the streaming engine, in this process
    await collector.runEngine(input.length);

    const groups = await readStream<GroupMessage>(nc, 'XREF_GROUPS');
    const mine = ofUser(groups, 'user_id', userId);
    expect(mine.map((m) => m.subject)).toEqual(Array(mine.length).fill('xref.groups.user_id.user-42'));
    const via = (kind: string, value: string) => eventsVia(mine, kind, value, (event) => event.id);
    expect(via('anonymous_id', anonymousId)).toEqual(['page-0', 'page-1', 'page-2', 'track-0']);
    expect(via('user_id', userId)).toEqual(['identify-0']);
    expect(new Set(groups.map((m) => m.msgId)).size).toBe(groups.length);
  });

  it('a wrong write key → the client gets 401 and reports the failure', async () => {
    const analytics = new Analytics({ writeKey: 'not-a-key', host, flushAt: 1, maxRetries: 0 });
    const statuses: number[] = [];
    analytics.on('http_response', (response) => statuses.push(response.status));
    analytics.track({ anonymousId: 'x', event: 'E' });
    await analytics.closeAndFlush({ timeout: 10_000 });
    expect(statuses).toEqual([401]);
  });
});
