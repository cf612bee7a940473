// The SQLite read model's writes, once: what a batch and a reset do to the database, given the
// statements to run (made by sqlite-writer.ts `writeSpec`) and a batch already flattened to values
// (`applyRequest`). The writer thread (sqlite-write-thread.mjs) runs them for a file; a database
// in memory, which only its own connection sees, runs them on the main thread. Plain JavaScript,
// so that a worker thread can load it with no TypeScript loader.

/** The claim is not the writer's: nothing was written. */
export class Fenced {}

/** The writes of `db` (apply, reset and run transactions; the claim; the statistics), from `spec` (see `writeSpec`). */
export function sqliteWrites(db, spec) {
  const { ownerSql, claimSql, releaseSql, inserts, links, position, emptied, forget } = spec;
  const owner = db.prepare(ownerSql).pluck();
  const claims = { take: db.prepare(claimSql), release: db.prepare(releaseSql) };
  const prepared = new Map();
  const prepare = (sql) => {
    let statement = prepared.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      prepared.set(sql, statement);
    }
    return statement;
  };

  /**
   * Runs `values` (rows of `width` values end to end) through the table's multi-row INSERT, then
   * one row at a time for the rest: how many rows were stored (a row whose key is there is not),
   * their seqs pushed into `stored` when given.
   */
  function insert(table, width, values, stored) {
    const sql = inserts[table];
    const perChunk = sql.rows * width;
    const returning = stored !== undefined;
    let count = 0;
    const run = (statement, params) => {
      if (returning) stored.push(...statement.pluck().all(params));
      else count += statement.run(params).changes;
    };
    let at = 0;
    for (; at + perChunk <= values.length; at += perChunk) run(prepare(returning ? sql.chunkReturning : sql.chunk), values.slice(at, at + perChunk));
    for (; at < values.length; at += width) run(prepare(returning ? sql.oneReturning : sql.one), values.slice(at, at + width));
    return returning ? stored.length : count;
  }

  /**
   * `values` (rows of `width` end to end) with their rows in the order of their first `keyWidth`
   * columns (a stable sort: rows with one key keep theirs): the primary key of event_ids and of
   * resolutions, whose rows come in log order but land all over their B-trees. In key order, one
   * after another lands on the page the last one did (a twentieth off a batch's writes).
   */
  function inKeyOrder(values, width, keyWidth) {
    const starts = [];
    for (let at = 0; at < values.length; at += width) starts.push(at);
    starts.sort((a, b) => {
      for (let i = 0; i < keyWidth; i++) {
        const x = values[a + i];
        const y = values[b + i];
        if (x !== y) return x < y ? -1 : 1;
      }
      return 0;
    });
    const sorted = [];
    for (const at of starts) for (let i = 0; i < width; i++) sorted.push(values[at + i]);
    return sorted;
  }

  /**
   * A write script (forget-sql.ts): nothing when its `unless` query finds a row; else its steps,
   * each run for every row of values, counting what they delete per table and what the counts
   * find left, and its receipt written with both.
   */
  function script({ unless, tables, steps, receipt }) {
    if (unless !== undefined && prepare(unless.sql).get(unless.params) !== undefined) return;
    const deleted = Object.fromEntries(tables.map((table) => [table, 0]));
    let remaining = 0;
    for (const step of steps) {
      const statement = prepare(step.sql);
      for (const values of step.rows) {
        if (step.remaining) remaining += statement.pluck().get(values);
        else {
          const { changes } = statement.run(values);
          if (step.deleted !== undefined) deleted[step.deleted] += changes;
        }
      }
    }
    if (receipt !== undefined) prepare(receipt.sql).run([...receipt.params, JSON.stringify(deleted), remaining]);
  }

  const apply = db.transaction((batch) => {
    if (owner.get() !== batch.owner) throw new Fenced();
    // retractions first: a resolution they take back makes room for the same event and user placed again in this batch
    for (const each of batch.retractions) script(each);
    // an event whose id is there already (a duplicate beyond JetStream's window) is not stored again, nor its identifiers
    const seqs = [];
    const events = insert('events', batch.events.width, batch.events.values, seqs);
    const stored = new Set(seqs);
    // the identifiers of the events stored now (`seq` is their last value)
    const ids = batch.eventIds;
    const kept = [];
    for (let at = 0; at < ids.values.length; at += ids.width) {
      if (stored.has(ids.values[at + ids.width - 1])) for (let i = 0; i < ids.width; i++) kept.push(ids.values[at + i]);
    }
    insert('event_ids', ids.width, inKeyOrder(kept, ids.width, ids.width));
    const { resolutions } = batch;
    const placed = insert('resolutions', resolutions.width, inKeyOrder(resolutions.values, resolutions.width, 3));
    for (const table of ['unmatched', 'audit', 'errors']) insert(table, batch[table].width, batch[table].values);
    // unlinks end the stored links before the batch's later ones are written
    for (const each of batch.unlinks) script(each);
    const link = prepare(links);
    for (const values of batch.links) link.run(values);
    // forgets and suppressed events, after the rows: rows of this batch are erased too
    for (const each of batch.scripts) script(each);
    const moved = prepare(position);
    for (const values of batch.positions) moved.run(values);
    // whether every event and resolution of the batch was stored (none was there already)
    return events * batch.events.width === batch.events.values.length && placed * resolutions.width === resolutions.values.length;
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

  /** Takes or renews the claim for `ttlMs` from now: whether `owner` holds it. */
  function claim({ owner: who, ttlMs }) {
    const now = Date.now();
    return claims.take.run(who, now + ttlMs, who, now).changes === 1;
  }

  /** Gives the claim up, if `owner` holds it. */
  function release({ owner: who }) {
    claims.release.run(who);
  }

  /** Brings the planner's statistics up to date (cheap: analysis_limit, and only tables that changed much). */
  function optimize() {
    db.pragma('optimize');
  }

  return { apply, reset, run, claim, release, optimize };
}
