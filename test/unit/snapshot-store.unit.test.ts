import { MemoryBuckets, MemoryStateStore } from '../../src/engine/memory-state-store.ts';
import { MemorySnapshotStore } from '../../src/engine/snapshot-store.ts';
import { KvSnapshotStore } from '../../src/nats/state-store.ts';
import { snapshotStoreContract } from '../helpers/snapshot-store-contract.ts';

snapshotStoreContract('in memory', async () => ({ store: new MemorySnapshotStore(), close: async () => {} }));

snapshotStoreContract(
  'over the in-memory state store',
  async () => {
    const buckets = new MemoryBuckets();
    return {
      store: new KvSnapshotStore('u', new MemoryStateStore(buckets), []),
      openState: async () => new MemoryStateStore(buckets),
      close: async () => {},
    };
  },
  { overStateStore: true },
);
