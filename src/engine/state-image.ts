import type { Checkpoint, EngineOptions } from './engine.ts';
import { persistedSnapshot } from './actor-system.ts';
import { type StoredCluster, clusterState } from './clusters.ts';
import { MemorySnapshotStore } from './snapshot-store.ts';
import type { CheckpointWrite } from './state-store.ts';

/**
 * The engine's durable state as plain data: the fold of its checkpoints. What the KV buckets hold,
 * kept in memory here for tests, `xref replay --verify` and the offline adapters.
 */
export class StateImage {
  seq = 0;
  watermark = -Infinity;
  readonly links = new Map<string, { user: string; seq: number }>();
  readonly identifiers = new Map<string, unknown>();
  readonly users = new Map<string, unknown>();

  apply(checkpoint: Checkpoint): this {
    this.seq = checkpoint.seq;
    this.watermark = checkpoint.watermark;
    for (const [key, link] of checkpoint.links) this.links.set(key, { user: link.user.key, seq: link.seq });
    for (const key of checkpoint.removedLinks ?? []) this.links.delete(key);
    for (const [address, snapshot] of checkpoint.identifiers) setOrDelete(this.identifiers, address, snapshot);
    for (const [address, snapshot] of checkpoint.users) setOrDelete(this.users, address, snapshot);
    return this;
  }

  /**
   * The checkpoint that makes this image the live state over `live`: all of it, at its `seq`,
   * and tombstones for what `live` holds that it does not.
   */
  replacing(live: StateImage): CheckpointWrite {
    const removed = <T>(now: Map<string, T>, before: Map<string, unknown>) => [...before.keys()].filter((key) => !now.has(key));
    return {
      seq: this.seq,
      watermark: this.watermark,
      links: new Map([...this.links].map(([key, link]) => [key, { user: { key: link.user }, seq: link.seq }])),
      removedLinks: removed(this.links, live.links),
      identifiers: [...this.identifiers, ...removed(this.identifiers, live.identifiers).map((a) => [a, null] as [string, unknown])],
      users: [...this.users, ...removed(this.users, live.users).map((a) => [a, null] as [string, unknown])],
    };
  }

  /** Options that resume an engine from this image, with in-memory stores holding its actors. */
  resumeOptions(seen?: Iterable<readonly [id: string, seq: number]>): Pick<EngineOptions, 'resume' | 'identifierStore' | 'userStore'> {
    const identifierStore = new MemorySnapshotStore();
    const userStore = new MemorySnapshotStore();
    for (const [address, snapshot] of this.identifiers) identifierStore.set(address, snapshot);
    for (const [address, snapshot] of this.users) userStore.set(address, snapshot);
    return {
      identifierStore,
      userStore,
      resume: { seq: this.seq, watermark: this.watermark, links: this.links, clusters: clustersOf(this.identifiers), ...(seen ? { seen } : {}) },
    };
  }
}

function setOrDelete(map: Map<string, unknown>, key: string, value: unknown): void {
  if (value === null) map.delete(key);
  else map.set(key, persistedSnapshot(value));
}

/** Each buffering actor's cluster members and buffer, read from its persisted snapshot. */
export function* clustersOf(identifiers: Iterable<readonly [string, unknown]>): Generator<StoredCluster> {
  for (const [address, snapshot] of identifiers) {
    const { members, buffer } = clusterState(snapshot);
    yield { address, members, buffer };
  }
}
