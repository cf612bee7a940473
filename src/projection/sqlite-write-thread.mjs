// The SQLite read model's writes, on a thread of their own: better-sqlite3 is synchronous, so
// writing a batch on the main thread stops the reading and parsing of the next one. This thread
// owns the write connection and runs the writes of sqlite-writes.mjs; the main thread sends each
// batch already flattened to values (sqlite-writer.ts). The claim is checked in the batch's own
// transaction, and taken, renewed and released here too, after the writes asked before (on
// another connection it would wait on this one's lock, and a writer busy with one batch after
// another could keep it waiting until it ran out). The active-people counts are written through
// it too (on the main thread's request), so no write waits on another connection's lock. Plain
// JavaScript: a worker thread starts with no TypeScript loader (under tsx, bin/xref.js registers
// it on the main thread only).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { Fenced, sqliteWrites } from './sqlite-writes.mjs';

const { path, pragmas, spec } = workerData;
const db = new Database(path);
for (const pragma of pragmas) db.pragma(pragma);
const writes = sqliteWrites(db, spec);

/** Runs one request. */
function handle(request) {
  try {
    let result;
    if (request.reset !== undefined) writes.reset(request.reset);
    else if (request.run !== undefined) result = writes.run(request.run);
    else if (request.claim !== undefined) result = writes.claim(request.claim);
    else if (request.release !== undefined) writes.release(request.release);
    else if (request.optimize) writes.optimize();
    else result = writes.apply(request.apply);
    parentPort.postMessage({ id: request.id, result });
  } catch (error) {
    parentPort.postMessage({ id: request.id, ...(error instanceof Fenced ? { fenced: true } : { error: error instanceof Error ? error.message : String(error) }) });
  }
}

parentPort.on('message', (request) => {
  if (request.close) {
    db.close();
    parentPort.postMessage({ id: request.id, closed: true });
    parentPort.close();
    return;
  }
  handle(request);
});
