/**
 * `npm run bench`: every figure is measured side by side in this one run, and printed with the
 * ratio to its yardstick. Machine noise moves both sides of a ratio together.
 */
import { fmt } from '../src/cli/progress.ts';
import { benchEngine } from './engine.bench.ts';
import { benchForget } from './forget.bench.ts';
import { benchHttp } from './http.bench.ts';
import { benchImport } from './import.bench.ts';
import { benchActivity } from './activity.bench.ts';
import { benchProjection } from './projection.bench.ts';
import { benchQueries } from './query.bench.ts';
import { benchStreaming } from './streaming.bench.ts';
import { type CpuSeconds, cpuLine, cpuSum, cpuTotal, median } from './cpu-time.ts';
import { benchTracker } from './tracker.bench.ts';

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
const rounds = (n: number) => (n === 1 ? '1 round' : `${n} rounds`);
/** XREF_BENCH_ROUNDS, when set (else each part's default). */
const roundsAsked = process.env.XREF_BENCH_ROUNDS === undefined ? undefined : Number(process.env.XREF_BENCH_ROUNDS);

/** A round of the projection and activity parts: the engine's rate, each projection's, and the CPU of each phase. */
interface Round<K extends string> {
  engine: number;
  projection: Record<K, number>;
  cpu: Record<'engine' | K, CpuSeconds>;
}

/** The median over the rounds of a projection's rate to its round's engine, and each phase's CPU summed over them. */
function overRounds<K extends string>(list: ReadonlyArray<Round<K>>, phases: readonly K[]) {
  const cpuOf = (phase: 'engine' | K) => cpuSum(list.map((round) => round.cpu[phase]));
  return {
    ratio: (phase: K) => median(list.map((round) => round.projection[phase] / round.engine)),
    cpu: Object.fromEntries((['engine', ...phases] as const).map((phase) => [phase, cpuOf(phase)])) as Record<'engine' | K, CpuSeconds>,
  };
}

function engineSection(): void {
  const r = benchEngine();
  process.stdout.write(
    [
      `engine, in-process: ${fmt(r.events)} events over ${fmt(r.identifiers)} identifiers, best of 3`,
      `  (mix: ${pct(r.bufferedShare)} of events waited in a buffer, ${pct(r.unmatchedShare)} left one unplaced)`,
      `  xref engine          ${fmt(r.xrefPerSec)} events/s`,
      `  plain reducer        ${fmt(r.baselinePerSec)} events/s   (no clusters, bounds, audit, dedup or actors)`,
      `  ratio xref/baseline  ${(r.xrefPerSec / r.baselinePerSec).toFixed(2)}`,
      `  linked identifier    ${fmt(r.linkedBytes)} B resident; 1M linked: ${fmt(r.linkedMillionMb)} MB of heap (event-id dedup set included)`,
      `  buffering identifier ${fmt(r.bufferingBytes)} B resident (its live actor and 3 buffered events)`,
      '',
    ].join('\n'),
  );
}

async function streamingSection(): Promise<void> {
  const r = await benchStreaming();
  process.stdout.write(
    [
      `streaming, one nats-server ${'(2.9)'} on this machine: ${fmt(r.events)} events, side by side`,
      `  JetStream publish      ${fmt(r.publishRate)} events/s   (pipelined, shared inbox)`,
      `  (a) raw pass-through   ${fmt(r.stock)} events/s   (consume, parse, republish with stock js.publish, ack)`,
      `  (a') same, one inbox   ${fmt(r.inbox)} events/s   (republish with plain publishes and acks on one shared inbox)`,
      `  (b) xref end to end    ${fmt(r.xref)} events/s   ratio b/a ${(r.xref / r.stock).toFixed(2)} (target >= 0.8), b/a' ${(r.xref / r.inbox).toFixed(2)}`,
      `  (c) replay             ${fmt(r.replay)} events/s   vs parse-only read ${fmt(r.read)}/s: ratio ${(r.replay / r.read).toFixed(2)} (target >= 0.5)`,
      `  (d) link -> flush      stored to stored: p50 ${r.latency.stored.p50.toFixed(1)} ms, p99 ${r.latency.stored.p99.toFixed(1)} ms (target p99 < 50 ms), at ${fmt(r.latency.achieved)} events/s offered (half of b), ${r.latency.probes} probes`,
      `                         as the load generator saw it: p50 ${r.latency.seen.p50.toFixed(1)} ms, p99 ${r.latency.seen.p99.toFixed(1)} ms (its own delays included)`,
      `  (e) RSS of xref serve  ${fmt(r.rssMb)} MB after ${fmt(r.identifiers)} more distinct identifiers (target < 1 GB)`,
      '',
    ].join('\n'),
  );
}

async function httpSection(): Promise<void> {
  const r = await benchHttp();
  process.stdout.write(
    [
      `HTTP collector: ${fmt(r.events)} Segment events in batches of 100 (autocannon, 16 connections) against xref serve --no-engine`,
      `  raw JetStream publish  ${fmt(r.publishRate)} events/s   (pipelined, same process as the load)`,
      `  POST /v1/batch         ${fmt(r.httpRate)} events/s   ratio ${(r.httpRate / r.publishRate).toFixed(2)} (target >= 0.5)`,
      `  request latency        p50 ${r.p50} ms, p99 ${r.p99} ms; ${r.errors} errors or non-2xx; every event acked by JetStream before its 200`,
      '',
    ].join('\n'),
  );
}

function importSection(): void {
  const r = benchImport();
  const line = (label: string, ms: number) => `  ${label.padEnd(22)} ${ms.toFixed(0)} ms   (${(ms - r.bareMs).toFixed(0)} ms over bare node)`;
  process.stdout.write(
    [
      `import cost of the built package in plain Node (dist/, no tsx), best of 7 fresh processes`,
      `  bare node              ${r.bareMs.toFixed(0)} ms`,
      line("import 'xref'", r.offlineMs) + '   (target < 300 ms)',
      line("import 'xref/nats'", r.natsMs),
      line("import 'xref/http'", r.httpMs),
      '',
    ].join('\n'),
  );
}

async function projectionSection(): Promise<void> {
  const r = await benchProjection(Number(process.env.XREF_BENCH_PROJECTION_EVENTS ?? 200_000), roundsAsked);
  const { ratio, cpu } = overRounds(r.rounds, ['sqlite', 'postgres']);
  const events = r.events * r.rounds.length;
  process.stdout.write(
    [
      `projection vs engine, one nats-server on this machine: ${fmt(r.events)} events, ${rounds(r.rounds.length)} in one run`,
      `  (a round: a fresh server, the engine on the log (start to every input acked), then the projection of all five streams into SQLite and PostgreSQL, which take turns to go first; a ratio is to its round's engine)`,
      `  round  engine         SQLite                PostgreSQL`,
      ...r.rounds.map(
        (round, i) =>
          `  ${String(i + 1).padEnd(5)}  ${`${fmt(round.engine)}/s`.padEnd(13)}  ${`${fmt(round.projection.sqlite)}/s  ${(round.projection.sqlite / round.engine).toFixed(2)}`.padEnd(20)}  ${fmt(round.projection.postgres)}/s  ${(round.projection.postgres / round.engine).toFixed(2)}${round.first === 'postgres' ? '   (PostgreSQL first)' : ''}`,
      ),
      `  median ratio                 ${ratio('sqlite').toFixed(2).padEnd(20)}  ${ratio('postgres').toFixed(2)} (target >= 1.0)`,
      `  CPU per 100k events, all rounds: engine ${cpuLine(cpu.engine, events)}`,
      `                         SQLite ${cpuLine(cpu.sqlite, events)}`,
      `                         PostgreSQL ${cpuLine(cpu.postgres, events, true)}`,
      `  engine CPU / projection CPU: SQLite ${(cpuTotal(cpu.engine) / cpuTotal(cpu.sqlite)).toFixed(2)}, PostgreSQL ${(cpuTotal(cpu.engine) / cpuTotal(cpu.postgres, true)).toFixed(2)} (where the cores are all busy, the ratio cannot go much above this; ${(cpuTotal(cpu.engine) / cpuTotal(cpu.postgres)).toFixed(2)} without the server's own part, as on a host of its own)`,
      '',
    ].join('\n'),
  );
}

async function querySection(): Promise<void> {
  const r = await benchQueries(Number(process.env.XREF_BENCH_QUERY_EVENTS ?? 1_000_000));
  const ms = (n: number) => `${n.toFixed(1).padStart(6)} ms`;
  process.stdout.write(
    [
      `query API over ${fmt(r.events)} web-shaped events (read model loaded through store.apply, the same rows into both), ${'p50 / p95'} of 200 queries each`,
      `  load                   SQLite ${fmt(r.load.sqlite)} rows/s, PostgreSQL ${fmt(r.load.postgres)} rows/s`,
      `  ${'query'.padEnd(22)} ${'SQLite p50'.padStart(10)} ${'p95'.padStart(9)}   ${'PostgreSQL p50'.padStart(14)} ${'p95'.padStart(9)}   (target p95 < 50 ms)`,
      ...Object.entries(r.queries).map(
        ([name, q]) => `  ${(name === 'user document' ? `user document (${fmt(r.documentEvents)} ev)` : name).padEnd(24)} ${ms(q.sqlite.p50).padStart(8)} ${ms(q.sqlite.p95)}   ${ms(q.postgres.p50).padStart(14)} ${ms(q.postgres.p95)}`,
      ),
      '',
    ].join('\n'),
  );
}

async function activitySection(): Promise<void> {
  const r = await benchActivity(Number(process.env.XREF_BENCH_ACTIVITY_EVENTS ?? 200_000), Number(process.env.XREF_BENCH_ACTIVITY_PEOPLE ?? 1_000_000), roundsAsked);
  const ms = (n: number) => `${n.toFixed(1).padStart(6)} ms`;
  const row = (name: string, q: Record<'sqlite' | 'postgres', { p50: number; p95: number }>) =>
    `  ${name.padEnd(22)} ${ms(q.sqlite.p50).padStart(10)} ${ms(q.sqlite.p95)}   ${ms(q.postgres.p50).padStart(14)} ${ms(q.postgres.p95)}`;
  const { ratio, cpu } = overRounds(r.rounds, ['off', 'on']);
  const events = r.events * r.rounds.length;
  process.stdout.write(
    [
      `active-people counts: the projection with them off and on, beside the engine, ${fmt(r.events)} events (SQLite), ${rounds(r.rounds.length)} in one run`,
      `  (a round: a fresh server, the engine on the log, then both projections, which take turns to go first; a ratio is to its round's engine)`,
      `  round  engine         counts off            counts on (start to every input counted)   of which the streams, then the counting's tail`,
      ...r.rounds.map(
        (round, i) =>
          `  ${String(i + 1).padEnd(5)}  ${`${fmt(round.engine)}/s`.padEnd(13)}  ${`${fmt(round.projection.off)}/s  ${(round.projection.off / round.engine).toFixed(2)}`.padEnd(20)}  ${`${fmt(round.projection.on)}/s  ${(round.projection.on / round.engine).toFixed(2)}`.padEnd(41)}  ${(round.streamsOn / round.engine).toFixed(2)}, ${fmt(round.tailMs)} ms${round.first === 'on' ? '   (counts on first)' : ''}`,
      ),
      `  median ratio                 ${ratio('off').toFixed(2).padEnd(20)}  ${ratio('on').toFixed(2)} (target >= 1.0)`,
      `  CPU per 100k events, all rounds: engine ${cpuLine(cpu.engine, events)}`,
      `                         counts off ${cpuLine(cpu.off, events)}`,
      `                         counts on ${cpuLine(cpu.on, events)}`,
      `  engine CPU / projection CPU: counts off ${(cpuTotal(cpu.engine) / cpuTotal(cpu.off)).toFixed(2)}, counts on ${(cpuTotal(cpu.engine) / cpuTotal(cpu.on)).toFixed(2)}`,
      `lookups over a year of ${fmt(r.people)} people (${fmt(r.personDays)} person-days), p50 / p95 of 200 each (target p95 < 100 ms); counts loaded at SQLite ${fmt(r.load.sqlite)}, PostgreSQL ${fmt(r.load.postgres)} rows/s`,
      `  ${'lookup'.padEnd(22)} ${'SQLite p50'.padStart(10)} ${'p95'.padStart(9)}   ${'PostgreSQL p50'.padStart(14)} ${'p95'.padStart(9)}`,
      row('DAU, 365 days', r.lookups.dau),
      row('WAU, 52 weeks', r.lookups.wau),
      row('MAU, 12 months', r.lookups.mau),
      `  bytes per active person-day: SQLite ${fmt(r.bytesPerPersonDay.sqlite)}, PostgreSQL ${fmt(r.bytesPerPersonDay.postgres)} (person rows of every zone and period kind, counts, clusters)`,
      '',
    ].join('\n'),
  );
}

async function trackerSection(): Promise<void> {
  const r = await benchTracker(Number(process.env.XREF_BENCH_TRACKER_EVENTS ?? 200_000));
  process.stdout.write(
    [
      `tracker: 3 nested contexts, 2 processors, httpBackend (batches of ${fmt(r.batchSize)}, ${r.inFlight} in flight) into xref serve --no-engine; ${r.layout}`,
      `  emit                   ${fmt(r.emitRate)} emits/s   best of ${r.emitRounds} rounds of ${fmt(r.events / 2 / r.emitRounds)} (target >= 200,000); all rounds ${fmt(r.emitRateAll)} emits/s`,
      `  emit latency           p50 ${r.p50Us.toFixed(1)} µs, p99 ${r.p99Us.toFixed(1)} µs (target p99 < 50 µs); p99.9 ${r.p999Us.toFixed(1)} µs, max ${fmt(r.maxUs)} µs; ${fmt(r.events / 2)} emits each timed`,
      `  delivered              ${fmt(r.deliveredRate)} events/s   (first emit to flush() with all ${fmt(r.events)} stored)`,
      `  collector ingest       ${fmt(r.ingestRate)} events/s   (POST /v1/events, batches of the same events, autocannon ${r.ingestConnections} connections, ${r.ingestErrors} errors)`,
      `  ratio delivered/ingest ${(r.deliveredRate / r.ingestRate).toFixed(2)} (target >= 0.8); report: ${fmt(r.report.total.sent)} sent, ${fmt(r.report.total.failed)} failed, ${fmt(r.report.total.dropped)} dropped, ${fmt(r.report.total.pending)} pending`,
      '',
    ].join('\n'),
  );
}

async function forgetSection(): Promise<void> {
  const events = Number(process.env.XREF_BENCH_FORGET_EVENTS ?? 1_000_000);
  const r = await benchForget(events, Math.min(10_000, Math.floor(events / 100)));
  const receipt = Object.entries(r.receipt).map(([store, { erased, remaining }]) => `${store} ${fmt(erased)} erased, ${remaining} left`);
  process.stdout.write(
    [
      `forget: one person with ${fmt(r.personEvents)} events (20 cookies, a device) in a log of ${fmt(r.events)}, engine caught up`,
      `  request -> receipt      ${r.forgetSeconds.toFixed(2)} s   (streams erased, buckets purged after the next checkpoint, all checked)`,
      `  for scale               the engine applied the log at ${fmt(r.engineRate)} events/s: the forget costs ${fmt(r.forgetSeconds * r.engineRate)} inputs' time`,
      `  receipt                 ${receipt.join('; ')}`,
      `  replay check            ${r.leftInLog} inputs of the log name them; a replay from scratch (${r.replaySeconds.toFixed(1)} s) rebuilds ${r.replayedLinks} links of theirs`,
      '',
    ].join('\n'),
  );
}

const only = process.argv[2];
if (only === undefined || only === 'import') importSection();
if (only === undefined || only === 'engine') engineSection();
if (only === undefined || only === 'streaming') await streamingSection();
if (only === undefined || only === 'http') await httpSection();
if (only === undefined || only === 'projection') await projectionSection();
if (only === undefined || only === 'query') await querySection();
if (only === undefined || only === 'activity') await activitySection();
if (only === undefined || only === 'tracker') await trackerSection();
if (only === undefined || only === 'forget') await forgetSection();
