// The SQLite read model's writes, once: what a batch and a reset do to the database, given the
// statements to run (made by sqlite-writer.ts `writeSpec`) and a batch already flattened to values
// (`applyRequest`). The writer thread (sqlite-write-thread.mjs) runs them for a file; a database
// in memory, which only its own connection sees, runs them on the main thread. Plain JavaScript,
// so that a worker thread can load it with no TypeScript loader.

/** The claim is not the writer's: nothing was written. */
export class Fenced {}

/** The apply, reset and run transactions of `db`, from `spec` (see `writeSpec`). */
export function sqliteWrites(db, spec) {
  const { ownerSql, inserts, links, position, emptied, forget } = spec;
  const owner = db.prepare(ownerSql).pluck();
  const prepared = new Map();
  const prepare = (sql) => {
    let statement = prepared.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      prepared.set(sql, statement);
    }
    return statement;
  };

  /** Runs `values` (rows of `width` values end to end) through the table's multi-row INSERT, then one row at a time for the rest. */
  function insert(table, width, values, returning) {
    const sql = inserts[table];
    const perChunk = sql.rows * width;
    const stored = [];
    const run = (statement, params) => {
      if (returning) for (const seq of statement.pluck().all(params)) stored.push(seq);
      else statement.run(params);
    };
    let at = 0;
    for (; at + perChunk <= values.length; at += perChunk) run(prepare(returning ? sql.chunkReturning : sql.chunk), values.slice(at, at + perChunk));
    for (; at < values.length; at += width) run(prepare(returning ? sql.oneReturning : sql.one), values.slice(at, at + width));
    return stored;
  }

  const apply = db.transaction((batch) => {
    if (owner.get() !== batch.owner) throw new Fenced();
    // an event whose id is there already (a duplicate beyond JetStream's window) is not stored again, nor its identifiers
    const stored = new Set(insert('events', batch.events.width, batch.events.values, true));
    // the identifiers of the events stored now (`seq` is their last value)
    const ids = batch.eventIds;
    const kept = [];
    for (let at = 0; at < ids.values.length; at += ids.width) {
      if (stored.has(ids.values[at + ids.width - 1])) for (let i = 0; i < ids.width; i++) kept.push(ids.values[at + i]);
    }
    insert('event_ids', ids.width, kept, false);
    for (const table of ['resolutions', 'unmatched', 'audit', 'errors']) insert(table, batch[table].width, batch[table].values, false);
    const link = prepare(links);
    for (const values of batch.links) link.run(values);
    const moved = prepare(position);
    for (const values of batch.positions) moved.run(values);
  }).immediate;

  const reset = db.transaction((request) => {
    if (owner.get() !== request.owner) throw new Fenced();
    for (const stream of request.streams) {
      for (const sql of emptied[stream]) prepare(sql).run();
      prepare(forget).run(stream);
    }
  }).immediate;

  /**
   * Statements each run for every row of values (`{ sql, rows }`), in order, in one transaction:
   * the active-people counts' writes. With `expect` (`{ sql, value }`), only if that query gives
   * that value: false, and nothing written, otherwise.
   */
  const run = db.transaction((request) => {
    if (owner.get() !== request.owner) throw new Fenced();
    if (request.expect !== undefined && prepare(request.expect.sql).pluck().get() !== request.expect.value) return false;
    for (const { sql, rows } of request.statements) {
      const statement = prepare(sql);
      for (const values of rows) statement.run(values);
    }
    return true;
  }).immediate;

  return { apply, reset, run };
}
