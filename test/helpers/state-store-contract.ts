/**
 * One contract for every StateStore adapter (the in-memory one and the JetStream KV one): run it
 * against each, so that the memory store the unit tests and the offline mode use keeps the state,
 * the rollback of an interrupted checkpoint and the fencing exactly as the service's does.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../src/engine/engine.ts';
import { StateImage } from '../../src/engine/state-image.ts';
import { type CheckpointWrite, FencedError, type StateStore } from '../../src/engine/state-store.ts';
import { checkpointRecords } from '../../src/nats/records-in-force.ts';
import { BUCKETS, linkKey, snapshotKeys } from '../../src/nats/subjects.ts';
import { waitFor } from './streams.ts';

export interface StateStoreFixture {
  /** A store over the fixture's state, as one engine process opens it (nothing loaded yet). */
  open(): Promise<StateStore>;
  /** The latest record a bucket holds under a key, in force or not (undefined: none). */
  stored(bucket: string, key: string): Promise<{ at: number; e?: number } | undefined>;
  close(): Promise<void>;
}

type Snapshots = Array<[address: string, snapshot: unknown]>;

/** A checkpoint at `seq` (watermark `seq` seconds) of these changes. */
export function checkpointAt(seq: number, changes: { links?: Record<string, string>; identifiers?: Snapshots; users?: Snapshots; removedLinks?: string[] } = {}): CheckpointWrite {
  return {
    seq,
    watermark: seq * 1000,
    links: new Map(Object.entries(changes.links ?? {}).map(([key, user]) => [key, { user: { key: user }, seq }])),
    identifiers: changes.identifiers ?? [],
    users: changes.users ?? [],
    ...(changes.removedLinks === undefined ? {} : { removedLinks: changes.removedLinks }),
  };
}

/** A buffering identifier actor's persisted snapshot: its cluster and deadline. */
export const buffering = (key: string, members: string[], deadline: number | null, events = 1) => ({
  status: 'active',
  value: 'buffering',
  context: { key, members, buffer: Array.from({ length: events }, (_, i) => ({ id: `${key}-${i}` })), deadline },
});
/** A user actor's persisted snapshot. */
export const user = (key: string, cookies: number) => ({ status: 'active', value: 'active', context: { key, linked: { cookie: cookies }, decision: null } });

/** The state a fold of these checkpoints gives: what a load must find. */
const folded = (...checkpoints: Checkpoint[]) => checkpoints.reduce((image, checkpoint) => image.apply(checkpoint), new StateImage());

/** What `load()` found, in a form that compares without regard to order. */
async function loaded(store: StateStore) {
  const state = await store.load();
  return {
    seq: state.seq,
    watermark: state.watermark,
    links: Object.fromEntries(state.links),
    clusters: [...state.clusters].sort((a, b) => a.address.localeCompare(b.address)),
    identifierAddresses: [...state.identifierAddresses].sort(),
    userAddresses: [...state.userAddresses].sort(),
  };
}

/** What `load()` must find for this image. */
function expectedLoad(image: StateImage) {
  return {
    seq: image.seq,
    watermark: image.watermark,
    links: Object.fromEntries(image.links),
    clusters: [...image.identifiers]
      .map(([address, snapshot]) => {
        const { members, buffer } = (snapshot as ReturnType<typeof buffering>).context;
        return { address, members, buffer };
      })
      .sort((a, b) => a.address.localeCompare(b.address)),
    identifierAddresses: [...image.identifiers.keys()].sort(),
    userAddresses: [...image.users.keys()].sort(),
  };
}

/** Plain data of an image (maps as objects), to compare two images. */
const plain = (image: StateImage) => ({
  seq: image.seq,
  watermark: image.watermark,
  links: Object.fromEntries(image.links),
  identifiers: Object.fromEntries(image.identifiers),
  users: Object.fromEntries(image.users),
});

/** Identifier values of every shape a KV key must carry: spaces, slashes, dots, non-ASCII. */
const ODD = 'cookie:a b/c.d=ü';

const first = checkpointAt(10, {
  links: { [ODD]: 'db_id:u1', 'device_id:d1': 'db_id:u1' },
  identifiers: [
    ['cookie:x', buffering('cookie:x', ['cookie:x', 'device_id:y'], 3_600_000)],
    ['cookie:lone', buffering('cookie:lone', ['cookie:lone'], null)],
  ],
  users: [['db_id:u1', user('db_id:u1', 1)]],
});
/** Changes over `first`: a link moved and a new one, an actor changed, one gone, one new. */
const second = checkpointAt(20, {
  links: { [ODD]: 'db_id:u2', 'cookie:b': 'db_id:u2' },
  identifiers: [
    ['cookie:x', buffering('cookie:x', ['cookie:x', 'device_id:y', 'cookie:z'], 7_200_000, 3)],
    ['cookie:lone', null],
    ['cookie:new', buffering('cookie:new', ['cookie:new'], 9_000_000)],
  ],
  users: [
    ['db_id:u1', null],
    ['db_id:u2', user('db_id:u2', 2)],
  ],
});

export function stateStoreContract(name: string, make: () => Promise<StateStoreFixture>): void {
  describe(`StateStore contract: ${name}`, () => {
    let fixture: StateStoreFixture;
    beforeEach(async () => {
      fixture = await make();
    });
    /** A store writing under a lease of this epoch. */
    const openAt = async (epoch: number) => {
      const store = await fixture.open();
      store.epoch = epoch;
      return store;
    };
    afterEach(async () => {
      await fixture.close();
    });

    /** Waits until every record of `checkpoint` is the latest of its key (the meta record aside). */
    const recordsStored = (checkpoint: CheckpointWrite) =>
      waitFor(`the records of checkpoint ${checkpoint.seq} to be stored`, async () => {
        for (const [bucket, key] of checkpointRecords(checkpoint, 0)) if ((await fixture.stored(bucket, key))?.at !== checkpoint.seq) return false;
        return true;
      });

    /**
     * Writes `checkpoint` as a writer that loses its lease once its records are stored, just before
     * the meta record: FencedError, and the records are stored but not in force.
     */
    async function interrupted(store: StateStore, checkpoint: CheckpointWrite): Promise<void> {
      let leaseLost = false;
      let outputsStored!: () => void;
      const writing = store.write(checkpoint, { alsoStored: new Promise<void>((resolve) => (outputsStored = resolve)), mayWrite: () => !leaseLost });
      writing.catch(() => undefined); // awaited below
      // the meta record waits for the outputs: while it does, every record is sent
      await recordsStored(checkpoint);
      leaseLost = true;
      outputsStored();
      await expect(writing).rejects.toBeInstanceOf(FencedError);
    }

    it('an empty state loads as nothing, at input 0', async () => {
      const store = await fixture.open();
      expect(await loaded(store)).toEqual(expectedLoad(new StateImage()));
      expect(plain(await store.loadImage())).toEqual(plain(new StateImage()));
      expect(await store.snapshot('i', 'cookie:x')).toBeUndefined();
    });

    it('a checkpoint loads whole in a fresh store: seq, watermark, links, clusters, snapshots', async () => {
      await (await fixture.open()).write(first);
      const fresh = await fixture.open();
      const state = await loaded(fresh);
      expect(state).toEqual(expectedLoad(folded(first)));
      expect(state).toMatchObject({
        seq: 10,
        watermark: 10_000,
        links: { [ODD]: { user: 'db_id:u1', seq: 10 } },
        clusters: [
          { address: 'cookie:lone', members: ['cookie:lone'], buffer: [{ id: 'cookie:lone-0' }] },
          { address: 'cookie:x', members: ['cookie:x', 'device_id:y'], buffer: [{ id: 'cookie:x-0' }] },
        ],
      });
      expect(plain(await fresh.loadImage())).toEqual(plain(folded(first)));
    });

    it('a watermark before any event time (-Infinity) is kept', async () => {
      await (await fixture.open()).write({ ...checkpointAt(3), watermark: -Infinity });
      expect(await loaded(await fixture.open())).toMatchObject({ seq: 3, watermark: -Infinity });
    });

    it('a later checkpoint overwrites what it changed, deletes what it removed and keeps the rest', async () => {
      const store = await fixture.open();
      await store.write(first);
      await store.write({ ...second, removedLinks: ['device_id:d1'] });
      const expected = folded(first, second);
      expected.links.delete('device_id:d1');
      const fresh = await fixture.open();
      expect(await loaded(fresh)).toEqual(expectedLoad(expected));
      expect(plain(await fresh.loadImage())).toEqual(plain(expected));
    });

    it('snapshot(kind, address) reads one actor as the checkpoint in force left it', async () => {
      const store = await fixture.open();
      await store.write(first);
      await store.write(second);
      const fresh = await fixture.open();
      await fresh.load();
      expect(await fresh.snapshot('i', 'cookie:x')).toEqual(second.identifiers[0]![1]);
      expect(await fresh.snapshot('u', 'db_id:u2')).toEqual(user('db_id:u2', 2));
      // deleted, never there, or an actor of the other kind
      expect(await fresh.snapshot('i', 'cookie:lone')).toBeUndefined();
      expect(await fresh.snapshot('u', 'db_id:u1')).toBeUndefined();
      expect(await fresh.snapshot('i', 'cookie:never')).toBeUndefined();
      expect(await fresh.snapshot('u', 'cookie:x')).toBeUndefined();
    });

    it('replaceWith makes an image the live state, and what the image does not hold is gone', async () => {
      const store = await fixture.open();
      await store.write(first);
      const image = new StateImage();
      image.seq = 50;
      image.watermark = 777;
      image.links.set(ODD, { user: 'db_id:u9', seq: 42 });
      image.identifiers.set('cookie:z', buffering('cookie:z', ['cookie:z'], 5));
      image.users.set('db_id:u9', user('db_id:u9', 1));
      await (await fixture.open()).replaceWith(image);
      const fresh = await fixture.open();
      expect(plain(await fresh.loadImage())).toEqual(plain(image));
      expect(await loaded(fresh)).toEqual(expectedLoad(image));
    });

    it('an interrupted checkpoint (records stored, no meta) is rolled back at load; rewritten at the same input, it is kept', async () => {
      const a = await fixture.open();
      await a.write(first);
      await interrupted(a, second);
      // the writer itself still reads the checkpoint in force
      expect(await a.snapshot('i', 'cookie:x')).toEqual(first.identifiers[0]![1]);
      expect(await a.snapshot('i', 'cookie:new')).toBeUndefined();

      // the next engine loads the previous checkpoint exactly, undoing the interrupted records
      const b = await fixture.open();
      expect(await loaded(b)).toEqual(expectedLoad(folded(first)));
      expect(plain(await b.loadImage())).toEqual(plain(folded(first)));
      expect(await b.snapshot('i', 'cookie:x')).toEqual(first.identifiers[0]![1]);
      expect(await b.snapshot('i', 'cookie:lone')).toEqual(first.identifiers[1]![1]);
      expect(await b.snapshot('u', 'db_id:u1')).toEqual(user('db_id:u1', 1));
      expect(await b.snapshot('i', 'cookie:new')).toBeUndefined();
      // ... and writes the records in force back as the latest (a key read alone gets them too)
      expect(await fixture.stored(BUCKETS.links, linkKey('cookie', 'a b/c.d=ü'))).toMatchObject({ user: 'db_id:u1', at: 10 });
      expect(await fixture.stored(BUCKETS.links, linkKey('cookie', 'b'))).toMatchObject({ deleted: true, at: 10 });
      expect(await fixture.stored(BUCKETS.snapshots, snapshotKeys.identifier('cookie:x'))).toMatchObject({ snapshot: first.identifiers[0]![1], at: 10 });

      // resuming from the same input, it checkpoints at 20 again: stored, not taken for a copy of the first attempt
      await b.write(second);
      const c = await fixture.open();
      expect(await loaded(c)).toEqual(expectedLoad(folded(first, second)));
      expect(plain(await c.loadImage())).toEqual(plain(folded(first, second)));
    });

    it('a writer that lost its lease before it began writes nothing', async () => {
      const store = await fixture.open();
      await store.write(first);
      await expect(store.write(second, { mayWrite: () => false })).rejects.toBeInstanceOf(FencedError);
      expect(await fixture.stored(BUCKETS.links, linkKey('cookie', 'b'))).toBeUndefined();
      expect(await loaded(await fixture.open())).toEqual(expectedLoad(folded(first)));
    });

    it('once a newer epoch has checkpointed, the older writer is refused and nothing it writes late is in force', async () => {
      const old = await openAt(1);
      await old.load();
      await old.write(first);

      const next = await openAt(2);
      expect(await loaded(next)).toEqual(expectedLoad(folded(first)));
      const own = checkpointAt(15, { links: { 'cookie:c': 'db_id:u3' }, users: [['db_id:u3', user('db_id:u3', 1)]] });
      await next.write(own);

      // the fenced engine, paused past its lease, resumes and writes: its records land, its meta does not
      await expect(old.write(second)).rejects.toBeInstanceOf(FencedError);
      expect(await fixture.stored(BUCKETS.snapshots, snapshotKeys.identifier('cookie:x'))).toMatchObject({ at: 20, e: 1 });
      // a late rewrite of its own last checkpoint is not in force either (stored after the takeover)
      const lateRewrite = checkpointAt(10, { identifiers: [['cookie:lone', buffering('cookie:lone', ['cookie:lone', 'cookie:late'], 1)]] });
      await expect(old.write(lateRewrite)).rejects.toBeInstanceOf(FencedError);
      expect(await fixture.stored(BUCKETS.snapshots, snapshotKeys.identifier('cookie:lone'))).toMatchObject({ at: 10, e: 1, snapshot: lateRewrite.identifiers[0]![1] });

      // a passivated actor the new holder loads now is the one in force, not a late write
      expect(await next.snapshot('i', 'cookie:x')).toEqual(first.identifiers[0]![1]);
      expect(await next.snapshot('i', 'cookie:lone')).toEqual(first.identifiers[1]![1]);
      expect(await next.snapshot('i', 'cookie:new')).toBeUndefined();
      expect(await next.snapshot('u', 'db_id:u3')).toEqual(user('db_id:u3', 1));
      // and so does the next engine, at this epoch or a later one
      expect(await loaded(await openAt(2))).toEqual(expectedLoad(folded(first, own)));
      expect(plain(await (await openAt(3)).loadImage())).toEqual(plain(folded(first, own)));
    });

    it('of two writers over the same checkpoint in force, the first meta record wins and the other is fenced', async () => {
      const old = await openAt(1);
      await old.load();
      await old.write(first);
      const next = await openAt(2);
      await next.load();

      // the old writer's meta lands before the new holder's first: its checkpoint is the state
      await old.write(second);
      const own = checkpointAt(15, { links: { 'cookie:c': 'db_id:u3' } });
      await expect(next.write(own)).rejects.toBeInstanceOf(FencedError);
      expect(await loaded(await openAt(1))).toEqual(expectedLoad(folded(first, second)));
      expect(await loaded(await openAt(3))).toEqual(expectedLoad(folded(first, second)));
    });
  });
}
