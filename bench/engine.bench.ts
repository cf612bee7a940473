import { defaultConfig } from '../src/domain/config.ts';
import type { XrefEvent } from '../src/domain/envelope.ts';
import { IdentityEngine } from '../src/engine/engine.ts';
import type { Sink } from '../src/engine/outputs.ts';
import { baselineReducer } from './baseline.ts';
import { webLog } from '../test/helpers/web-log.ts';

const discard: Sink = { resolved() {}, unmatched() {}, audit() {} };

function heapUsed(): number {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
}

function seconds(run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export interface EngineBenchResult {
  events: number;
  identifiers: number;
  /** Share of events that waited in a buffer, and that left one unplaced. */
  bufferedShare: number;
  unmatchedShare: number;
  xrefPerSec: number;
  baselinePerSec: number;
  linkedBytes: number;
  linkedMillionMb: number;
  bufferingBytes: number;
}

/** Throughput side by side (best of `rounds`, alternating), then resident bytes per identifier. */
export function benchEngine(events = 1_000_000, identifiers = 100_000, rounds = 3): EngineBenchResult {
  const log = webLog({ events, identifiers });
  const config = defaultConfig();
  let xref = Infinity;
  let baseline = Infinity;
  let engine: IdentityEngine | undefined;
  for (let round = 0; round < rounds; round++) {
    engine = new IdentityEngine({ config, sink: discard });
    const e = engine;
    xref = Math.min(xref, seconds(() => log.forEach((event) => e.ingest(event))));
    const reducer = baselineReducer(config.internal);
    baseline = Math.min(baseline, seconds(() => log.forEach((event) => reducer.ingest(event))));
  }
  const stats = engine!.stats;
  engine = undefined;

  // A linked identifier with nothing buffered: 1M of them, linked 4 at a time to 100k users.
  const linkedCount = 1_000_000;
  let linkEvents: XrefEvent[] = [];
  for (let i = 0; i < linkedCount / 4; i++) {
    linkEvents.push({ id: `l${i}`, ids: { db_id: String(1 + (i % 100_000)), cookie: `c${i}`, device_id: `d${i}`, anonymous_id: `a${i}`, partner_id: `p${i}` } });
  }
  let before = heapUsed();
  engine = new IdentityEngine({ config, sink: discard });
  for (const event of linkEvents) engine.ingest(event);
  linkEvents = [];
  const linkedHeap = heapUsed() - before;
  if (engine.size.links !== linkedCount) throw new Error(`expected ${linkedCount} links, got ${engine.size.links}`);
  engine = undefined;

  // A buffering identifier: 20k cookies, each holding 3 small events.
  const bufferingCount = 20_000;
  let waiting: XrefEvent[] = [];
  for (let i = 0; i < bufferingCount * 3; i++) waiting.push({ id: `w${i}`, ids: { cookie: `b${i % bufferingCount}` } });
  before = heapUsed();
  engine = new IdentityEngine({ config, sink: discard });
  for (const event of waiting) engine.ingest(event);
  waiting = [];
  const bufferingHeap = heapUsed() - before;
  if (engine.size.buffering !== bufferingCount) throw new Error('expected every cookie to be buffering');

  return {
    events,
    identifiers,
    bufferedShare: stats.buffered / stats.events,
    unmatchedShare: stats.unmatched / stats.events,
    xrefPerSec: events / xref,
    baselinePerSec: events / baseline,
    linkedBytes: linkedHeap / linkedCount,
    linkedMillionMb: linkedHeap / 1024 / 1024,
    bufferingBytes: bufferingHeap / bufferingCount,
  };
}
