/**
 * Forgetting a user in the read model (docs/read-model.md), with a real nats-server, on SQLite and
 * on PostgreSQL: a small log published straight into the streams the projection reads, as the
 * engine service publishes it; then what the engine does for a forget, done by hand: the forget
 * input last in XREF_IN (which the projection never reads), the tombstone, the user's records
 * erased from the streams, the audit record. The projection deletes every row of the user and
 * nothing else, keeps the active-people counts, writes its receipt; an event the engine suppressed
 * after it is deleted and never counted; a restart and a rebuild keep nothing of the user.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect } from 'vitest';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import type { Identifier } from '../../src/domain/identifiers.ts';
import type { UserRef } from '../../src/engine/outputs.ts';
import { logger } from '../../src/log.ts';
import { ControlStore } from '../../src/nats/control-store.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { BUCKETS, STREAMS, controlMsgId, snapshotKeys, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { Projection } from '../../src/projection/projection.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { inputDecoder } from '../../src/service/input.ts';
import { controlMessage, resolvedMessage } from '../../src/service/outputs.ts';
import { loadSettings } from '../../src/settings.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { onBothDatabases } from '../helpers/read-model-stores.ts';
import { streamMessages } from '../helpers/projection-reference.ts';
import { fromSource, logMessages } from '../helpers/read-model-fill.ts';
import { waitFor } from '../helpers/streams.ts';

const log = logger.child({ component: 'test-forget' });
const CONFIG = { buffer: { ttlMs: 3_600_000 }, activity: { buckets: { auth: { linked: true } } } };
const config = resolveConfig(CONFIG);
const decode = inputDecoder(config);
const DAY = 86_400_000;
const T0 = Date.parse('2021-06-01T10:00:00.000Z');
/** Every value of the forgotten user's cluster holds this: nothing the read model keeps may. */
const MARK = /fgt/;
const ANA: UserRef = { kind: 'db_id', id: 'fgt-ana' };

const event = (n: number, day: number, ids: Record<string, string>): XrefEvent => ({ id: `ev-${n}`, timestamp: new Date(T0 + day * DAY + n * 1000).toISOString(), name: 'page', ids });
/** ana (cookie, email, device), bob and cat, and anonymous visitors, over six days (the first ones closed). */
const LOG: XrefEvent[] = [
  event(1, 0, { cookie: 'fgt-ck' }),
  event(2, 0, { cookie: 'fgt-ck', db_id: 'fgt-ana' }),
  event(3, 0, { cookie: 'bob-ck', db_id: 'bob' }),
  // buffered, then unmatched once an event a day later passes its TTL: ana's, though never placed with her
  event(4, 0, { email: 'fgt@x' }),
  event(5, 0, { cookie: 'anon-1' }),
  event(6, 1, { cookie: 'bob-ck' }),
  event(7, 1, { cookie: 'fgt-ck' }),
  event(8, 2, { email: 'fgt@x', db_id: 'fgt-ana' }),
  event(9, 2, { cookie: 'cat-ck', db_id: 'cat' }),
  event(10, 3, { cookie: 'fgt-ck', device: 'fgt-dev' }),
  event(11, 5, { cookie: 'bob-ck' }),
  event(12, 5, { cookie: 'anon-2' }),
];

type Dump = Readonly<Record<string, readonly unknown[]>>;
const text = (row: unknown) => JSON.stringify(row);
const without = (rows: readonly unknown[] | undefined, mark: RegExp) => (rows ?? []).filter((row) => !mark.test(text(row)));

function settingsFor(natsUrl: string) {
  return loadSettings({ NATS_URL: natsUrl, XREF_PROJECTION_BATCH: '300', XREF_PROJECTION_MS: '20', XREF_LEASE_TTL_MS: '2000', XREF_DATA_DIR: mkdtempSync(join(tmpdir(), 'xref-data-')) });
}

/** As the engine's checkpoint says: every output of the inputs through `seq` is stored (what the active-people counts wait for). */
async function engineDecided(nc: NatsConnection, seq: number): Promise<void> {
  await (await new Kvm(nc).open(BUCKETS.snapshots)).put(snapshotKeys.meta, JSON.stringify({ seq }));
}

/** The log into XREF_IN, the engine's decisions into the output streams. */
async function publishLog(nc: NatsConnection): Promise<void> {
  await ensureTopology(nc, await jetstreamManager(nc), log);
  const { inputs, outputs } = logMessages(fromSource(LOG), { config: CONFIG });
  const publisher = new JetStreamPublisher(nc, log);
  for (const m of inputs) await publisher.publish(m.subject, m.payload, m.msgId);
  for (const m of outputs) await publisher.publish(m.subject, m.payload, m.msgId, undefined, m.header);
  await publisher.close();
  await engineDecided(nc, inputs.length);
}

/** The engine's part of a forget, by hand: its input (last in XREF_IN), its tombstone, the erasure, its audit record. */
async function forget(nc: NatsConnection, cluster: readonly Identifier[]): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const control = new ControlStore(nc);
  const hash = await control.hasher();
  const ids = new Set(cluster.map((id) => `${id.kind}:${id.value}`));
  const hashes = cluster.map((id) => hash(id.kind, id.value));
  const request = randomUUID();
  const at = new Date().toISOString();
  const user = { kind: ANA.kind, hash: hash(ANA.kind, ANA.id) };
  const publisher = new JetStreamPublisher(nc, log);
  const input = await publisher.publish(subjects.ctl('forget'), JSON.stringify({ verb: 'forget', request, user, suppress: true, by: 'cli:test', at }), controlMsgId(request));
  await control.put({ verb: 'forget', request, status: 'erasing', by: 'cli:test', requestedAt: at, seq: input.seq, id: user, hashes });

  const carries = (e: { ids: Record<string, string> }) => Object.entries(e.ids).some(([kind, value]) => ids.has(`${kind}:${value}`));
  const isAna = (ref: unknown) => (ref as UserRef | undefined)?.kind === ANA.kind && (ref as UserRef | undefined)?.id === ANA.id;
  const erase = { [STREAMS.in]: new Set<number>(), [STREAMS.unmatched]: new Set<number>(), [STREAMS.audit]: new Set<number>() };
  for (const m of (await streamMessages(nc, STREAMS.groups))!.messages) if (m.subject === subjects.group(ANA.kind, ANA.id)) erase[STREAMS.in].add(JSON.parse(new TextDecoder().decode(m.data)).seq);
  for (const m of (await streamMessages(nc, STREAMS.unmatched))!.messages) {
    const record = JSON.parse(new TextDecoder().decode(m.data)) as { seq: number; event: XrefEvent };
    if (carries(record.event)) [erase[STREAMS.unmatched].add(m.seq), erase[STREAMS.in].add(record.seq)];
  }
  for (const m of (await streamMessages(nc, STREAMS.audit))!.messages) {
    const record = JSON.parse(new TextDecoder().decode(m.data)) as { identifier?: Identifier; user?: unknown; previous?: unknown; claimedBy?: unknown };
    if ((record.identifier !== undefined && ids.has(`${record.identifier.kind}:${record.identifier.value}`)) || [record.user, record.previous, record.claimedBy].some(isAna)) erase[STREAMS.audit].add(m.seq);
  }
  const erased: Record<string, number> = {};
  for (const [stream, seqs] of Object.entries(erase)) {
    for (const seq of seqs) await jsm.streams.deleteMessage(stream, seq, true);
    erased[stream] = seqs.size;
  }
  erased[STREAMS.groups] = (await jsm.streams.purge(STREAMS.groups, { filter: subjects.group(ANA.kind, ANA.id) })).purged;
  expect(Object.values(erased).every((n) => n > 0)).toBe(true);
  const through: Record<string, number> = {};
  for (const stream of [STREAMS.in, STREAMS.groups, STREAMS.unmatched, STREAMS.audit]) through[stream] = (await jsm.streams.info(stream)).state.last_seq;
  const record = controlMessage({ outputId: `${request}:forget`, reason: 'forget', request, seq: input.seq, by: 'cli:test', at, erased, through });
  await publisher.publish(record.subject, record.payload, record.msgId);
  await publisher.close();
  await engineDecided(nc, input.seq);
  return request;
}

/** Waits for every stream to be written through its end and the counts through what the engine decided. */
async function caughtUp(projection: Projection): Promise<void> {
  await Promise.race([
    projection.caughtUp().then(() => projection.activityCaughtUp()),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`not caught up: ${text([...projection.positions])}, counted through ${projection.activityPosition}`)), 20_000)),
  ]);
}

function scenario(nats: ReturnType<typeof useNatsServer>, open: () => Promise<ReadModelStore>) {
  return async () => {
    const { nc } = nats;
    const settings = settingsFor(nats.server.url);
    const start = (store: ReadModelStore) => Projection.start({ nc, store, settings, logger: log, decode, activity: config, activityMs: 50, checkMs: 100 });
    await publishLog(nc);
    const store = await open();
    const stores = [store];
    try {
      let projection = await start(store);
      await caughtUp(projection);
      const before = await store.dump();
      const cluster = [{ kind: ANA.kind, value: ANA.id }, ...(await store.userLinks(ANA)).map((link) => link.identifier)];
      expect(cluster.map((id) => id.value).sort()).toEqual(['fgt-ana', 'fgt-ck', 'fgt-dev', 'fgt@x']);
      expect(before.unmatched!.some((row) => MARK.test(text(row)))).toBe(true);
      expect(before.activity_people!.some((row) => MARK.test(text(row)))).toBe(true);

      const request = await forget(nc, cluster);
      await waitFor('the forget to be applied', async () => (await store.erasure(request)) !== undefined, 20_000);
      await caughtUp(projection);
      // the forget input ends XREF_IN: the projection, which never reads it, is written through it all the same
      expect(projection.watermark).toBe((await (await jetstreamManager(nc)).streams.info(STREAMS.in)).state.last_seq);
      const receipt = (await store.erasure(request))!;
      expect(receipt.remaining).toBe(0);
      expect(receipt.deleted).toMatchObject({ events: 6, resolutions: 5, unmatched: 1, links: 3 });
      expect(receipt.deleted.activity_people).toBeGreaterThan(0);
      const after = await store.dump();
      expect(text({ ...after, erasures: [] })).not.toMatch(MARK);
      // nothing of anyone else's went, the counts stayed
      for (const table of ['events', 'event_ids', 'resolutions', 'unmatched', 'links', 'errors', 'activity_counts']) expect(after[table]).toEqual(without(before[table], MARK));
      expect(without(after.audit, /"reason":"forget"/)).toEqual(without(before.audit, MARK));
      expect(after.activity_people).toEqual(without(before.activity_people, MARK));
      expect(await store.identifier({ kind: 'cookie', value: 'fgt-ck' }, 10)).toEqual({ buffered: { count: 0, oldestMs: null, events: [] }, unmatched: [] });
      expect(await store.userEvents(ANA, 10)).toEqual({ total: 0, events: [] });

      // an event carrying a forgotten id, read before the engine drops and erases it: deleted, never counted
      const jsm = await jetstreamManager(nc);
      const publisher = new JetStreamPublisher(nc, log);
      const late = event(20, 5, { cookie: 'fgt-ck' });
      const { seq } = await publisher.publish(subjects.in('test'), JSON.stringify(late), late.id);
      await waitFor('the late event to be read', async () => (await store.event(late.id)) !== undefined);
      await jsm.streams.deleteMessage(STREAMS.in, seq, true);
      const suppressed = controlMessage({ outputId: `${late.id}:suppressed`, reason: 'suppressed', request, seq, eventId: late.id, kind: 'cookie' });
      await publisher.publish(suppressed.subject, suppressed.payload, suppressed.msgId);
      await engineDecided(nc, seq);
      // and a new event of cat's, a day later: counted as usual
      const next = event(21, 6, { cookie: 'cat-ck', db_id: 'cat' });
      const input = await publisher.publish(subjects.in('test'), JSON.stringify(next), next.id);
      const resolved = resolvedMessage({ outputId: `${next.id}:db_id.cat`, seq: input.seq, event: next, user: { kind: 'db_id', id: 'cat' }, via: { kind: 'db_id', value: 'cat' } }, input.seq);
      await publisher.publish(resolved.subject, resolved.payload, resolved.msgId, undefined, resolved.header);
      await publisher.close();
      await engineDecided(nc, input.seq);
      await caughtUp(projection);
      expect(projection.activityPosition).toBe(input.seq);
      const live = await store.dump();
      expect(text({ ...live, erasures: [] })).not.toMatch(MARK);
      expect(live.events!.map((row) => (row as { id: string }).id)).not.toContain(late.id);
      // every period counted before the forget keeps its counts (June's too, which cat's new event is in, and
      // those frozen then, as they were); the new event closed June 4, the last of ana's days, with ana in it
      type Counts = { zone: string; period: string; idx: number; start: string; counts: string; frozen: string | null };
      const counts = (dump: Dump) => new Map((dump.activity_counts as Counts[]).map((row) => [`${row.zone} ${row.period} ${row.idx}`, row]));
      const [was, now] = [counts(before), counts(live)];
      for (const [key, row] of was) {
        expect(now.get(key)?.counts, key).toBe(row.counts);
        if (row.frozen !== null) expect(now.get(key)?.frozen, key).toBe(row.frozen);
      }
      const june4 = [...now.values()].find((row) => row.period === 'day' && row.start === '2021-06-04')!;
      expect([june4.counts, june4.frozen, was.get(`${june4.zone} day ${june4.idx}`)?.frozen]).toEqual(['[1,1,0]', '[1,1,0]', null]);
      expect(now.size).toBeGreaterThan(was.size);

      // a restart reads nothing of the user back, counts nothing again, applies the forget no second time
      await projection.stop();
      projection = await start(store);
      await caughtUp(projection);
      expect(await store.dump()).toEqual(live);
      await projection.stop();

      // a rebuild from the streams: nothing of the user either; its receipt says it found none
      const rebuilt = await open();
      stores.push(rebuilt);
      projection = await start(rebuilt);
      await caughtUp(projection);
      await waitFor('the rebuild to apply the forget', async () => (await rebuilt.erasure(request)) !== undefined);
      await projection.stop();
      const again = await rebuilt.dump();
      expect(text({ ...again, erasures: [] })).not.toMatch(MARK);
      for (const table of ['events', 'event_ids', 'resolutions', 'unmatched', 'audit', 'links', 'errors']) expect(again[table]).toEqual(live[table]);
      expect(await rebuilt.erasure(request)).toMatchObject({ remaining: 0, deleted: { events: 0, resolutions: 0, activity_people: 0 } });
    } finally {
      for (const s of stores) await s.close();
    }
  };
}

describe('forgetting a user in the read model', () => {
  const nats = useNatsServer('each');

  onBothDatabases((open) => scenario(nats, open)(), log);
});
