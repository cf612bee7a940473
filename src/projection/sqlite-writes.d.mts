import type { Database } from 'better-sqlite3';

/** The claim is not the writer's: nothing was written. */
export declare class Fenced {}

/** The writes of `db` (apply, reset and run transactions; the claim; the statistics), from a `writeSpec()` (sqlite-writer.ts). */
export declare function sqliteWrites(
  db: Database,
  spec: unknown,
): {
  /** Whether every event and resolution of the batch was stored (none was there already). */
  apply(request: unknown): boolean;
  reset(request: unknown): void;
  run(request: { owner: string; statements: ReadonlyArray<{ sql: string; rows: ReadonlyArray<readonly unknown[]> }>; expect?: { sql: string; value: unknown } }): boolean;
  claim(request: { owner: string; ttlMs: number }): boolean;
  release(request: { owner: string }): void;
  optimize(): void;
};
