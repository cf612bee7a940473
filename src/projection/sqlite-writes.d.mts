import type { Database } from 'better-sqlite3';

/** The claim is not the writer's: nothing was written. */
export declare class Fenced {}

/** The apply and reset transactions of `db`, from a `writeSpec()` (sqlite-writer.ts). */
export declare function sqliteWrites(
  db: Database,
  spec: unknown,
): {
  apply(request: unknown): void;
  reset(request: unknown): void;
};
