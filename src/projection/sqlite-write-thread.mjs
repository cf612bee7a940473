// The SQLite read model's writes, on a thread of their own: better-sqlite3 is synchronous, so
// writing a batch on the main thread stops the reading and parsing of the next one. This thread
// owns the write connection; the main thread sends each batch already flattened to values, with
// the SQL to run (made by sqlite-writer.ts, which also says what crosses). The claim is checked in
// the batch's own transaction, as on the main thread. Plain JavaScript: a worker thread starts
// with no TypeScript loader (under tsx, bin/xref.js registers it on the main thread only).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { path, pragmas, ownerSql, inserts, links, position, emptied, forget } = workerData;
const db = new Database(path);
for (const pragma of pragmas) db.pragma(pragma);
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

class Fenced {}

const apply = db
  .transaction((batch) => {
    if (owner.get() !== batch.owner) throw new Fenced();
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
  })
  .immediate;

const reset = db
  .transaction((request) => {
    if (owner.get() !== request.owner) throw new Fenced();
    for (const stream of request.streams) {
      for (const sql of emptied[stream]) prepare(sql).run();
      prepare(forget).run(stream);
    }
  })
  .immediate;

parentPort.on('message', (request) => {
  if (request.close) {
    db.close();
    parentPort.postMessage({ id: request.id, closed: true });
    parentPort.close();
    return;
  }
  try {
    if (request.reset !== undefined) reset(request.reset);
    else apply(request.apply);
    parentPort.postMessage({ id: request.id });
  } catch (error) {
    parentPort.postMessage({ id: request.id, ...(error instanceof Fenced ? { fenced: true } : { error: error instanceof Error ? error.message : String(error) }) });
  }
});
