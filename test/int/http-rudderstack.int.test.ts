/**
 * End to end with RudderStack's Node SDK as it ships: its defaults (gzip on, which it labels
 * `Content-Type: application/x-www-form-urlencoded`), only `dataPlaneUrl` pointed at the collector
 * (127.0.0.1, a random port), the real JetStream sink, a real nats-server, the engine in this
 * process. Anonymous page and track calls, then an identify: the anonymous events end up under the
 * user in XREF_GROUPS.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { type Collector, startCollector } from '../helpers/collector.ts';
import { type GroupMessage, eventsVia, ofUser, readStream, waitFor } from '../helpers/streams.ts';

const WRITE_KEY = 'wk_e2e_rudderstack';


/** What the collector saw of each request: how it was labelled, and what it answered. */
interface Seen {
  url: string;
  status: number;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

describe('RudderStack Node SDK (default settings) → HTTP collector → JetStream → engine', () => {
  let nc: NatsConnection;
  let collector: Collector;
  let dataPlaneUrl: string;
  const seen: Seen[] = [];

  beforeAll(async () => {
    collector = await startCollector({
      writeKey: WRITE_KEY,
      onResponse: (request, reply) => {
        seen.push({ url: request.url, status: reply.statusCode, contentType: request.headers['content-type'], contentEncoding: request.headers['content-encoding'] });
      },
    });
    ({ nc, url: dataPlaneUrl } = collector);
  });
  afterAll(async () => {
    await collector?.close();
  });

  it('anonymous page and track, then identify: stored gzipped as sent, grouped under the user', async () => {
    const anonymousId = 'rs-anon-51e0';
    const userId = 'rs-user-7';
    const client = new RudderAnalytics(WRITE_KEY, { dataPlaneUrl });

    client.page({ anonymousId, name: 'Pricing', category: 'Site', properties: { path: '/pricing' } });
    client.track({ anonymousId, event: 'Clicked Signup', properties: { button: 'hero' } });
    client.identify({ anonymousId, userId, traits: { email: 'someone@example.com' } });
    await client.flush();

    // the SDK's own defaults: a gzipped body labelled form-urlencoded, every batch stored
    expect(seen.length).toBeGreaterThanOrEqual(1);
    for (const request of seen) {
      expect(request).toEqual({ url: '/v1/batch', status: 200, contentType: 'application/x-www-form-urlencoded', contentEncoding: 'gzip' });
    }

    const input = await readStream<XrefEvent>(nc, 'XREF_IN');
    expect(input.map((m) => m.subject)).toEqual(Array(3).fill('xref.in.http'));
    const byName = Object.fromEntries(input.map((m) => [m.data.name, m.data]));
    expect(Object.keys(byName).sort()).toEqual(['Clicked Signup', 'identify', 'page']);
    expect(byName.page).toMatchObject({ category: 'Site', ids: { anonymous_id: anonymousId }, data: { path: '/pricing', name: 'Pricing' }, context: { library: { name: 'analytics-node' } } });
    expect(byName['Clicked Signup']).toMatchObject({ ids: { anonymous_id: anonymousId }, data: { button: 'hero' } });
    expect(byName.identify).toMatchObject({ ids: { anonymous_id: anonymousId, user_id: userId }, data: { email: 'someone@example.com' } });
    for (const m of input) expect(m.msgId).toBe(m.data.id); // the SDK's messageId is the dedup id
    // event times: the SDK's originalTimestamp, its clock skew removed (so, about now)
    for (const m of input) expect(Math.abs(Date.parse(m.data.timestamp!) - Date.now())).toBeLessThan(60_000);

    await collector.runEngine(input.length);

    const groups = await readStream<GroupMessage>(nc, 'XREF_GROUPS');
    const mine = ofUser(groups, 'user_id', userId);
    expect(mine.map((m) => m.subject)).toEqual(Array(3).fill(`xref.groups.user_id.${userId}`));
    const via = (kind: string, value: string) => eventsVia(mine, kind, value, (event) => event.name);
    expect(via('anonymous_id', anonymousId)).toEqual(['Clicked Signup', 'page']);
    expect(via('user_id', userId)).toEqual(['identify']);
  });

  it('a wrong write key → 401, reported to the SDK\'s error handler', async () => {
    const errors: unknown[] = [];
    const client = new RudderAnalytics('not-a-key', { dataPlaneUrl, retryCount: 0, logLevel: 'none', errorHandler: (error) => errors.push(error) });
    const before = seen.length;
    client.track({ anonymousId: 'x', event: 'E' });
    await client.flush();
    await waitFor('the error handler to be called', () => errors.length > 0, 10_000);
    expect(seen.slice(before).map((request) => request.status)).toEqual([401]);
    expect((errors[0] as { response?: { status?: number } }).response?.status).toBe(401);
  });
});
