import { MemoryBuckets, MemoryStateStore } from '../../src/engine/memory-state-store.ts';
import { stateStoreContract } from '../helpers/state-store-contract.ts';

stateStoreContract('in memory', async () => {
  // the stores of one test share their buckets, as engine processes share a server
  const buckets = new MemoryBuckets();
  return {
    open: async () => new MemoryStateStore(buckets),
    stored: async (bucket, key) => buckets.latest<{ at: number; e?: number }>(bucket, key)?.record,
    close: async () => {},
  };
});
