/**
 * The SQLite read model's writes on a worker thread (sqlite-write-thread.mjs), which owns the
 * write connection: the main thread flattens each batch to values and goes on reading the next
 * while the thread writes it, so parsing and writing overlap. Each batch, with the claim check and
 * the positions, is still one IMMEDIATE transaction; requests are written in the order they come.
 */
import { Worker } from 'node:worker_threads';
import { XrefError } from '../domain/errors.ts';
import {
  CLAIM_OWNER_SQL,
  CLAIM_SQL,
  COLUMNS,
  RELEASE_SQL,
  STREAM_RESETS,
  type Value,
  type WrittenTable,
  auditValues,
  errorValues,
  eventIdValues,
  eventValues,
  eventsInOrder,
  fencedError,
  insertRowSql,
  insertRowsSql,
  latestPositions,
  linkValues,
  positionValues,
  resolutionValues,
  unmatchedValues,
} from './read-model-sql.ts';
import { batchScripts } from './forget-sql.ts';
import { retractionScripts, unlinkScripts } from './retraction-sql.ts';
import type { ProjectedStream, ProjectionBatch } from './read-model.ts';

/** Statements, each run once per row of values. */
export type SqlRuns = ReadonlyArray<{ readonly sql: string; readonly rows: ReadonlyArray<readonly Value[]> }>;

/** Rows per INSERT statement: 64 × at most 11 columns stays far below SQLite's 32,766 parameters. */
export const ROWS_PER_INSERT = 64;

/** A table's rows, their values end to end (structured clone copies one flat array per table, not one per row). */
interface FlatRows {
  readonly width: number;
  readonly values: Value[];
}

type Reply = { id: number; fenced?: true; error?: string; closed?: true; result?: unknown };

/** The rows `valuesOf` gives, end to end (a loop: `Array.prototype.flat` is several times slower). */
function flat<R>(table: WrittenTable, rows: readonly R[], valuesOf: (row: R) => Value[]): FlatRows {
  const values: Value[] = [];
  for (const row of rows) for (const value of valuesOf(row)) values.push(value);
  return { width: COLUMNS[table].length, values };
}
const bulkTables = ['events', 'event_ids', 'resolutions', 'unmatched', 'audit', 'errors'] as const;

/** The statements of sqlite-writes.mjs: built here, from the SQL both adapters share. */
export function writeSpec() {
  const inserts = Object.fromEntries(
    bulkTables.map((table) => [
      table,
      {
        rows: ROWS_PER_INSERT,
        chunk: insertRowsSql(table, ROWS_PER_INSERT),
        one: insertRowsSql(table, 1),
        chunkReturning: `${insertRowsSql(table, ROWS_PER_INSERT)} RETURNING seq`,
        oneReturning: `${insertRowsSql(table, 1)} RETURNING seq`,
      },
    ]),
  );
  const emptied = STREAM_RESETS;
  return { ownerSql: CLAIM_OWNER_SQL, claimSql: CLAIM_SQL, releaseSql: RELEASE_SQL, inserts, links: insertRowSql('links'), position: insertRowSql('positions'), emptied, forget: 'DELETE FROM positions WHERE stream = ?' };
}

/** A batch as sqlite-writes.mjs takes it: each table's rows flattened to one array of values. */
export function applyRequest(batch: ProjectionBatch, owner: string) {
  const events = eventsInOrder(batch.events);
  const { resolutions, scripts: retractions } = retractionScripts(batch);
  return {
    owner,
    retractions,
    events: flat('events', events, eventValues),
    eventIds: flat('event_ids', events.flatMap(eventIdValues), (values) => values),
    resolutions: flat('resolutions', resolutions, resolutionValues),
    unmatched: flat('unmatched', batch.unmatched, unmatchedValues),
    audit: flat('audit', batch.audit, auditValues),
    errors: flat('errors', batch.errors, errorValues),
    unlinks: unlinkScripts(batch),
    links: linkValues(batch.audit, batch.unlinks),
    scripts: batchScripts(batch, 'sqlite'),
    positions: latestPositions(batch.positions).map(positionValues),
  };
}

/** A reset as sqlite-writes.mjs takes it. */
export function resetRequest(streams: readonly ProjectedStream[], owner: string) {
  return { owner, streams: [...new Set(streams)] };
}

export class SqliteWriter {
  private readonly channel: Worker;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: unknown) => void; what: string; owner: string }>();
  private failure: Error | undefined;

  /** The writer thread of `path` (`pragmas`: the connection's settings, as the main connection has them). */
  constructor(target: { readonly path: string; readonly pragmas: readonly string[] }) {
    // a young generation larger than the default: each batch arrives as many short-lived values
    const worker = new Worker(new URL('./sqlite-write-thread.mjs', import.meta.url), {
      workerData: { path: target.path, pragmas: target.pragmas, spec: writeSpec() },
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
    });
    worker.on('error', (error) => this.failed(error));
    worker.on('exit', (code) => this.failed(new XrefError('XREF_DATABASE', `the SQLite writer thread stopped (exit code ${code})`)));
    this.channel = worker;
    this.channel.unref();
    this.channel.on('message', (reply: Reply) => this.answered(reply));
  }

  /** Writes the batch in one transaction (rejects with XREF_FENCED, writing nothing, unless `owner` holds the claim): whether every event and resolution of it was stored. */
  async apply(batch: ProjectionBatch, owner: string): Promise<boolean> {
    return (await this.request('applying a projection batch', owner, { apply: applyRequest(batch, owner) })) as boolean;
  }

  /** Takes or renews the claim for `ttlMs` from when the thread runs it, after the writes asked before: whether `owner` holds it. */
  async claim(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.request('claiming the read model', owner, { claim: { owner, ttlMs } })) as boolean;
  }

  /** Gives the claim up after the writes asked before. */
  async release(owner: string): Promise<void> {
    await this.request('releasing the read model', owner, { release: { owner } });
  }

  /** Brings the planner's statistics up to date, between two writes. */
  async optimize(): Promise<void> {
    await this.request('optimizing the SQLite read model', '', { optimize: true });
  }

  /** Deletes the rows read from `streams` and their positions, after the writes asked before. */
  async resetStreams(streams: readonly ProjectedStream[], owner: string): Promise<void> {
    await this.request(`resetting the read model's ${streams.join(', ')} rows`, owner, { reset: resetRequest(streams, owner) });
  }

  /**
   * Runs `statements`, each for each of its rows, in one transaction (XREF_FENCED unless `owner`
   * holds the claim); with `expect`, only if its query gives its value (false otherwise).
   */
  async run(what: string, statements: SqlRuns, owner: string, expect?: { sql: string; value: unknown }): Promise<boolean> {
    return (await this.request(what, owner, { run: { owner, statements, expect } })) as boolean;
  }

  /** Closes the write connection once the writes asked before are done. */
  async close(): Promise<void> {
    if (this.failure !== undefined) return;
    const closed = this.request('closing the SQLite writer', '', { close: true });
    await closed.catch(() => undefined);
    await this.channel.terminate();
  }

  private request(what: string, owner: string, body: object): Promise<unknown> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.next++;
    // the thread keeps the process alive only while a write is under way (a store left open does not)
    if (this.waiting.size === 0) this.channel.ref();
    return new Promise<unknown>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, what, owner });
      this.channel.postMessage({ id, ...body });
    });
  }

  private answered(reply: Reply): void {
    const waiting = this.waiting.get(reply.id);
    if (waiting === undefined) return;
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) this.channel.unref();
    if (reply.fenced) waiting.reject(fencedError(waiting.what, waiting.owner));
    else if (reply.error !== undefined) waiting.reject(new XrefError('XREF_DATABASE', `${waiting.what}: ${reply.error}`));
    else {
      if (reply.closed) this.failure = new XrefError('XREF_DATABASE', 'the SQLite writer is closed');
      waiting.resolve(reply.result);
    }
  }

  private failed(error: Error): void {
    this.failure ??= error instanceof XrefError ? error : new XrefError('XREF_DATABASE', `the SQLite writer thread failed: ${error.message}`, { cause: error });
    for (const waiting of this.waiting.values()) waiting.reject(this.failure);
    this.waiting.clear();
  }
}
