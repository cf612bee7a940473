import { describe, expect, it } from 'vitest';
import { webLog } from '../helpers/web-log.ts';
import { defaultConfig } from '../../src/domain/config.ts';
import { loadSettings } from '../../src/settings.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { groupEvents } from '../../src/group.ts';
import { logger } from '../../src/log.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { HEADERS, STREAMS } from '../../src/nats/subjects.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { idsOf } from '../helpers/events.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { groupsFromMessages, publishEvents, readStream, sortLists, waitFor } from '../helpers/streams.ts';

describe('streaming engine on JetStream', () => {
  const nats = useNatsServer();

  it('publishes to XREF_GROUPS exactly what groupEvents() gives on the same log', async () => {
    const log = webLog({ events: 20_000, identifiers: 3_000, seed: 7 });
    // event ids a message header cannot hold as they are: each still arrives once, none taken for another
    const awkward = ['line\nbreak', 'carriage\rreturn', ' padded ', 'padded', '100%', '100%0025'];
    awkward.forEach((id, i) => log.push({ id, timestamp: log.at(-1)!.timestamp!, ids: { db_id: `awkward${i}` } }));
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '3000' });
    const service = await EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    await publishEvents(nats.nc, log);
    await waitFor('the engine to apply the whole log', () => service.seq >= log.length);
    await service.stop();

    const messages = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nats.nc, 'XREF_GROUPS');
    const ids = messages.map((m) => m.msgId);
    expect(new Set(ids).size).toBe(ids.length); // each output exactly once
    expect(groupsFromMessages(messages)).toEqual(sortLists(idsOf(groupEvents(log).groups)));
    expect(service.stats.checkpoints).toBeGreaterThan(1);
  });

  it("a user's subject holds its events in log order, flushed ones first, for every arrival order of the pygrouper example", async () => {
    const orders = [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ];
    const logs = orders.map((order, n) => {
      const events: XrefEvent[] = [
        { id: `o${n}-e0`, ids: { db_id: `p${n}`, cookie: `X${n}` } },
        { id: `o${n}-e1`, ids: { cookie: `X${n}` } },
        { id: `o${n}-e2`, ids: { cookie: `X${n}` } },
      ];
      return order.map((i) => events[i]!);
    });
    const settings = loadSettings({ NATS_URL: nats.server.url });
    const service = await EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    const before = service.seq;
    await publishEvents(nats.nc, logs.flat());
    await waitFor('the engine to apply every order', () => service.seq >= before + logs.flat().length);
    await service.stop();
    const messages = await readStream<{ seq: number; event: { id: string } }>(nats.nc, 'XREF_GROUPS');
    logs.forEach((log, n) => {
      const onSubject = messages.filter((m) => m.subject === `xref.groups.db_id.p${n}`).map((m) => m.data.event.id);
      // the offline document's lists, merged in log order, is the order the subject holds
      expect(onSubject, `order ${orders[n]!.join(',')}`).toEqual(log.map((e) => e.id).filter((id) => onSubject.includes(id)));
      expect(onSubject.sort()).toEqual([`o${n}-e0`, `o${n}-e1`, `o${n}-e2`]);
    });
  });

  it("a resolved event's Xref-Resolution header is its message without the event, and names the input that resolved it", async () => {
    const settings = loadSettings({ NATS_URL: nats.server.url });
    const service = await EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    const before = service.seq;
    const jsm = await jetstreamManager(nats.nc);
    const first = (await jsm.streams.info(STREAMS.groups)).state.last_seq;
    // an anonymous visit, the login that links its cookie (and flushes the visit), a signed-in event
    await publishEvents(nats.nc, [
      { id: 'at-visit', ids: { cookie: 'at-c' } },
      { id: 'at-login', ids: { cookie: 'at-c', db_id: 'at-u' } },
      { id: 'at-later', ids: { db_id: 'at-u' } },
    ]);
    await waitFor('the engine to apply the three', () => service.seq >= before + 3);
    await service.stop();
    const { last_seq } = (await jsm.streams.info(STREAMS.groups)).state;
    const headers: Record<string, unknown> = {};
    for (let seq = first + 1; seq <= last_seq; seq++) {
      const stored = (await jsm.streams.getMessage(STREAMS.groups, { seq }))!;
      const body = stored.json<{ event: { id: string } }>();
      const header = JSON.parse(stored.header.get(HEADERS.resolution)) as Record<string, unknown>;
      const { event, ...rest } = body as Record<string, unknown> & { event: { id: string } };
      expect({ ...header, at: undefined, stored: undefined }).toEqual({ ...rest, at: undefined, stored: undefined });
      expect(header.stored).toBeLessThan(header.at as number);
      headers[event.id] = header.at;
    }
    expect([headers['at-visit'], headers['at-login'], headers['at-later']]).toEqual([before + 2, before + 2, before + 3]);
  });
});

describe('passivation and restart on JetStream', () => {
  const nats = useNatsServer();
  const config = { ...defaultConfig(), buffer: { maxEvents: 100, ttlMs: 60 * 60_000 } };
  const at = (minute: number) => new Date(Date.parse('2024-01-01T00:00:00Z') + minute * 60_000).toISOString();
  const start = (env: Record<string, string> = {}) =>
    EngineService.start({ nc: nats.nc, config, settings: loadSettings({ NATS_URL: nats.server.url, ...env }), logger: logger.child({ component: 'test-engine' }) });


  it('an idle buffering actor leaves memory at a checkpoint and comes back on its next message', async () => {
    const service = await start({ XREF_PASSIVATE_AFTER_MS: '0', XREF_CHECKPOINT_MS: '50' });
    await publishEvents(nats.nc, [
      { id: 'p1', timestamp: at(0), ids: { cookie: 'idle' } },
      { id: 'p2', timestamp: at(1), ids: { cookie: 'idle', device_id: 'dev' } },
    ]);
    await waitFor('the buffers to be passivated', () => service.seq >= 2 && service.engineSize.liveActors === 0 && service.engineSize.passivatedActors === 1);
    await publishEvents(nats.nc, [{ id: 'p3', timestamp: at(2), ids: { db_id: '42', device_id: 'dev' } }]);
    await waitFor('the link', () => service.seq >= 3);
    await service.stop();
    const groups = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nats.nc, 'XREF_GROUPS');
    expect(groupsFromMessages(groups.filter((m) => m.data.user.id === '42'))).toEqual({ 'db_id:42': { 'cookie:idle': ['p1', 'p2'], 'db_id:42': ['p3'] } });
  });

  it('a buffer snapshotted with a pending expiry and restored after its deadline passed expires at once, exactly once', async () => {
    const first = await start();
    const base = first.seq;
    await publishEvents(nats.nc, [{ id: 'x1', timestamp: at(0), ids: { cookie: 'soon-expired' } }]);
    await waitFor('the buffer', () => first.seq >= base + 1);
    await first.stop(); // snapshot at shutdown
    const second = await start();
    await publishEvents(nats.nc, [{ id: 'x2', timestamp: at(61), ids: { anonymous_id: 'someone-else' } }]);
    await waitFor('the watermark to pass the deadline', () => second.seq >= base + 2);
    await second.stop();
    const third = await start(); // a restart after the expiry changes nothing
    await third.stop();
    const unmatched = await readStream<{ reason: string; event: { id: string } }>(nats.nc, 'XREF_UNMATCHED');
    expect(unmatched.filter((m) => m.data.event.id === 'x1').map((m) => m.data.reason)).toEqual(['expired']);
  });

  it('a restart under a longer buffer ttl (the config changed) goes on: a buffer due under the old ttl keeps its event, which a later link flushes', async () => {
    const first = await start();
    const base = first.seq;
    // after the watermark the tests before left (an hour past the first minute)
    await publishEvents(nats.nc, [{ id: 'ttl1', timestamp: at(200), ids: { cookie: 'longer-ttl' } }]);
    await waitFor('the buffer', () => first.seq >= base + 1);
    await first.stop();
    const longer = { ...config, buffer: { maxEvents: 100, ttlMs: 3 * 60 * 60_000 } };
    const second = await EngineService.start({ nc: nats.nc, config: longer, settings: loadSettings({ NATS_URL: nats.server.url }), logger: logger.child({ component: 'test-engine' }) });
    // past the old deadline (an hour), well within the new one (three)
    await publishEvents(nats.nc, [
      { id: 'ttl2', timestamp: at(290), ids: { anonymous_id: 'ttl-other' } },
      { id: 'ttl3', timestamp: at(295), ids: { db_id: 'ttl-user', cookie: 'longer-ttl' } },
    ]);
    await waitFor('the link', () => second.seq >= base + 3);
    await second.stop();
    const groups = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nats.nc, 'XREF_GROUPS');
    expect(groupsFromMessages(groups.filter((m) => m.data.user.id === 'ttl-user'))).toEqual({ 'db_id:ttl-user': { 'cookie:longer-ttl': ['ttl1'], 'db_id:ttl-user': ['ttl3'] } });
  });

  it('a restart under a shorter buffer ttl expires a restored buffer at the new deadline, not the old one: a later link finds it gone', async () => {
    const first = await start();
    const base = first.seq;
    // after the watermark the tests before left
    await publishEvents(nats.nc, [{ id: 'short1', timestamp: at(400), ids: { cookie: 'shorter-ttl' } }]);
    await waitFor('the buffer', () => first.seq >= base + 1);
    await first.stop();
    const shorter = { ...config, buffer: { maxEvents: 100, ttlMs: 10 * 60_000 } };
    const second = await EngineService.start({ nc: nats.nc, config: shorter, settings: loadSettings({ NATS_URL: nats.server.url }), logger: logger.child({ component: 'test-engine' }) });
    // an input past the new deadline (ten minutes), well within the old one (an hour): the buffer expires at it
    await publishEvents(nats.nc, [{ id: 'short2', timestamp: at(420), ids: { anonymous_id: 'short-other' } }]);
    const expiries = async () =>
      (await readStream<{ reason: string; event: { id: string } }>(nats.nc, 'XREF_UNMATCHED')).filter((m) => m.data.event.id === 'short1').map((m) => m.data.reason);
    await waitFor('the expiry', async () => (await expiries()).length > 0, 10_000);
    await publishEvents(nats.nc, [{ id: 'short3', timestamp: at(421), ids: { db_id: 'short-user', cookie: 'shorter-ttl' } }]);
    await waitFor('the link', () => second.seq >= base + 3);
    await second.stop();
    expect(await expiries()).toEqual(['expired']);
    const groups = await readStream<Parameters<typeof groupsFromMessages>[0][number]['data']>(nats.nc, 'XREF_GROUPS');
    expect(groupsFromMessages(groups.filter((m) => m.data.user.id === 'short-user'))).toEqual({ 'db_id:short-user': { 'db_id:short-user': ['short3'] } });
  });
});

describe("how far the engine's outputs are stored, as its headers tell", () => {
  const nats = useNatsServer();

  it("a resolution's header tells how far every output is stored: each resolution decided by an input up to its `stored` is at a lower sequence", async () => {
    const jsm = await jetstreamManager(nats.nc);
    // a log with late links, published while the engine runs, so outputs are in flight as it applies
    const log = webLog({ events: 12_000, identifiers: 2_000, seed: 23 });
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '2000' });
    const service = await EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    await publishEvents(nats.nc, log);
    await waitFor('the engine to apply the log', () => service.seq >= log.length);
    await service.stop();
    const last = (await jsm.streams.info(STREAMS.groups)).state.last_seq;
    const heads: Array<{ seq: number; at: number; stored: number }> = [];
    for (let seq = 1; seq <= last; seq++) {
      const msg = await jsm.streams.getMessage(STREAMS.groups, { seq });
      const head = msg?.header.get(HEADERS.resolution);
      if (head === undefined) continue;
      const { at, stored } = JSON.parse(head) as { at: number; stored: number };
      heads.push({ seq, at, stored });
    }
    expect(heads.length).toBeGreaterThan(log.length / 2);
    // the highest sequence of a resolution decided by each input, then by each input or one before it
    const highest: number[] = [];
    for (const { seq, at } of heads) highest[at] = Math.max(highest[at] ?? 0, seq);
    for (let at = 1; at < highest.length; at++) highest[at] = Math.max(highest[at] ?? 0, highest[at - 1] ?? 0);
    const broken = heads.filter(({ seq, stored }) => (highest[Math.min(stored, highest.length - 1)] ?? 0) >= seq);
    expect(broken.slice(0, 5)).toEqual([]);
    for (const { at, stored } of heads) expect(stored).toBeLessThan(at);
    // it tells more than nothing: it follows the log to its end
    expect(Math.max(...heads.map(({ stored }) => stored))).toBeGreaterThan(log.length * 0.9);
  });
});
