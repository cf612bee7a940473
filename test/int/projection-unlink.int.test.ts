/**
 * Unlinking an identifier in the read model (docs/read-model.md), with a real nats-server, the
 * real engine and the projection, on SQLite and on PostgreSQL: a wrong link, its unlink
 * (`requestUnlink`), then the right user's login. The user's events lose what was taken back, the
 * right user's gain it, "who is this cookie" follows, the active-people counts equal the offline
 * oracle's on the same log (the closed day the unlink changed restated), and a restart and a
 * rebuild give the same read model. Then how rows.ts reads what the engine publishes for it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { OfflineActivity } from '../../src/activity/offline-activity.ts';
import { requestUnlink } from '../../src/control/requests.ts';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import type { UnlinkCommand } from '../../src/domain/control.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { ControlStore } from '../../src/nats/control-store.ts';
import { msgIdHeaderValue } from '../../src/nats/publisher.ts';
import { HEADERS } from '../../src/nats/subjects.ts';
import { Projection } from '../../src/projection/projection.ts';
import { ReadModelQueries } from '../../src/projection/queries.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { type StreamMessage, messageRows } from '../../src/projection/rows.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { inputDecoder } from '../../src/service/input.ts';
import { controlMessage, resolvedMessage, retractionMessage } from '../../src/service/outputs.ts';
import { loadSettings } from '../../src/settings.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { onBothDatabases } from '../helpers/read-model-stores.ts';
import { publishEvents, waitFor } from '../helpers/streams.ts';

const silent = pino({ level: 'silent' });
const DAY = 86_400_000;
const CONFIG: ConfigInput = {
  internal: ['user_id'],
  buffer: { ttlMs: 2 * DAY },
  activity: { close: { day: 1, week: 1, month: 1 }, buckets: { auth: { linked: true }, anon: { linked: false } } },
};
const config = resolveConfig(CONFIG);
const decode = inputDecoder(config);
const T0 = Date.parse('2021-06-01T10:00:00.000Z');
const at = (day: number, hour: number) => new Date(T0 + day * DAY + hour * 3_600_000).toISOString();
const event = (id: string, ids: Record<string, string>, day: number, hour: number): XrefEvent => ({ id, timestamp: at(day, hour), name: 'page', ids });
const WRONG = { kind: 'user_id', id: 'wrong' };
const RIGHT = { kind: 'user_id', id: 'right' };
const shared = { kind: 'cookie', value: 'shared' };

/**
 * e1 (the shared cookie) flushed to `wrong` by wrong's login e2 with it; three days later e3 (the
 * cookie) goes to wrong through it, closing the first day, and wrong logs in again with its own
 * cookie (e4). The unlink (input 5) takes e1 and e3 back: e1, older than the buffer's TTL, is
 * unmatched at once; e3 waits, and right's login with the cookie (e6) flushes it to right. Last,
 * an unlink of wrong's own cookie, which retracts nothing (only wrong's logins carried it).
 */
const BEFORE = [event('e1', { cookie: 'shared' }, 0, 0), event('e2', { user_id: 'wrong', cookie: 'shared' }, 0, 1), event('e3', { cookie: 'shared' }, 3, 0), event('e4', { user_id: 'wrong', cookie: 'own' }, 3, 1)];
const RIGHT_LOGIN = event('e6', { user_id: 'right', cookie: 'shared' }, 3, 2);

function settingsFor(natsUrl: string) {
  return loadSettings({ NATS_URL: natsUrl, XREF_PROJECTION_BATCH: '300', XREF_PROJECTION_MS: '20', XREF_LEASE_TTL_MS: '2000', XREF_CHECKPOINT_EVERY: '2', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')) });
}

/** Waits for every stream to be written through its end and the counts through what the engine decided. */
async function caughtUp(projection: Projection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    projection.caughtUp().then(() => projection.activityCaughtUp()),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`not caught up: counted through ${projection.activityPosition}`)), 20_000))),
  ]).finally(() => clearTimeout(timer));
}

const ids = (answer: { document: Record<string, Record<string, Record<string, Record<string, XrefEvent[]>>>> }) =>
  Object.values(answer.document)
    .flatMap((users) => Object.values(users))
    .flatMap((kinds) => Object.values(kinds).flatMap((values) => Object.values(values).flat()))
    .map((e) => e.id)
    .sort();

/** Every answer of every period kind. */
const answers = async (read: (request: { period: 'day' | 'week' | 'month'; buckets: string[] }) => unknown) => {
  const out: unknown[] = [];
  for (const period of ['day', 'week', 'month'] as const) out.push(await read({ period, buckets: ['all', 'auth', 'anon'] }));
  return out;
};

function scenario(nats: ReturnType<typeof useNatsServer>, open: () => Promise<ReadModelStore>) {
  return async () => {
    const { nc } = nats;
    const settings = settingsFor(nats.server.url);
    const start = (store: ReadModelStore) => Projection.start({ nc, store, settings, logger: silent, decode, activity: config, activityMs: 30, checkMs: 100 });
    const store = await open();
    const stores = [store];
    const engine = await EngineService.start({ nc, config, settings, logger: silent });
    let projection = await start(store);
    try {
      const queries = new ReadModelQueries(store, { config, userEventsCap: 100, logger: silent });
      await publishEvents(nc, BEFORE);
      await waitFor('the wrong link', () => engine.seq >= 4);
      await caughtUp(projection);
      expect(ids(await queries.user(WRONG))).toEqual(['e1', 'e2', 'e3', 'e4']);
      expect(await queries.identifier(shared)).toMatchObject({ status: 'linked', user: WRONG });

      const unlinkShared = await requestUnlink(nc, { kind: 'cookie', value: 'shared', by: 'test' });
      await waitFor('the unlink', () => engine.seq >= 5);
      await caughtUp(projection);
      expect(ids(await queries.user(WRONG))).toEqual(['e2', 'e4']);
      expect((await queries.events({ page: { filter: { user: WRONG }, order: 'asc', limit: 10 }, waitMs: 0 })).events.map((e) => e.id)).toEqual(['e2', 'e4']);
      expect((await queries.event('e3')).event).toMatchObject({ user: null, via: null });
      // the cookie is no one's now: e3 waits for a user, e1 left unmatched
      expect(await queries.identifier(shared)).toMatchObject({ status: 'buffering', buffered: { count: 1, events: [{ id: 'e3' }] }, unmatched: [{ reason: 'expired', count: 1 }] });
      expect((await queries.identifier(shared)).user).toBeUndefined();
      expect((await store.retracted(WRONG)).map((r) => [r.eventId, r.via?.value, r.unlinkSeq])).toEqual([
        ['e1', 'shared', 5],
        ['e3', 'shared', 5],
      ]);

      await publishEvents(nc, [RIGHT_LOGIN]);
      const unlinkOwn = await requestUnlink(nc, { kind: 'cookie', value: 'own', by: 'test' });
      await waitFor('the right login and the second unlink', () => engine.seq >= 7);
      await caughtUp(projection);
      expect(ids(await queries.user(RIGHT))).toEqual(['e3', 'e6']);
      expect(ids(await queries.user(WRONG))).toEqual(['e2', 'e4']);
      expect(await queries.identifier(shared)).toMatchObject({ status: 'linked', user: RIGHT, linked_by: 'e6', unmatched: [{ reason: 'expired', count: 1 }] });
      // an unlink that retracted nothing ends the link all the same (found by hashing the links)
      expect((await queries.user(WRONG)).identifiers).toEqual([]);
      expect(await queries.identifier({ kind: 'cookie', value: 'own' })).toEqual({ identifier: { kind: 'cookie', value: 'own' }, status: 'unknown' });

      // the counts are the oracle's on the same log, the unlinks at their places
      const hasher = await new ControlStore(nc).hasher();
      const oracle = new OfflineActivity(CONFIG, { hasher });
      const unlink = (request: string, value: string): UnlinkCommand => ({ verb: 'unlink', request, by: 'test', at: at(3, 3), identifier: { kind: 'cookie', hash: hasher('cookie', value) }, block: false });
      for (const e of BEFORE) oracle.add(e);
      oracle.control(unlink(unlinkShared.request, 'shared'));
      oracle.add(RIGHT_LOGIN);
      oracle.control(unlink(unlinkOwn.request, 'own'));
      const { counter } = oracle;
      const streamed = await answers(async (request) => {
        const { watermark: _, closedThrough, ...series } = await queries.activity(request);
        return { ...series, closedThrough };
      });
      expect(streamed).toEqual(await answers((request) => ({ ...counter.series(request), closedThrough: counter.closedThrough(request.period) ?? null })));
      // the first day closed with wrong alone; e1, taken back and unmatched, is an anonymous person of it now
      expect((streamed[0] as { series: unknown[] }).series[0]).toEqual({ start: '2021-06-01', counts: { all: 1, auth: 1, anon: 0 }, restated: { all: 2, auth: 1, anon: 1 }, unattributed: 0 });
      expect(projection.activityPosition).toBe(7);

      // a restart reads nothing again; a rebuild from the streams gives the same read model
      const live = await store.dump();
      await projection.stop();
      projection = await start(store);
      await caughtUp(projection);
      expect(await store.dump()).toEqual(live);
      await projection.stop();
      const rebuilt = await open();
      stores.push(rebuilt);
      projection = await start(rebuilt);
      await caughtUp(projection);
      expect(await rebuilt.dump()).toEqual(live);
    } finally {
      await projection.stop();
      await engine.stop();
      for (const s of stores) await s.close();
    }
  };
}

describe('unlinking an identifier in the read model', () => {
  const nats = useNatsServer('each');

  onBothDatabases((open) => scenario(nats, open)(), silent);
});

describe('the messages of an unlink, as rows', () => {
  const encoder = new TextEncoder();
  const notAnInput = () => {
    throw new Error('not an input');
  };
  /** A message as a headers-only delivery gives it (no data), or whole by sequence (no headers). */
  const delivered = (headers: Record<string, string>): StreamMessage => ({ seq: 7, subject: 'xref.groups.user_id.u1', data: new Uint8Array(), publishedMs: () => T0, header: (name) => headers[name] });
  const whole = (payload: string): StreamMessage => ({ seq: 7, subject: 'xref.groups.user_id.u1', data: encoder.encode(payload), publishedMs: () => T0 });
  const u1 = { kind: 'user_id', id: 'u1' };

  it('reads a retraction from its header, or read whole; a resolution keeps its Nats-Msg-Id as its output id', () => {
    const message = retractionMessage({ outputId: 'e%1:user_id.u1:retracted-9', seq: 9, user: u1, eventId: 'e%1', retracted: 'e%1:user_id.u1', reason: 'unlink' });
    const row = { outputId: 'e%1:user_id.u1:retracted-9', streamSeq: 7, retracted: 'e%1:user_id.u1', eventId: 'e%1', user: u1, seq: 9 };
    expect(messageRows('groups', delivered({ [HEADERS.retraction]: message.header!.value }), notAnInput)).toEqual({ table: 'retractions', row });
    expect(messageRows('groups', whole(message.payload), notAnInput)).toEqual({ table: 'retractions', row });

    const placed = resolvedMessage({ outputId: 'e%1:user_id.u1:after-9', seq: 3, event: { id: 'e%1', ids: { cookie: 'c' } }, user: u1, via: { kind: 'cookie', value: 'c' }, after: 9 }, 12);
    const resolution = messageRows('groups', delivered({ [HEADERS.resolution]: placed.header!.value, [HEADERS.msgId]: msgIdHeaderValue(placed.msgId) }), notAnInput);
    expect(resolution).toEqual({ table: 'resolutions', row: { eventSeq: 3, user: u1, via: { kind: 'cookie', value: 'c' }, decidedSeq: 12, outputId: 'e%1:user_id.u1:after-9' } });
    // read whole (a message without the header, from before xref wrote it): the id its event and user make
    const old = resolvedMessage({ outputId: 'e2:user_id.u1', seq: 2, event: { id: 'e2', ids: { cookie: 'c' } }, user: u1, via: { kind: 'cookie', value: 'c' } }, 2);
    expect(messageRows('groups', whole(old.payload), notAnInput)).toMatchObject({ table: 'resolutions', row: { eventSeq: 2, outputId: 'e2:user_id.u1' } });
  });

  it("reads an unlink's audit record as an audit row that ends a link", () => {
    const record = controlMessage({ outputId: 'r1:unlink', reason: 'unlink', request: 'r1', seq: 9, by: 'cli:test', at: at(0, 0), kind: 'cookie', found: true, retracted: 2, block: false });
    const made = messageRows('audit', { seq: 4, subject: record.subject, data: encoder.encode(record.payload), publishedMs: () => T0 }, notAnInput);
    expect(made).toMatchObject({ table: 'audit', row: { outputId: 'r1:unlink', reason: 'unlink', identifier: { kind: 'cookie', value: '' }, eventSeq: 9 }, control: { unlink: { request: 'r1', streamSeq: 4, seq: 9, kind: 'cookie', found: true } } });
  });
});
