/**
 * `npm run bench`: every figure is measured side by side in this one run, and printed with the
 * ratio to its yardstick. Machine noise moves both sides of a ratio together.
 */
import { benchEngine } from './engine.bench.ts';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (n: number) => `${(n * 100).toFixed(1)}%`;

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

engineSection();
