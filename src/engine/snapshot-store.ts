/**
 * Where passivated actors wait: address → persisted snapshot. The in-memory adapter lives here;
 * the JetStream KV adapter implements the same port.
 */
export interface SnapshotStore {
  /** Whether an actor is passivated here (its snapshot may still have to be loaded). */
  has(address: string): boolean;
  /** The snapshot, if it is in memory (an adapter over a remote store loads it ahead of use). */
  get(address: string): unknown;
  set(address: string, snapshot: unknown): void;
  delete(address: string): void;
  keys(): Iterable<string>;
  readonly size: number;
}

export class MemorySnapshotStore implements SnapshotStore {
  private readonly map = new Map<string, unknown>();
  has(address: string): boolean {
    return this.map.has(address);
  }
  get(address: string): unknown {
    return this.map.get(address);
  }
  set(address: string, snapshot: unknown): void {
    this.map.set(address, snapshot);
  }
  delete(address: string): void {
    this.map.delete(address);
  }
  keys(): Iterable<string> {
    return this.map.keys();
  }
  get size(): number {
    return this.map.size;
  }
}
