/**
 * The counting half of the streaming active-people counts (src/projection/activity-counting.ts),
 * on a SQLite read model in memory filled as the projection fills it: chunk by chunk it equals the
 * offline counter on the same log; counts deleted under it are never written over (its write is
 * refused, it loads them again and counts anew); it stops writing once the claim is another's;
 * and counts made under another activity config are counted again from the start.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { activityOfLog } from '../../src/activity/offline-activity.ts';
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import { ActivityCounting } from '../../src/projection/activity-counting.ts';
import { openReadModel } from '../../src/projection/open-store.ts';
import type { ReadModelStore } from '../../src/projection/read-model.ts';
import { fillReadModel, fromSource } from '../helpers/read-model-fill.ts';
import { webLog } from '../helpers/web-log.ts';

const silent = pino({ level: 'silent' });
const CONFIG: ConfigInput = { activity: { buckets: { auth: { linked: true }, buyers: { name: 'purchase' } }, aggregates: { any: ['auth', 'buyers'] } } };
const config = resolveConfig(CONFIG);
const log = webLog({ events: 3000, identifiers: 400, seed: 4, rich: true });
const OWNER = 'fill';

const stores: ReadModelStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});

async function filled(): Promise<ReadModelStore> {
  const store = await openReadModel({ databaseUrl: 'sqlite::memory:', dataDir: '.', logger: silent });
  stores.push(store);
  await fillReadModel(store, fromSource(log), { owner: OWNER });
  return store;
}

const open = (store: ReadModelStore, activity = config) => ActivityCounting.open({ store, config: activity, owner: OWNER, logger: silent, chunk: 250 });
const offline = () => activityOfLog(log, CONFIG).counter.state();

describe('the active-people counting', () => {
  it('counts chunk by chunk what the offline counter counts, each write with its position', async () => {
    const store = await filled();
    const counting = await open(store);
    const written: number[] = [];
    expect(await counting.advance(1200, (seq) => written.push(seq), () => false)).toBe('counted');
    // the last write of a round runs beside the next round's counting: settled, it is reported
    expect(await counting.settle()).toBe('counted');
    expect(written).toEqual([1200]);
    expect(await counting.advance(log.length, (seq) => written.push(seq), () => false)).toBe('counted');
    expect(await counting.settle()).toBe('counted');
    expect(written.at(-1)).toBe(log.length);
    const stored = await store.activity.load();
    expect(stored.mark.seq).toBe(log.length);
    expect(stored.state).toEqual(offline());
    // opened again, it goes on from there: nothing counted twice
    const again = await open(store);
    expect(again.position).toBe(log.length);
    expect(await again.advance(log.length, () => {}, () => false)).toBe('counted');
    await again.settle();
    expect((await store.activity.load()).state).toEqual(offline());
  });

  it('counts the next inputs while its last write is under way, and waits for it before writing again', async () => {
    const store = await filled();
    const counting = await open(store);
    const write = store.activity.write.bind(store.activity);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const writes: number[] = [];
    store.activity.write = async (changes, from, seq, owner) => {
      writes.push(seq);
      await held;
      return write(changes, from, seq, owner);
    };
    const written: number[] = [];
    expect(await counting.advance(1000, (seq) => written.push(seq), () => false)).toBe('counted');
    // the round is done with its write held: counted, not yet written
    expect([writes, written, counting.position]).toEqual([[1000], [], 0]);
    const next = counting.advance(log.length, (seq) => written.push(seq), () => false);
    release();
    expect(await next).toBe('counted');
    await counting.settle();
    expect(written[0]).toBe(1000);
    expect(written.at(-1)).toBe(log.length);
    expect((await store.activity.load()).state).toEqual(offline());
  });

  it('never writes over counts deleted under it: its write is refused, it loads them again and counts anew', async () => {
    const store = await filled();
    const counting = await open(store);
    await counting.advance(1000, () => {}, () => false);
    await counting.settle();
    await store.activity.reset(OWNER);
    // what it counted since is not written over the deleted counts
    expect(await counting.advance(2000, () => {}, () => false)).toBe('counted');
    expect(await counting.settle()).toBe('counted');
    expect(counting.position).toBe(0);
    expect((await store.activity.load()).state).toBeUndefined();
    await counting.advance(log.length, () => {}, () => false);
    await counting.settle();
    expect((await store.activity.load()).state).toEqual(offline());
  });

  it('stops once the claim is another\'s, writing nothing', async () => {
    const store = await filled();
    const counting = await open(store);
    await counting.advance(1000, () => {}, () => false);
    await counting.settle();
    const before = await store.dump();
    await store.release(OWNER);
    expect(await store.claim('another', 60_000)).toBe(true);
    // its write is refused: seen at its next write or once settled, and from then on
    await counting.advance(log.length, () => {}, () => false);
    expect(await counting.settle()).toBe('fenced');
    expect(await counting.advance(log.length, () => {}, () => false)).toBe('fenced');
    expect(await store.dump()).toEqual(before);
  });

  it('counts made under another activity config are counted again from the start', async () => {
    const store = await filled();
    const first = await open(store);
    await first.advance(log.length, () => {}, () => false);
    await first.settle();
    const other = resolveConfig({ activity: { buckets: { anon: { linked: false } } } });
    const counting = await open(store, other);
    expect(counting.position).toBe(0);
    await counting.advance(log.length, () => {}, () => false);
    await counting.settle();
    expect((await store.activity.load()).state).toEqual(activityOfLog(log, { activity: { buckets: { anon: { linked: false } } } }).counter.state());
  });
});
